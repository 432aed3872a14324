"""Flow runs the CLI starts in its own process."""

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cli_flow_runs() -> Iterator[None]:
    """Flow runs started in here send heartbeats only to a Prefect server that outlives them.

    In Prefect's local mode (no ``PREFECT_API_URL``) the heartbeats would go to the
    temporary server that stops with this process, where nobody can read them, and
    each run would wait for its heartbeat thread at its end (``without_heartbeats``).
    With a Prefect server, heartbeats stay on: they tell the server the run is alive.
    """
    # Imported here: the CLI's commands that run no flow do not pay for importing Prefect.
    from prefect.settings import PREFECT_API_URL

    from flows.subflows import without_heartbeats

    if PREFECT_API_URL.value():
        yield
        return
    with without_heartbeats():
        yield
