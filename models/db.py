"""The database: where it lives, the engine, sessions and schema migrations.

One setting selects it: ``INBOXFLOW_DATABASE_URL`` (a SQLAlchemy URL). Without it,
inboxflow uses SQLite in the project-local data folder (``INBOXFLOW_HOME``,
default ``.inboxflow/`` beside ``pyproject.toml``).
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, event
from sqlmodel import Session, create_engine

if TYPE_CHECKING:  # alembic loads only when a database is migrated
    from alembic.config import Config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def data_dir() -> Path:
    """The folder for the embedded database and the file store."""
    path = Path(os.environ.get("INBOXFLOW_HOME") or PROJECT_ROOT / ".inboxflow")
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    url = os.environ.get("INBOXFLOW_DATABASE_URL")
    if url:
        # Plain postgresql:// means the psycopg 3 driver we ship, not psycopg2.
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url
    return f"sqlite:///{data_dir() / 'inboxflow.db'}"


@cache
def _engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})
        if engine.url.database and engine.url.database != ":memory:":
            Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _tune_sqlite(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets readers (the CLI, the UI's queries) work while a sync writes;
    # synchronous=NORMAL is durable across process crashes, which is what a
    # killed sync needs.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def get_engine() -> Engine:
    return _engine_for(database_url())


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


_migrated: set[str] = set()


def init_db() -> None:
    """Create or upgrade the schema to the newest migration (once per process and URL)."""
    url = database_url()
    if url in _migrated:
        return
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    # Independent features may add migration branches off the same parent: upgrade to all heads.
    heads = set(ScriptDirectory.from_config(_migration_config()).get_heads())
    with get_engine().connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current != heads:
        upgrade_schema("heads")
    _migrated.add(url)


def upgrade_schema(revision: str) -> None:
    """Run the migrations up to a revision ("heads": the newest of every branch)."""
    from alembic import command

    config = _migration_config()
    with get_engine().begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _migration_config() -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config
