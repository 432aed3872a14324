"""Writing parsed emails to the database: one transaction per batch, no duplicates."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from models import Attachment, Email, EmailBody, SyncState
from models.base import utcnow
from models.emails import Direction
from tasks.parsing import ParsedEmail
from tasks.threads import direct_parent


@dataclass
class IncomingEmail:
    """A parsed email with where it came from."""

    parsed: ParsedEmail
    folder: str
    uid: int | None = None
    uidvalidity: int | None = None
    seen: bool = False
    received_at: datetime | None = None


@dataclass
class StoredBatch:
    stored_ids: list[uuid.UUID] = field(default_factory=list)
    duplicates: int = 0
    problems: int = 0


@dataclass(frozen=True)
class MailboxRef:
    id: uuid.UUID
    address: str
    owner_id: uuid.UUID | None


@dataclass(frozen=True)
class HighWaterMark:
    folder: str
    uidvalidity: int
    last_uid: int


def store_emails(
    session: Session,
    mailbox: MailboxRef,
    emails: list[IncomingEmail],
    mark: HighWaterMark | None = None,
) -> StoredBatch:
    """Insert the emails that are new to the mailbox and move the folder's high-water mark.

    Commits once: the emails, their attachments and the mark land together or not at all.
    """
    result = StoredBatch()
    unique: dict[str, IncomingEmail] = {}
    for item in emails:
        if item.parsed.message_id in unique:
            result.duplicates += 1
        else:
            unique[item.parsed.message_id] = item
    existing = _existing_message_ids(session, mailbox.id, list(unique))
    for message_id, (email_id, folder) in existing.items():
        item = unique.pop(message_id)
        result.duplicates += 1
        if item.uid is not None and folder == item.folder:
            # The folder was re-read after a UIDVALIDITY change: keep addressing it by UID.
            session.execute(
                update(Email)
                .where(Email.id == email_id)
                .values(uid=item.uid, uidvalidity=item.uidvalidity)
            )
    rows = _rows(mailbox, list(unique.values()))
    if rows.emails:
        try:
            with session.begin_nested():
                _insert(session, rows)
        except IntegrityError:
            # Someone stored one of these meanwhile (an import racing a sync): go one by one.
            rows = _insert_one_by_one(session, rows)
            result.duplicates += len(unique) - len(rows.emails)
    result.stored_ids = [row["id"] for row in rows.emails]
    result.problems = sum(1 for row in rows.emails if row["parse_problems"])
    if mark is not None:
        _move_mark(session, mailbox.id, mark)
    session.commit()
    return result


def _existing_message_ids(
    session: Session, mailbox_id: uuid.UUID, message_ids: list[str]
) -> dict[str, tuple[uuid.UUID, str]]:
    found: dict[str, tuple[uuid.UUID, str]] = {}
    for start in range(0, len(message_ids), 500):
        chunk = message_ids[start : start + 500]
        rows = session.execute(
            select(Email.message_id, Email.id, Email.folder).where(
                Email.mailbox_id == mailbox_id, Email.message_id.in_(chunk)
            )
        )
        found.update({message_id: (email_id, folder) for message_id, email_id, folder in rows})
    return found


@dataclass
class _Rows:
    """A batch's rows for the email, email_body and attachment tables."""

    emails: list[dict[str, object]] = field(default_factory=list)
    bodies: list[dict[str, object]] = field(default_factory=list)
    attachments: list[dict[str, object]] = field(default_factory=list)

    def only(self, email_ids: set[object]) -> "_Rows":
        return _Rows(
            [row for row in self.emails if row["id"] in email_ids],
            [row for row in self.bodies if row["email_id"] in email_ids],
            [row for row in self.attachments if row["email_id"] in email_ids],
        )


def _insert(session: Session, rows: _Rows) -> None:
    # Core inserts on the tables: the ORM's bulk path costs more per row here.
    session.execute(insert(Email.__table__), rows.emails)
    session.execute(insert(EmailBody.__table__), rows.bodies)
    if rows.attachments:
        session.execute(insert(Attachment.__table__), rows.attachments)


def _rows(mailbox: MailboxRef, emails: list[IncomingEmail]) -> _Rows:
    now = utcnow()
    rows = _Rows()
    for item in emails:
        p = item.parsed
        email_id = uuid.uuid4()
        outgoing = p.from_address == mailbox.address.lower()
        rows.emails.append(
            {
                "id": email_id,
                "mailbox_id": mailbox.id,
                "folder": item.folder,
                "uid": item.uid,
                "uidvalidity": item.uidvalidity,
                "message_id": p.message_id,
                "message_id_missing": p.message_id_missing,
                "in_reply_to": p.in_reply_to,
                "references": p.references,
                "parent_message_id": direct_parent(p.in_reply_to, p.references),
                "direction": Direction.outgoing if outgoing else Direction.incoming,
                "from_name": p.from_name,
                "from_address": p.from_address,
                "to": p.to,
                "cc": p.cc,
                "bcc": p.bcc,
                "to_addresses": p.to_addresses,
                "cc_addresses": p.cc_addresses,
                "bcc_addresses": p.bcc_addresses,
                "subject": p.subject,
                "sent_at": p.sent_at,
                "received_at": item.received_at or p.sent_at,
                "is_read": item.seen,
                "attachment_count": len(p.attachments),
                "raw_key": p.raw_key,
                "raw_size": p.raw_size,
                "parse_problems": "; ".join(p.problems),
                "auto_kind": p.auto_kind,
                "owner_id": mailbox.owner_id,
                "needs_processing": True,
                "created_at": now,
            }
        )
        rows.bodies.append({"email_id": email_id, "text": p.body_text, "html": p.body_html})
        for a in p.attachments:
            rows.attachments.append(
                {
                    "id": uuid.uuid4(),
                    "email_id": email_id,
                    "file_name": a.file_name,
                    "mime_type": a.mime_type,
                    "size": a.size,
                    "content_id": a.content_id,
                    "is_inline": a.is_inline,
                    "checksum": a.checksum,
                    "stored": a.stored,
                    "skip_reason": a.skip_reason,
                }
            )
    return rows


def _insert_one_by_one(session: Session, rows: _Rows) -> _Rows:
    """The rows that are still new, inserted; the others (stored meanwhile) left out."""
    kept_ids = set()
    for row in rows.emails:
        try:
            with session.begin_nested():
                session.execute(insert(Email.__table__), [row])
            kept_ids.add(row["id"])
        except IntegrityError:
            continue
    kept = rows.only(kept_ids)
    if kept.bodies:
        session.execute(insert(EmailBody.__table__), kept.bodies)
    if kept.attachments:
        session.execute(insert(Attachment.__table__), kept.attachments)
    return kept


def _move_mark(session: Session, mailbox_id: uuid.UUID, mark: HighWaterMark) -> None:
    state = session.scalars(
        select(SyncState).where(SyncState.mailbox_id == mailbox_id, SyncState.folder == mark.folder)
    ).first()
    if state is None:
        state = SyncState(mailbox_id=mailbox_id, folder=mark.folder, uidvalidity=mark.uidvalidity)
        session.add(state)
    if state.uidvalidity != mark.uidvalidity:
        state.uidvalidity = mark.uidvalidity
        state.last_uid = 0
    state.last_uid = max(state.last_uid, mark.last_uid)
    state.synced_at = utcnow()
