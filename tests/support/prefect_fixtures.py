"""pytest plugin providing a real Prefect server and project copies (see prefect_server.py).

Load it with ``-p tests.support.prefect_fixtures`` or from a conftest's
``pytest_plugins``. Independent of the in-process ``prefect_api`` fixture: the server
here is a subprocess on its own port and PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.prefect_server import PrefectHarnessError, PrefectServer, ProjectCopy


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """One started Prefect server for the whole session (scheduler off, see PrefectServer).

    Tests share it: give deployments, pools and flow runs names of their own, or look
    them up by id, when a test depends on what else exists on the server.
    """
    server = PrefectServer(tmp_path_factory.mktemp("prefect-server"))
    try:
        server.start()
    except PrefectHarnessError as exc:
        # start() has already stopped what it started; a hard failure, never a skip.
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def prefect_project(tmp_path: Path) -> ProjectCopy:
    """A copy of the project (tracked and untracked-but-not-ignored files) for this test."""
    return ProjectCopy.create(tmp_path / "project")
