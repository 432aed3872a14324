"""One sync per mailbox at a time, with locks that die with the process holding them.

A killed sync must not keep a mailbox locked, so no lock lives in a table row:
PostgreSQL uses a session advisory lock (released when the connection drops),
SQLite a ``flock`` on a file beside the database (released when the process dies).
"""

import fcntl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from models import data_dir, get_engine
from tasks.errors import MailboxBusyError


@contextmanager
def mailbox_lock(mailbox_id: uuid.UUID, address: str) -> Iterator[None]:
    engine = get_engine()
    if engine.dialect.name == "postgresql":
        with _advisory_lock(mailbox_id, address):
            yield
    else:
        with _file_lock(_lock_dir(engine.url.database) / f"mailbox-{mailbox_id}.lock", address):
            yield


def _busy(address: str) -> MailboxBusyError:
    return MailboxBusyError(f"mailbox {address}: another run is syncing it; try again later")


@contextmanager
def _advisory_lock(mailbox_id: uuid.UUID, address: str) -> Iterator[None]:
    key = int.from_bytes(mailbox_id.bytes[:8], "big", signed=True)
    with get_engine().connect() as connection:
        if not connection.execute(select(func.pg_try_advisory_lock(key))).scalar():
            raise _busy(address)
        try:
            yield
        finally:
            connection.execute(select(func.pg_advisory_unlock(key)))
            connection.commit()


@contextmanager
def _file_lock(path: Path, address: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise _busy(address) from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_dir(database: str | None) -> Path:
    if database and database != ":memory:":
        return Path(database).resolve().parent / "locks"
    return data_dir() / "locks"
