"""Reading messages from files: .eml files, mbox files and Maildir folders ("upload emails")."""

import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlmodel import Session

from models import get_engine
from tasks.errors import EmailImportError
from tasks.parsing import ParsedEmail
from tasks.storing import IncomingEmail, MailboxRef, StoredBatch, store_emails


@dataclass(frozen=True)
class RawSource:
    folder: str
    origin: str  # file (and key) it came from, for error messages
    raw: bytes


def read_sources(path: Path, folder: str) -> Iterator[RawSource]:
    """Every message under path, in a stable order, with the folder it belongs to."""
    if not path.exists():
        raise EmailImportError(f"{path}: no such file or folder")
    if path.is_dir() and _is_maildir(path):
        yield from _read_maildir(path, folder)
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".eml")
        if not files:
            raise EmailImportError(f"{path}: no .eml files and not a Maildir folder")
        for file in files:
            yield RawSource(folder, str(file), file.read_bytes())
    elif _is_mbox(path):
        yield from _read_mbox(path, folder)
    else:
        yield RawSource(folder, str(path), path.read_bytes())


def _is_maildir(path: Path) -> bool:
    return all((path / sub).is_dir() for sub in ("cur", "new", "tmp"))


def _is_mbox(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(5) == b"From "


def _read_mbox(path: Path, folder: str) -> Iterator[RawSource]:
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():
            yield RawSource(folder, f"{path}#{key}", box.get_bytes(key))
    finally:
        box.close()


def _read_maildir(path: Path, folder: str) -> Iterator[RawSource]:
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(box.iterkeys()):
        yield RawSource(folder, f"{path}#{key}", box.get_bytes(key))
    # Maildir++ subfolders (.Sent, .Support.Sub) become folders of their own.
    for name in sorted(box.list_folders()):
        yield from _read_maildir(path / f".{name}", name.replace(".", "/"))


@task(name="store-imported-batch", cache_policy=NO_CACHE)
def store_imported_batch(
    mailbox_ref: MailboxRef, folders: list[str], parsed: list[ParsedEmail]
) -> StoredBatch:
    """Store one batch of imported messages; duplicates of stored mail are skipped."""
    incoming = [IncomingEmail(p, folder) for folder, p in zip(folders, parsed, strict=True)]
    with Session(get_engine(), expire_on_commit=False) as session:
        return store_emails(session, mailbox_ref, incoming)
