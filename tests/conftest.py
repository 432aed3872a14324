"""Shared fixtures: a real database (SQLite and PostgreSQL), Prefect, a real Dovecot.

Every test gets its own INBOXFLOW_HOME; tests that use `database` run once on
SQLite and once on the PostgreSQL server of the machine (127.0.0.1:5432).
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

pytest_plugins = [
    "tests.support.dovecot_fixtures",
    "tests.support.smtp_fixtures",
    "tests.support.prefect_fixtures",
]

POSTGRES_ADMIN_URL = os.environ.get(
    "INBOXFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# Prefect reads its settings once, at import: set them before any test imports it.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
# As in the CLI: outcomes are reported by inboxflow, logs go to the Prefect API (and to
# pytest's log capture). A console handler would also outlive the streams pytest swaps.
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect test server for the whole session; yields its API URL for subprocesses."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(PREFECT_API_URL.value())


@pytest.fixture(autouse=True)
def no_flow_heartbeats() -> Iterator[None]:
    """A sync flow run joins its heartbeat thread at exit (~1 s a run); tests need no heartbeats."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture(autouse=True)
def inboxflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own data folder (file store, SQLite database, locks), no processes."""
    home = tmp_path / "inboxflow-home"
    monkeypatch.setenv("INBOXFLOW_HOME", str(home))
    monkeypatch.delenv("INBOXFLOW_DATABASE_URL", raising=False)
    # No email process starts by itself unless a test asks for it (tests of sync or
    # processing store mail whose subjects the shipped triggers would match).
    no_processes = tmp_path / "no-processes"
    no_processes.mkdir()
    monkeypatch.setenv("INBOXFLOW_PROCESSES_DIR", str(no_processes))
    return home


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(
    request: pytest.FixtureRequest, inboxflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh database without any schema; yields its URL (also INBOXFLOW_DATABASE_URL)."""
    from models.db import _engine_for

    if request.param == "sqlite":
        url = f"sqlite:///{inboxflow_home / 'test.db'}"
        monkeypatch.setenv("INBOXFLOW_DATABASE_URL", url)
        yield url
        _engine_for(url).dispose()
        return
    name = f"inboxflow_test_{uuid.uuid4().hex[:12]}"
    admin = _postgres_admin()
    admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    monkeypatch.setenv("INBOXFLOW_DATABASE_URL", url)
    try:
        yield url
    finally:
        _engine_for(url).dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def database(empty_database: str) -> str:
    """A fresh, migrated database; its URL (also set as INBOXFLOW_DATABASE_URL)."""
    from models import init_db

    init_db()
    return empty_database


def _postgres_admin() -> psycopg.Connection:
    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({exc}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect 15 main start` (the README's test "
            "command does this)"
        )
