"""What the analysts' files (rules/, processes/, templates/) share: problems by file and line."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


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


@dataclass(frozen=True)
class YamlFile:
    """A parsed YAML file and its node tree, which knows the line of every key."""

    shown: str  # the path as display_path gives it
    root: yaml.Node | None
    data: Any


def read_yaml(path: Path) -> YamlFile | FileProblem:
    """The file parsed, or the problem that kept it from being read (with its line)."""
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return FileProblem(shown, 1, f"cannot read the file: {exc}")
    try:
        # compose keeps each node's position, so every problem can name its line.
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc)
        return FileProblem(shown, line, f"not valid YAML: {reason}")
    return YamlFile(shown, root, data)
