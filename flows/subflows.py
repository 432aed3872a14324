"""Running a flow inside another flow's run, in the same process."""

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings


@contextmanager
def as_subflows() -> Iterator[None]:
    """Flow runs started in here need no heartbeat of their own.

    A sync flow run joins its heartbeat thread when it ends, which waits out the
    thread's current one-second sleep: up to 1 s per run (measured in
    bench/processes.py and bench/sync.py). A subflow lives and dies in its parent's
    process, whose own heartbeat keeps telling the server that process is alive.
    """
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
