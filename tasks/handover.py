"""The hand-over journal: which claimed emails went to the SMTP server, as it happens.

Exactly once needs, for every email, a record that it is about to be handed to the
server, on disk before its DATA, and the server's answer after. A database commit
per email did that at about 1 ms of CPU each, as much as the SMTP transaction
itself (bench/outbound.py). So the database now takes the emails a batch at a
time ("sending" for the whole batch, "completed" in chunks), and this journal, one
append-only file per mailbox, takes the per-email facts at a few µs each:

    claimed <id> <id> ...        the batch is about to be marked "sending"
    handing-over <id>            DATA is about to start: the server may get it
    delivered <id> <json>        the server said 250 (its reply, refused recipients)

After a crash the next run reads it (under the mailbox's sender lock) to settle each
email the database still calls "sending": delivered → completed; handing-over
without an answer → looked up in the Sent folder, else a person decides; claimed
and never handed over → queued again, because the server never saw it. An email in
"sending" the journal does not know (written by an older version) is treated as
handed over: never resent blindly.

The journal lives beside the message files in the file store, which every worker
that sends must reach anyway. Each line is flushed to disk (fdatasync) before the
step it announces: the claim before the database commit, the hand-over before
DATA, on a thread of its own while MAIL FROM and RCPT TO go over the wire.
"""

import json
import os
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tasks.errors import OutboxError

CLAIMED = "claimed"
HANDING_OVER = "handing-over"
DELIVERED = "delivered"


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
    handed_over: set[uuid.UUID] = field(default_factory=set)
    delivered: dict[uuid.UUID, Delivered] = field(default_factory=dict)

    def never_handed_over(self, email_id: uuid.UUID) -> bool:
        """Claimed by a run that stopped before this email's DATA: the server never saw it."""
        return email_id in self.claimed and email_id not in self.handed_over


def journal_path(files_root: Path, mailbox_id: uuid.UUID) -> Path:
    return files_root / "journals" / f"outbox-{mailbox_id}.log"


def read_journal(path: Path) -> JournalView:
    """Every line a run wrote; a last line cut short by a crash is ignored."""
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
            if kind == CLAIMED:
                view.claimed.update(uuid.UUID(word) for word in rest.split())
            elif kind == HANDING_OVER:
                view.handed_over.add(uuid.UUID(rest))
            elif kind == DELIVERED:
                email_id, _, answer = rest.partition(" ")
                reply, refused = json.loads(answer)
                view.delivered[uuid.UUID(email_id)] = Delivered(uuid.UUID(email_id), reply, refused)
        except ValueError:
            continue  # the line a crash cut short
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
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="outbox-journal")

    def __enter__(self) -> "HandOverJournal":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._syncer.shutdown()
        os.close(self._fd)

    def claimed(self, email_ids: list[uuid.UUID]) -> None:
        """Before the batch's "sending" commit; on disk when this returns."""
        for start in range(0, len(email_ids), 100):
            words = " ".join(str(i) for i in email_ids[start : start + 100])
            self._write(f"{CLAIMED} {words}\n")
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise journal_error(self.path, exc) from exc

    def handing_over(self, email_id: uuid.UUID) -> "Future[None]":
        """Before DATA; wait for the returned future before the message leaves."""
        self._write(f"{HANDING_OVER} {email_id}\n")
        return self._syncer.submit(os.fdatasync, self._fd)

    def delivered(self, delivery: Delivered) -> None:
        # Not flushed: lost only with the machine, the email then counts as handed over.
        answer = json.dumps([delivery.reply, delivery.refused], ensure_ascii=True)
        self._write(f"{DELIVERED} {delivery.email_id} {answer}\n")

    def _write(self, line: str) -> None:
        # One write per line, O_APPEND: a line is never interleaved or half-replaced.
        try:
            os.write(self._fd, line.encode("ascii", "backslashreplace"))
        except OSError as exc:
            raise journal_error(self.path, exc) from exc
