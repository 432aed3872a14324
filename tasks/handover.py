"""The hand-over journal: which claimed emails went to the SMTP server, as it happens.

Exactly once needs, for every email, a record that it is about to be handed to the
server, durable before its DATA, and the server's answer after. A database commit
per email did that at about 1 ms of CPU each, as much as the SMTP transaction
itself (bench/outbound.py). So the database takes the emails a batch at a time
("sending" for the whole batch, "completed" in chunks), and this journal, one
append-only file per mailbox, takes the per-email facts at a few µs each:

    boot <boot id>               the machine boot the writing run lives in
    claimed <id> <id> ...        the batch is about to be marked "sending"   (fdatasync)
    may-hand-over <id> ...       the next emails whose DATA may start        (fdatasync)
    handing-over <id>            DATA is about to start: the server may get it
    delivered <id> <json>        the server said 250 (its reply, refused recipients)

A line reaches the kernel before the step it announces; a killed process loses
none of them. Only a machine that stops (power cut, kernel crash) loses what was
not flushed, so two lines are flushed before their step: the claim, before the
database commit, and ``may-hand-over`` for the next ``HAND_OVER_WINDOW`` emails,
before the first of their DATA. One flush per window instead of one per email.

After a crash the next run reads the journal (under the mailbox's sender lock) to
settle each email the database still calls "sending":
- delivered → completed;
- written in this very boot (the kernel's boot id): every line is there, so
  handing-over without an answer → looked up in the Sent folder, else a person
  decides; claimed and never handed over → queued again, the server never saw it;
- written before a restart, or on another machine: only flushed lines count, so
  an email of a ``may-hand-over`` window without an answer is looked up (else a
  person decides), and only one claimed outside every window is queued again.
An email in "sending" the journal does not know (written by an older version) is
treated as handed over: never resent blindly.

The journal lives beside the message files in the file store, which every worker
that sends must reach anyway.
"""

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tasks.errors import OutboxError

BOOT = "boot"
CLAIMED = "claimed"
MAY_HAND_OVER = "may-hand-over"
HANDING_OVER = "handing-over"
DELIVERED = "delivered"
# Emails announced per flush: what a power cut can leave for a person to confirm.
HAND_OVER_WINDOW = 50
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Delivered:
    """An email the server took: its reply and the recipients it refused."""

    email_id: uuid.UUID
    reply: str
    refused: dict[str, str] = field(default_factory=dict)


@dataclass
class JournalView:
    """What a journal says about each email it names."""

    claimed: set[uuid.UUID] = field(default_factory=set)
    may_hand_over: set[uuid.UUID] = field(default_factory=set)
    handed_over: set[uuid.UUID] = field(default_factory=set)
    delivered: dict[uuid.UUID, Delivered] = field(default_factory=dict)
    boots: set[str] = field(default_factory=set)
    # Every line written is here: the writing runs lived in the reader's boot.
    complete: bool = False

    def never_handed_over(self, email_id: uuid.UUID) -> bool:
        """Claimed by a run that stopped before this email's DATA: the server never saw it."""
        if email_id not in self.claimed:
            return False
        if self.complete:
            return email_id not in self.handed_over
        # Only what survives a restart: a hand-over announced, or seen (an older
        # version flushed each hand-over line and announced no windows).
        return email_id not in self.may_hand_over and email_id not in self.handed_over


def boot_id() -> str | None:
    """This machine boot's id (Linux); None where there is none: then nothing unflushed counts."""
    try:
        return _BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def journal_path(files_root: Path, mailbox_id: uuid.UUID) -> Path:
    return files_root / "journals" / f"outbox-{mailbox_id}.log"


def read_journal(path: Path, boot: str | None = None) -> JournalView:
    """Every line a run wrote; a last line cut short by a crash is ignored. ``boot``:
    the reader's boot id (default: this machine's)."""
    view = JournalView()
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return view
    except OSError as exc:
        raise journal_error(path, exc) from exc
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        try:
            if kind == BOOT:
                view.boots.add(rest)
            elif kind == CLAIMED:
                view.claimed.update(uuid.UUID(word) for word in rest.split())
            elif kind == MAY_HAND_OVER:
                view.may_hand_over.update(uuid.UUID(word) for word in rest.split())
            elif kind == HANDING_OVER:
                view.handed_over.add(uuid.UUID(rest))
            elif kind == DELIVERED:
                email_id, _, answer = rest.partition(" ")
                reply, refused = json.loads(answer)
                view.delivered[uuid.UUID(email_id)] = Delivered(uuid.UUID(email_id), reply, refused)
        except ValueError:
            continue  # the line a crash cut short
    reader = boot if boot is not None else boot_id()
    view.complete = reader is not None and view.boots == {reader}
    return view


def clear_journal(path: Path) -> None:
    """Forget a journal whose every fact is now in the database."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise journal_error(path, exc) from exc


def journal_error(path: Path, cause: OSError) -> OutboxError:
    return OutboxError(
        f"the outbox journal {path} cannot be used ({cause.strerror or cause}); "
        "nothing is sent until it can"
    )


class HandOverJournal:
    """The open journal of one sending run (one mailbox, under its sender lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise journal_error(path, exc) from exc
        self._write(f"{BOOT} {boot_id() or 'unknown'}\n")

    def __enter__(self) -> "HandOverJournal":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        os.close(self._fd)

    def claimed(self, email_ids: list[uuid.UUID]) -> None:
        """Before the batch's "sending" commit; on disk when this returns."""
        self._write_ids(CLAIMED, email_ids)
        self._flush()

    def may_hand_over(self, email_ids: list[uuid.UUID]) -> None:
        """Before the first of these emails' DATA; on disk when this returns."""
        self._write_ids(MAY_HAND_OVER, email_ids)
        self._flush()

    def handing_over(self, email_id: uuid.UUID) -> None:
        """Right before this email's DATA (announced by ``may_hand_over`` before)."""
        self._write(f"{HANDING_OVER} {email_id}\n")

    def delivered(self, delivery: Delivered) -> None:
        answer = json.dumps([delivery.reply, delivery.refused], ensure_ascii=True)
        self._write(f"{DELIVERED} {delivery.email_id} {answer}\n")

    def _write_ids(self, kind: str, email_ids: list[uuid.UUID]) -> None:
        for start in range(0, len(email_ids), 100):
            words = " ".join(str(i) for i in email_ids[start : start + 100])
            self._write(f"{kind} {words}\n")

    def _flush(self) -> None:
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise journal_error(self.path, exc) from exc

    def _write(self, line: str) -> None:
        # One write per line, O_APPEND: a line is never interleaved or half-replaced.
        try:
            os.write(self._fd, line.encode("ascii", "backslashreplace"))
        except OSError as exc:
            raise journal_error(self.path, exc) from exc
