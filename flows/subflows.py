"""Flow runs that send no heartbeats of their own: subflows, and the CLI's in local mode."""

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings


@contextmanager
def without_heartbeats() -> Iterator[None]:
    """Flow runs started in here send no heartbeats.

    A sync flow run joins its heartbeat thread when it ends, which waits out the
    thread's current one-second sleep: up to 1 s per run (Prefect 3.8.8; measured in
    bench/processes.py and bench/sync.py). Runs whose heartbeats nobody needs skip it.
    """
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@contextmanager
def as_subflows() -> Iterator[None]:
    """Flow runs started in here need no heartbeat of their own: a subflow lives and
    dies in its parent's process, whose own heartbeat keeps telling the server that
    process is alive."""
    with without_heartbeats():
        yield
