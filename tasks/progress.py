"""Progress of long runs, for whoever watches in the same process (the CLI's progress bar)."""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    mailbox: str
    folder: str
    planned: int = 0  # messages newly planned for download
    stored: int = 0  # messages handled (stored or recognised as duplicates)


_listeners: list[Callable[[Progress], None]] = []


def subscribe(listener: Callable[[Progress], None]) -> Callable[[], None]:
    """Register a listener; returns the function that removes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def publish(event: Progress) -> None:
    for listener in list(_listeners):
        listener(event)
