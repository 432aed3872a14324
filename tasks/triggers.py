"""Automatic starts: which new emails start which processes (the `on:` of processes/*.yaml).

Initial processing asks, for the emails it has just processed, which processes
their triggers start. A trigger matches a new *incoming* email of a watched
mailbox whose subject, body and sender match every pattern given (RE2, bounded
time); auto-replies, bounces and bulk mail are skipped unless the trigger asks
for them. Each (email, process) pair is recorded in ``process_start`` before the
run begins, so a process starts at most once per email however often the email
is processed again — a run that failed is re-run by a person, never silently twice.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from models import Email, EmailBody, Mailbox, ProcessStart
from models.base import utcnow
from models.emails import Direction
from tasks.batches import batched
from tasks.process_spec import Process, ProcessBook
from tasks.rules import MAX_TEXT

CHUNK = 900  # ids per IN (...) query: below SQLite's parameter limit
# A start unfinished for this long belongs to a run that died: it is made again.
ABANDONED_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class Start:
    email_id: uuid.UUID
    process: str


def claim_starts(
    session: Session, email_ids: Sequence[uuid.UUID], book: ProcessBook
) -> list[Start]:
    """The (email, process) runs to start for these emails, recorded so none starts twice.

    Flushes the claims; the caller commits them before starting the runs.
    """
    processes = book.triggered
    if not processes:
        return []
    starts: list[Start] = []
    for chunk in batched(email_ids, CHUNK):
        rows = session.execute(
            select(
                Email.id,
                Mailbox.address,
                Email.auto_kind,
                Email.subject,
                EmailBody.text.label("body_text"),
                Email.from_address,
                Email.from_name,
                Email.sent_at,
                Email.received_at,
                Email.created_at,
            )
            .join(Mailbox, Mailbox.id == Email.mailbox_id)
            .outerjoin(EmailBody, EmailBody.email_id == Email.id)
            .where(Email.id.in_(chunk), Email.direction == Direction.incoming)
        ).all()
        started = set(
            session.execute(
                select(ProcessStart.email_id, ProcessStart.process).where(
                    ProcessStart.email_id.in_(chunk)
                )
            ).all()
        )
        position = {email_id: index for index, email_id in enumerate(chunk)}
        # In the caller's order (oldest first): an original starts before its replies.
        for row in sorted(rows, key=lambda row: position[row.id]):
            for process in processes:
                if (row.id, process.key) not in started and matches(process, row):
                    starts.append(Start(row.id, process.key))
    return _abandoned(session) + _record(session, starts)


def _abandoned(session: Session) -> list[Start]:
    """Starts whose run died before it committed; each taken over by one caller only."""
    now = utcnow()
    stale = session.execute(
        select(ProcessStart.email_id, ProcessStart.process, ProcessStart.started_at)
        .where(ProcessStart.finished_at.is_(None), ProcessStart.started_at < now - ABANDONED_AFTER)
        .order_by(ProcessStart.started_at)
    ).all()
    taken = []
    for email_id, process, started_at in stale:
        claimed = session.execute(
            update(ProcessStart)
            .where(
                ProcessStart.email_id == email_id,
                ProcessStart.process == process,
                ProcessStart.started_at == started_at,
            )
            .values(started_at=now)
        )
        if claimed.rowcount:
            taken.append(Start(email_id, process))
    return taken


def start_is_pending(session: Session, email_id: uuid.UUID, process: str) -> bool:
    """Is this automatic start still to be done (no other run has finished it)?"""
    start = session.get(ProcessStart, (email_id, process), populate_existing=True)
    return start is not None and start.finished_at is None


def finish_start(session: Session, email_id: uuid.UUID, process: str, outcome: str) -> None:
    """Record how an automatic start ended, in the caller's transaction (once)."""
    session.execute(
        update(ProcessStart)
        .where(
            ProcessStart.email_id == email_id,
            ProcessStart.process == process,
            ProcessStart.finished_at.is_(None),
        )
        .values(finished_at=utcnow(), outcome=outcome)
    )


def matches(process: Process, row: object) -> bool:
    """Does a new email (a row with mailbox address, auto_kind, subject, ...) start it?"""
    trigger = process.trigger
    if trigger is None:
        return False
    if row.auto_kind and not trigger.include_auto_replies:  # type: ignore[attr-defined]
        return False
    max_age = trigger.max_age_delta
    if max_age is not None:
        written = row.sent_at or row.received_at  # type: ignore[attr-defined]
        if written is not None and _aware(row.created_at) - _aware(written) > max_age:  # type: ignore[attr-defined]
            return False
    address = row.address  # type: ignore[attr-defined]
    if trigger.mailboxes and address not in {m.lower() for m in trigger.mailboxes}:
        return False
    texts = {
        "subject": row.subject,  # type: ignore[attr-defined]
        "body": row.body_text,  # type: ignore[attr-defined]
        "from": f"{row.from_name} <{row.from_address}>",  # type: ignore[attr-defined]
    }
    return all(
        regex.search((texts[column] or "")[:MAX_TEXT]) for column, regex in process.trigger_patterns
    )


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _record(session: Session, starts: list[Start]) -> list[Start]:
    """Record the claims; returns those this run made (another run may have been first)."""
    if not starts:
        return []
    now = utcnow()
    values = [{"email_id": s.email_id, "process": s.process, "started_at": now} for s in starts]
    table = ProcessStart.__table__  # type: ignore[attr-defined]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(table).on_conflict_do_nothing().returning(table.c.email_id, table.c.process)
    )
    claimed: set[tuple[uuid.UUID, str]] = set()
    for chunk in batched(values, CHUNK // 3):
        claimed.update(tuple(row) for row in session.execute(statement, chunk))
    session.flush()
    return [s for s in starts if (s.email_id, s.process) in claimed]
