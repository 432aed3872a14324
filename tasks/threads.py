"""Threads: a reply joins the thread of the email it answers (SPEC 4, step 6).

A thread's id is the id of its first email. A reply finds its parent by the
Message-IDs it names: In-Reply-To first, then References from the newest back.
Only the newest MAX_REFERENCES references and the root (the first one) are
looked at, so the work per email stays bounded whatever a mail client sends;
the lookups of a whole batch go in indexed IN queries.
"""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlmodel import Session

from models import Email
from tasks.matching import CHUNK

MAX_REFERENCES = 20


@dataclass
class ThreadNode:
    """An email as a reply needs it: where its thread is and what it is linked to."""

    id: uuid.UUID
    mailbox_id: uuid.UUID
    thread_id: uuid.UUID | None
    links: dict[str, uuid.UUID | None] = field(default_factory=dict)

    @property
    def thread(self) -> uuid.UUID:
        # An email not processed yet has no thread id: it will be the root of its own.
        return self.thread_id or self.id


def direct_parent(in_reply_to: str | None, references: Sequence[str]) -> str | None:
    """The Message-ID an email answers (stored as Email.parent_message_id)."""
    return in_reply_to or (references[-1] if references else None)


def parent_message_ids(own: str, in_reply_to: str | None, references: Sequence[str]) -> list[str]:
    """The Message-IDs that may name the parent, most likely first, at most MAX_REFERENCES + 2."""
    candidates = [in_reply_to] if in_reply_to else []
    candidates.extend(reversed(references[-MAX_REFERENCES:]))
    if references:
        candidates.append(references[0])
    seen: set[str] = set()
    return [m for m in candidates if m != own and not (m in seen or seen.add(m))]


def find_by_message_id(
    session: Session, message_ids: Iterable[str], link_fields: Sequence[str]
) -> dict[str, list[ThreadNode]]:
    """Stored emails with these Message-IDs (one message may sit in several mailboxes)."""
    ordered = sorted(set(message_ids))
    columns = [Email.__table__.c[name] for name in link_fields]  # type: ignore[attr-defined]
    found: dict[str, list[ThreadNode]] = {}
    for start in range(0, len(ordered), CHUNK):
        rows = session.connection().execute(
            select(Email.message_id, Email.id, Email.mailbox_id, Email.thread_id, *columns)
            .where(Email.message_id.in_(ordered[start : start + CHUNK]))
            .order_by(Email.created_at, Email.id)
        )
        for message_id, email_id, mailbox_id, thread_id, *links in rows:
            node = ThreadNode(
                email_id, mailbox_id, thread_id, dict(zip(link_fields, links, strict=True))
            )
            found.setdefault(message_id, []).append(node)
    return found


def choose_parent(
    candidates: Sequence[str], nodes: dict[str, list[ThreadNode]], mailbox_id: uuid.UUID
) -> ThreadNode | None:
    """The first candidate Message-ID that is stored; the copy in the same mailbox preferred."""
    for message_id in candidates:
        found = nodes.get(message_id)
        if found:
            return next((n for n in found if n.mailbox_id == mailbox_id), found[0])
    return None


def early_replies(
    session: Session, message_ids: Iterable[str], exclude: set[uuid.UUID]
) -> list[tuple[uuid.UUID, str]]:
    """Processed replies that started a thread of their own because their parent came later.

    Returns (reply id, the Message-ID it answers) for replies to these Message-IDs.
    """
    ordered = sorted(set(message_ids))
    found: list[tuple[uuid.UUID, str]] = []
    for start in range(0, len(ordered), CHUNK):
        rows = session.connection().execute(
            select(Email.id, Email.parent_message_id).where(
                Email.parent_message_id.in_(ordered[start : start + CHUNK]),
                Email.thread_id == Email.id,
                Email.processed_at.is_not(None),
            )
        )
        found.extend((email_id, parent) for email_id, parent in rows if email_id not in exclude)
    return found
