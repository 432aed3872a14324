"""pytest plugin providing a real SMTP server (aiosmtpd, see tests/support/smtp.py).

Load it with ``-p tests.support.smtp_fixtures`` or from a conftest's ``pytest_plugins``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.smtp import SmtpServer


@pytest.fixture(scope="session")
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    """One started SMTP server for the whole session (plaintext+STARTTLS and implicit TLS)."""
    server = SmtpServer(tmp_path_factory.mktemp("smtp"))
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def smtp(smtp_server: SmtpServer) -> Iterator[SmtpServer]:
    """The session's SMTP server, running, with no messages and no faults switched on."""
    _reset(smtp_server)
    try:
        yield smtp_server
    finally:
        _reset(smtp_server)


def _reset(server: SmtpServer) -> None:
    server.start()
    server.clear()
    server.refuse.clear()
    server.data_reply = None
    server.on_data = None
    server.pipelining = True
