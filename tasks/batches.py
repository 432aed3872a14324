"""Cutting work into batches: a Prefect task per batch, never per email."""

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most size items; reads a generator lazily."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
