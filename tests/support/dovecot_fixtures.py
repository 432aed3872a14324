"""pytest plugin providing a real Dovecot IMAP server (see tests/support/dovecot.py).

Load it with ``-p tests.support.dovecot_fixtures`` or from a conftest's
``pytest_plugins``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dovecot import Dovecot, find_binary

MISSING_DOVECOT = (
    "Dovecot is not installed (no `dovecot` binary on PATH or in /usr/sbin). "
    "Run the test command from README.md, which installs it "
    "(apt-get install -y dovecot-imapd)."
)


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """One started Dovecot for the whole session; tests should use their own users."""
    if find_binary("dovecot") is None or find_binary("doveadm") is None:
        # A hard failure, never a skip: a suite that silently skips its IMAP tests
        # looks green while testing nothing.
        pytest.fail(MISSING_DOVECOT, pytrace=False)
    server = Dovecot(tmp_path_factory.mktemp("dovecot"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
