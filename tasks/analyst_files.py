"""What the analysts' files (rules/, processes/, templates/) share: problems by file and line."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileProblem:
    """Something wrong in an analyst's file, shown as ``file:line: reason``."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


def display_path(path: Path) -> str:
    """A path as the user would write it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
