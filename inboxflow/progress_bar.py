"""A progress bar for `inboxflow sync` on a terminal (silent when output is piped)."""

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from tasks.progress import Progress as SyncProgress
from tasks.progress import subscribe


@contextmanager
def progress_bar(console: Console) -> Iterator[None]:
    if not console.is_terminal:
        yield
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        rows: dict[tuple[str, str], TaskID] = {}
        totals: dict[tuple[str, str], int] = {}

        def show(event: SyncProgress) -> None:
            key = (event.mailbox, event.folder)
            if key not in rows:
                rows[key] = bar.add_task(f"{event.mailbox} {event.folder}", total=0)
                totals[key] = 0
            totals[key] += event.planned
            bar.update(rows[key], total=totals[key], advance=event.stored)

        unsubscribe = subscribe(show)
        try:
            yield
        finally:
            unsubscribe()
