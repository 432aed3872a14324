"""The outbox: queueing outgoing emails, and every change of their sending state (SPEC 5).

``queue_email`` is what the CLI's ``inboxflow send`` and the email processes call:
it checks the sender's rights, renders the template, appends the signature,
checks every header, builds the exact message bytes once (so the bytes sent, the
Sent copy and the stored raw message are the same) and stores a queued Email with
its OutboxEntry. The outbound-sending flow then moves it along (models/outbox.py):

    queued → sending → completed | error | unconfirmed

Exactly once: an email is marked "sending" in a committed transaction before its
DATA goes out, and "completed" right after the server's 250. A process that dies
in between leaves it in "sending"; the next run (holding the mailbox's sender
lock, so no live run owns it) looks it up in the Sent folder and otherwise makes
it ``unconfirmed`` for a person to settle — it is never sent again on a guess.
"""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, or_, select, update
from sqlmodel import Session

from models import (
    Attachment,
    Email,
    EmailBody,
    EmailProvider,
    Mailbox,
    MailboxAccess,
    User,
    UserRole,
    get_setting,
)
from models.base import utcnow
from models.emails import Direction, SendStatus
from models.outbox import OutboxEntry, OutboxState
from tasks.compose import (
    Message,
    NamedAddress,
    Part,
    check_address,
    check_header,
    html_to_text,
    make_part,
    missing_inline_images,
    new_message_id,
    parse_addresses,
    reply_references,
    reply_subject,
    with_signature,
)
from tasks.errors import (
    AttachmentTooLargeError,
    ConfigError,
    OutboxError,
    SendPermissionError,
    SmtpError,
    SmtpTemporaryError,
    SmtpUncertainError,
)
from tasks.filestore import FileStore
from tasks.handover import Delivered
from tasks.matching import CHUNK
from tasks.templates import SourceRef, find_template, parse_source, render_template
from tasks.threads import direct_parent

# What a user sees when sending failed; the cause stays on the row and in the log.
USER_ERROR_MESSAGE = "Error sending email, please contact system administrator"
DEFAULT_MAX_ATTEMPTS = 5
# Temporary failures wait 1, 2, 4, 8 minutes ... (at most an hour) between attempts.
DEFAULT_RETRY_DELAY = 60
MAX_RETRY_DELAY = 3600

EMAIL = Email.__table__  # type: ignore[attr-defined]
ENTRY = OutboxEntry.__table__  # type: ignore[attr-defined]


# Queueing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewAttachment:
    """A file to send; with a content id it is an inline image the HTML shows as cid:ID."""

    file_name: str
    content: bytes
    mime_type: str | None = None
    content_id: str | None = None

    @classmethod
    def from_path(cls, path: str | Path, *, inline: bool = False) -> "NewAttachment":
        """Read a file; an inline image's content id is its file name (<img src="cid:NAME">)."""
        path = Path(path)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise OutboxError(f"cannot read attachment {path}: {exc.strerror or exc}") from exc
        return cls(path.name, content, None, path.name if inline else None)


@dataclass
class OutgoingEmail:
    """What a user or a process asks to send. Give a body, an HTML body or a template."""

    mailbox: str
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    subject: str | None = None
    body_text: str | None = None
    body_html: str | None = None
    template: str | None = None
    source: str | SourceRef | None = None  # "Contact:UUID" fills the template's macros
    attachments: list[NewAttachment] = field(default_factory=list)
    reply_to_email_id: uuid.UUID | None = None


def queue_email(
    session: Session,
    outgoing: OutgoingEmail,
    sender: str | None,
    *,
    store: FileStore,
    auto_submitted: bool = False,
) -> Email:
    """Check, compose and queue an email; returns the queued Email (flushed, not committed).

    ``sender`` is the name of the user sending; None means an automatic process,
    whose mail always carries ``Auto-Submitted: auto-generated``.
    """
    mailbox = _sending_mailbox(session, outgoing.mailbox)
    user = _user_named(session, sender) if sender is not None else None
    if user is not None:
        check_send_rights(session, user, mailbox)
    auto_submitted = auto_submitted or user is None
    parent = _parent(session, outgoing.reply_to_email_id)
    source = parse_source(outgoing.source) if isinstance(outgoing.source, str) else outgoing.source
    from_name = check_header("the mailbox's display name", mailbox.display_name.strip())
    sender_address = NamedAddress(from_name, check_address("From", mailbox.address))

    subject, body_text, body_html = outgoing.subject, outgoing.body_text, outgoing.body_html
    to_values = list(outgoing.to)
    template_name = None
    if outgoing.template:
        template = find_template(session, outgoing.template)
        who = {"name": user.name if user else from_name, "email": mailbox.address}
        who["mailbox"] = from_name or mailbox.address
        rendered = render_template(session, template, source, who)
        template_name = rendered.template_name
        subject = subject if subject is not None else rendered.subject
        body_html = rendered.html
        if not (to_values or outgoing.cc or outgoing.bcc) and rendered.recipient_email:
            to_values = [rendered.recipient_email]
    elif source is not None:
        raise OutboxError("--source fills a template's macros: give --template as well")
    if parent is not None:
        subject = subject if subject is not None else reply_subject(parent.subject)
        if not (to_values or outgoing.cc or outgoing.bcc) and parent.from_address:
            to_values = [parent.from_address]
    if subject is None:
        raise OutboxError("an email needs a subject (--subject)")
    if body_text is None and body_html is None:
        raise OutboxError("an email needs a body: --body, --html-file or --template")

    to = parse_addresses("To", to_values)
    cc = parse_addresses("Cc", outgoing.cc)
    bcc = parse_addresses("Bcc", outgoing.bcc)
    if not (to or cc or bcc):
        raise OutboxError("an email needs at least one recipient (--to, --cc or --bcc)")
    parts = _checked_parts(session, outgoing.attachments, body_html)
    text = body_text if body_text is not None else html_to_text(body_html or "")
    text, body_html = with_signature(text, body_html, mailbox.signature_html)

    message = Message(
        sender=sender_address,
        to=to,
        cc=cc,
        bcc=bcc,
        subject=check_header("Subject", subject),
        text=text,
        html=body_html,
        message_id=new_message_id(mailbox.address),
        date=utcnow(),
        in_reply_to=_reply_header("In-Reply-To", [parent.message_id])[0] if parent else None,
        references=_reply_header(
            "References", reply_references(parent.message_id, parent.references or [])
        )
        if parent is not None
        else [],
        auto_submitted=auto_submitted,
        parts=parts,
    )
    raw = message.build()
    email = Email(
        mailbox_id=mailbox.id,
        message_id=message.message_id,
        in_reply_to=message.in_reply_to,
        references=message.references,
        parent_message_id=direct_parent(message.in_reply_to, message.references),
        thread_id=(parent.thread_id or parent.id) if parent is not None else None,
        direction=Direction.outgoing,
        from_name=from_name,
        from_address=mailbox.address,
        to=", ".join(m.display() for m in to),
        cc=", ".join(m.display() for m in cc),
        bcc=", ".join(m.display() for m in bcc),
        to_addresses=[m.address.lower() for m in to],  # lower-case for matching, like sync
        cc_addresses=[m.address.lower() for m in cc],
        bcc_addresses=[m.address.lower() for m in bcc],
        subject=message.subject,
        body=EmailBody(text=text, html=body_html or ""),
        is_read=True,
        attachment_count=len(parts),
        raw_key=store.put(raw),
        raw_size=len(raw),
        owner_id=mailbox.owner_id,
        send_status=SendStatus.queued,
    )
    email.attachments = [
        Attachment(
            file_name=part.file_name,
            mime_type=part.mime_type,
            size=len(part.content),
            content_id=part.content_id,
            is_inline=part.is_inline,
            checksum=store.put(part.content),
        )
        for part in parts
    ]
    session.add(email)
    session.flush()
    session.add(
        OutboxEntry(
            email_id=email.id,
            mailbox_id=mailbox.id,
            sender_user_id=user.id if user is not None else None,
            auto_submitted=auto_submitted,
            reply_to_email_id=parent.id if parent is not None else None,
            template_name=template_name,
            source_object=source.object if source is not None else None,
            source_id=source.id if source is not None else None,
            envelope_to=message.envelope_recipients,
        )
    )
    session.flush()
    return email


def check_send_rights(session: Session, user: User, mailbox: Mailbox) -> None:
    """The owner may send; so may a user or role the mailbox is shared with "send emails"."""
    if mailbox.owner_id == user.id:
        return
    roles = select(UserRole.role_id).where(UserRole.user_id == user.id)
    shared = session.scalar(
        select(MailboxAccess.id).where(
            MailboxAccess.mailbox_id == mailbox.id,
            MailboxAccess.can_send.is_(True),
            or_(MailboxAccess.user_id == user.id, MailboxAccess.role_id.in_(roles)),
        )
    )
    if shared is None:
        raise SendPermissionError(
            f"user {user.name!r} may not send from {mailbox.address}: only its owner and "
            'users or roles it is shared with "send emails" may; ask its owner to share it'
        )


def _sending_mailbox(session: Session, address: str) -> Mailbox:
    mailbox = session.scalar(select(Mailbox).where(Mailbox.address == address.strip().lower()))
    if mailbox is None:
        raise ConfigError(f"no mailbox {address} (see `inboxflow mailbox list`)")
    if not mailbox.sending_enabled:
        raise OutboxError(f"sending is disabled for mailbox {mailbox.address}")
    provider = session.get(EmailProvider, mailbox.provider_id)
    if provider is None or not provider.smtp_host:
        raise ConfigError(
            f"mailbox {mailbox.address}: its provider has no SMTP server "
            "(add one with `inboxflow provider add ... --smtp HOST:PORT`)"
        )
    return mailbox


def _user_named(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise SendPermissionError(f"no user named {name!r}: who is sending?")
    return user


def _parent(session: Session, email_id: uuid.UUID | None) -> Email | None:
    if email_id is None:
        return None
    parent = session.get(Email, email_id)
    if parent is None:
        raise OutboxError(f"no email {email_id} to reply to")
    return parent


def _reply_header(what: str, message_ids: list[str]) -> list[str]:
    """The parent's ids come from a received email: check them like anything typed."""
    return [check_header(what, message_id) for message_id in message_ids]


def _checked_parts(
    session: Session, attachments: Sequence[NewAttachment], body_html: str | None
) -> list[Part]:
    limit = int(get_setting(session, "MaxFileSize"))
    parts = []
    for item in attachments:
        part = make_part(item.file_name, item.content, item.mime_type, item.content_id)
        if len(part.content) > limit:
            raise AttachmentTooLargeError(
                f"attachment {part.file_name} is {_size(len(part.content))}; "
                f"the limit (MaxFileSize) is {_size(limit)}"
            )
        if part.is_inline and body_html is None:
            raise OutboxError(f"inline image {part.file_name} needs an HTML body to appear in")
        parts.append(part)
    missing = missing_inline_images(body_html or "", parts)
    if missing:
        raise OutboxError(
            f"the HTML shows cid:{missing[0]} but no inline image has that name "
            "(add it with --inline FILE)"
        )
    return parts


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / 1024 / 1024:.1f} MB"
    return f"{count / 1024:.0f} KB" if count >= 1024 else f"{count} bytes"


# The sender's state changes ---------------------------------------------------------------


@dataclass(frozen=True)
class SendItem:
    """One due email as the sender needs it: no ORM object, nothing to lazy-load."""

    email_id: uuid.UUID
    message_id: str
    raw_key: str | None
    envelope_to: list[str]
    bcc: str
    attempts: int


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    delay_seconds: int = DEFAULT_RETRY_DELAY

    def next_attempt(self, attempts: int, now: datetime) -> datetime | None:
        """When to try again after this many attempts; None: no attempts left."""
        if attempts >= self.max_attempts:
            return None
        delay = min(self.delay_seconds * 2 ** max(attempts - 1, 0), MAX_RETRY_DELAY)
        return now + timedelta(seconds=delay)


def _send_items() -> Select:
    """What a send needs of an outbox entry and its email (one SendItem per row)."""
    return select(
        ENTRY.c.email_id,
        EMAIL.c.message_id,
        EMAIL.c.raw_key,
        ENTRY.c.envelope_to,
        EMAIL.c.bcc,
        ENTRY.c.attempts,
    ).join(EMAIL, EMAIL.c.id == ENTRY.c.email_id)


def due_items(
    connection: Connection,
    mailbox_id: uuid.UUID,
    now: datetime,
    email_ids: Sequence[uuid.UUID] | None = None,
    limit: int | None = None,
) -> list[SendItem]:
    """Queued emails of a mailbox whose time has come, oldest first."""
    query = (
        _send_items()
        .where(
            ENTRY.c.mailbox_id == mailbox_id,
            ENTRY.c.state == OutboxState.queued,
            or_(ENTRY.c.next_attempt_at.is_(None), ENTRY.c.next_attempt_at <= now),
        )
        .order_by(ENTRY.c.queued_at, ENTRY.c.email_id)
    )
    if email_ids is not None:
        query = query.where(ENTRY.c.email_id.in_(list(email_ids)))
    if limit is not None:
        query = query.limit(limit)
    with connection.begin():  # a short read; the claim that follows commits on its own
        return [SendItem(*row) for row in connection.execute(query)]


def claim_batch(connection: Connection, items: Sequence[SendItem], now: datetime) -> list[SendItem]:
    """Mark due emails "sending" in one commit; returns those claimed (still queued until now).

    Call under the mailbox's sender lock, after the hand-over journal has them as claimed.
    """
    if not items:
        return []
    ids = [item.email_id for item in items]
    with connection.begin():
        connection.execute(
            update(ENTRY)
            .where(ENTRY.c.email_id.in_(ids), ENTRY.c.state == OutboxState.queued)
            .values(state=OutboxState.sending, last_attempt_at=now)
        )
        claimed = set(
            connection.scalars(
                select(ENTRY.c.email_id).where(
                    ENTRY.c.email_id.in_(ids), ENTRY.c.state == OutboxState.sending
                )
            )
        )
        connection.execute(
            update(EMAIL).where(EMAIL.c.id.in_(claimed)).values(send_status=SendStatus.sending)
        )
    return [item for item in items if item.email_id in claimed]


def record_delivered(
    connection: Connection,
    delivered: Sequence[tuple[Delivered, int]],
    now: datetime,
    policy: RetryPolicy,
    resolution: str | None = None,
) -> list[uuid.UUID]:
    """The server took these (delivery, attempts incl. this one), in one commit.

    "completed", or, when it refused some recipients for now (4xx) and attempts are
    left, queued again for just those recipients. Returns the emails whose copy is
    still to be made (a later attempt for some recipients needs no second copy).
    """
    if not delivered:
        return []
    ids = [d.email_id for d, _ in delivered]
    # When the recipients refused for now get their next attempt (none: all done).
    retries = {
        d.email_id: next_at
        for d, attempts in delivered
        if _refused_for_now(d.refused) and (next_at := policy.next_attempt(attempts, now))
    }
    done = [d.email_id for d, _ in delivered if d.email_id not in retries]
    entries = [
        {
            "b_id": d.email_id,
            "b_reply": d.reply,
            "b_refused": d.refused,
            "b_attempts": attempts,
            "b_state": OutboxState.queued if d.email_id in retries else OutboxState.completed,
            "b_next": retries.get(d.email_id),
        }
        for d, attempts in delivered
    ]
    notes = [
        {"b_id": d.email_id, "b_note": _refusal_note(d.refused, attempts, retries.get(d.email_id))}
        for d, attempts in delivered
        if d.refused
    ]
    with connection.begin():
        copied = set(
            connection.scalars(
                select(ENTRY.c.email_id).where(
                    ENTRY.c.email_id.in_(ids), ENTRY.c.sent_copy_at.is_not(None)
                )
            )
        )
        # Each email's own answer, while it is still "sending"; then what they share, one
        # statement each: executemany processes every parameter of every row.
        connection.execute(
            update(ENTRY)
            .where(ENTRY.c.email_id == bindparam("b_id"), ENTRY.c.state == OutboxState.sending)
            .values(
                state=bindparam("b_state"),
                smtp_reply=bindparam("b_reply"),
                refused=bindparam("b_refused"),
                attempts=bindparam("b_attempts"),
                next_attempt_at=bindparam("b_next"),
                resolution=resolution,
                sent_copy_pending=ENTRY.c.sent_copy_at.is_(None),
            ),
            entries,
        )
        if done:
            connection.execute(
                update(ENTRY).where(ENTRY.c.email_id.in_(done)).values(completed_at=now)
            )
        if retries:
            # Only the recipients that refused for now get the next attempt.
            connection.execute(
                update(ENTRY)
                .where(ENTRY.c.email_id == bindparam("b_id"))
                .values(envelope_to=bindparam("b_to")),
                [
                    {"b_id": d.email_id, "b_to": list(_refused_for_now(d.refused))}
                    for d, _ in delivered
                    if d.email_id in retries
                ],
            )
        connection.execute(
            update(EMAIL)
            .where(EMAIL.c.id.in_(ids))
            .values(
                send_status=SendStatus.completed,
                send_error=None,
                sent_at=func.coalesce(EMAIL.c.sent_at, now),
            )
        )
        if notes:
            connection.execute(
                update(EMAIL)
                .where(EMAIL.c.id == bindparam("b_id"))
                .values(send_error=bindparam("b_note")),
                notes,
            )
    return [i for i in ids if i not in copied]


def _refused_for_now(refused: dict[str, str]) -> dict[str, str]:
    """The recipients the server refused with a 4xx: a later attempt may reach them."""
    return {address: reply for address, reply in refused.items() if reply.startswith("4")}


def _refusal_note(refused: dict[str, str], attempts: int, next_attempt: datetime | None) -> str:
    for_now = _refused_for_now(refused)
    final = {address: reply for address, reply in refused.items() if address not in for_now}
    parts = []
    if final:
        parts.append(f"the server refused some recipients: {_listed(final)}")
    if for_now and next_attempt is not None:
        parts.append(
            f"refused for now, tried again after {next_attempt:%Y-%m-%d %H:%M:%S} UTC: "
            f"{_listed(for_now)}"
        )
    elif for_now:
        parts.append(
            f"gave up on {', '.join(for_now)} after {attempts} attempts: {_listed(for_now)}"
        )
    return "sent, but " + "; ".join(parts)


def _listed(replies: dict[str, str]) -> str:
    return "; ".join(f"{address}: {reply}" for address, reply in replies.items())


def record_failure(
    connection: Connection,
    items: Iterable[tuple[uuid.UUID, int]],
    error: SmtpError,
    policy: RetryPolicy,
    now: datetime,
) -> dict[str, int]:
    """Record a failed attempt for (email id, attempts so far incl. this one) pairs.

    Temporary failures go back to the queue until attempts run out; permanent ones
    become errors; an uncertain one becomes unconfirmed. Returns counts by new state.
    """
    counts: dict[str, int] = {}
    entry_rows: list[dict[str, Any]] = []
    email_rows: list[dict[str, Any]] = []
    items = list(items)
    with connection.begin():  # a short read; the writes below commit on their own
        partly_sent = _partly_sent(connection, [email_id for email_id, _ in items])
    for email_id, attempts in items:
        state, status, cause, next_at = _after_failure(email_id, attempts, error, policy, now)
        if email_id in partly_sent and state in (OutboxState.queued, OutboxState.error):
            # The others have it: this attempt was for the recipients who refused for now.
            rest = ", ".join(partly_sent[email_id])
            status = SendStatus.completed
            if state == OutboxState.error:
                state = OutboxState.completed
                cause = f"sent, but gave up on {rest} after {attempts} attempts: {error}"
            else:
                cause = f"sent, but not yet to {rest}: {cause}"
        counts[state] = counts.get(state, 0) + 1
        entry_rows.append(
            {"b_id": email_id, "b_state": state, "b_next": next_at, "b_attempts": attempts}
        )
        email_rows.append({"b_id": email_id, "b_status": status, "b_error": cause})
    if not entry_rows:
        return counts
    with connection.begin():
        connection.execute(
            update(ENTRY)
            .where(ENTRY.c.email_id == bindparam("b_id"))
            .values(
                state=bindparam("b_state"),
                next_attempt_at=bindparam("b_next"),
                attempts=bindparam("b_attempts"),
                last_attempt_at=now,
            ),
            entry_rows,
        )
        connection.execute(
            update(EMAIL)
            .where(EMAIL.c.id == bindparam("b_id"))
            .values(send_status=bindparam("b_status"), send_error=bindparam("b_error")),
            email_rows,
        )
    return counts


def _partly_sent(connection: Connection, email_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """Emails delivered to some recipients already: the recipients still waiting."""
    found: dict[uuid.UUID, list[str]] = {}
    # In chunks: a dead server fails the whole queue at once, beyond SQLite's IN limit.
    for start in range(0, len(email_ids), CHUNK):
        query = (
            select(ENTRY.c.email_id, ENTRY.c.envelope_to)
            .join(EMAIL, EMAIL.c.id == ENTRY.c.email_id)
            .where(
                ENTRY.c.email_id.in_(email_ids[start : start + CHUNK]),
                EMAIL.c.sent_at.is_not(None),
            )
        )
        found.update((email_id, list(to)) for email_id, to in connection.execute(query))
    return found


def _after_failure(
    email_id: uuid.UUID, attempts: int, error: SmtpError, policy: RetryPolicy, now: datetime
) -> tuple[OutboxState, SendStatus, str, datetime | None]:
    if isinstance(error, SmtpUncertainError):
        cause = (
            f"{error}. It is not sent again by itself: check with the recipient, then run "
            f"`inboxflow outbox resolve {email_id} --sent` or `--not-sent`"
        )
        return OutboxState.unconfirmed, SendStatus.error, cause, None
    next_at = policy.next_attempt(attempts, now) if isinstance(error, SmtpTemporaryError) else None
    if next_at is not None:
        cause = (
            f"attempt {attempts} of {policy.max_attempts} failed, next one after "
            f"{next_at:%Y-%m-%d %H:%M:%S} UTC: {error}"
        )
        return OutboxState.queued, SendStatus.queued, cause, next_at
    if isinstance(error, SmtpTemporaryError):
        cause = f"gave up after {attempts} attempts: {error}"
    else:
        cause = str(error)
    return OutboxState.error, SendStatus.error, cause, None


def interrupted(connection: Connection, mailbox_id: uuid.UUID) -> list[SendItem]:
    """Emails left in "sending" by a run that died (call only under the mailbox's sender lock)."""
    query = _send_items().where(
        ENTRY.c.mailbox_id == mailbox_id, ENTRY.c.state == OutboxState.sending
    )
    with connection.begin():  # a short read; the claim that follows commits on its own
        return [SendItem(*row) for row in connection.execute(query)]


def settle_interrupted(
    connection: Connection,
    found_in_sent: Sequence[uuid.UUID],
    unknown: Sequence[uuid.UUID],
    why_unknown: str,
    now: datetime,
) -> None:
    """Interrupted emails found in the Sent folder are completed; the rest await a person."""
    with connection.begin():
        for email_id in found_in_sent:
            connection.execute(
                update(ENTRY)
                .where(ENTRY.c.email_id == email_id, ENTRY.c.state == OutboxState.sending)
                .values(
                    state=OutboxState.completed,
                    attempts=ENTRY.c.attempts + 1,
                    completed_at=now,
                    resolution="found in the Sent folder after an interrupted run",
                    sent_copy_pending=False,
                    sent_copy_at=now,
                )
            )
            connection.execute(
                update(EMAIL)
                .where(EMAIL.c.id == email_id)
                .values(send_status=SendStatus.completed, send_error=None, sent_at=now)
            )
        for email_id in unknown:
            cause = (
                "the sending run stopped after handing this email to the SMTP server and "
                f"before recording the answer, so it may have been delivered ({why_unknown}). "
                "It is not sent again by itself: check with the recipient, then run "
                f"`inboxflow outbox resolve {email_id} --sent` or `--not-sent`"
            )
            connection.execute(
                update(ENTRY)
                .where(ENTRY.c.email_id == email_id, ENTRY.c.state == OutboxState.sending)
                .values(state=OutboxState.unconfirmed, attempts=ENTRY.c.attempts + 1)
            )
            connection.execute(
                update(EMAIL)
                .where(EMAIL.c.id == email_id)
                .values(send_status=SendStatus.error, send_error=cause)
            )


def release_never_sent(connection: Connection, email_ids: Sequence[uuid.UUID]) -> None:
    """Claimed by a run that stopped before their DATA: queued again, no attempt counted."""
    if not email_ids:
        return
    ids = list(email_ids)
    with connection.begin():
        connection.execute(
            update(ENTRY)
            .where(ENTRY.c.email_id.in_(ids), ENTRY.c.state == OutboxState.sending)
            .values(state=OutboxState.queued)
        )
        connection.execute(
            update(EMAIL).where(EMAIL.c.id.in_(ids)).values(send_status=SendStatus.queued)
        )


@dataclass(frozen=True)
class CopyItem:
    """A completed email whose copy still has to go to the Sent folder."""

    email_id: uuid.UUID
    message_id: str
    raw_key: str | None
    bcc: str


def pending_sent_copies(connection: Connection, mailbox_id: uuid.UUID) -> list[CopyItem]:
    query = (
        select(ENTRY.c.email_id, EMAIL.c.message_id, EMAIL.c.raw_key, EMAIL.c.bcc)
        .join(EMAIL, EMAIL.c.id == ENTRY.c.email_id)
        .where(ENTRY.c.mailbox_id == mailbox_id, ENTRY.c.sent_copy_pending.is_(True))
        .order_by(ENTRY.c.completed_at)
    )
    with connection.begin():
        return [CopyItem(*row) for row in connection.execute(query)]


def record_sent_copies(
    connection: Connection,
    email_ids: Sequence[uuid.UUID],
    folder: str,
    uidvalidity: int | None,
    uids: Sequence[int | None],
    now: datetime,
) -> None:
    """The copies are in the Sent folder; the Email rows now point at them (folder, UID)."""
    if not email_ids:
        return
    with connection.begin():
        connection.execute(
            update(ENTRY)
            .where(ENTRY.c.email_id == bindparam("b_id"))
            .values(
                sent_copy_pending=False, sent_folder=folder, sent_copy_at=now, sent_copy_error=None
            ),
            [{"b_id": email_id} for email_id in email_ids],
        )
        connection.execute(
            update(EMAIL)
            .where(EMAIL.c.id == bindparam("b_id"))
            .values(folder=folder, uid=bindparam("b_uid"), uidvalidity=uidvalidity),
            [{"b_id": i, "b_uid": uid} for i, uid in zip(email_ids, uids, strict=True)],
        )


def record_filed_by_provider(
    connection: Connection, email_ids: Sequence[uuid.UUID], now: datetime
) -> None:
    """No copy to make: the provider's SMTP server filed these in Sent itself."""
    _set_entries(
        connection, email_ids, sent_copy_pending=False, sent_copy_at=now, sent_copy_error=None
    )


def record_sent_copy_error(
    connection: Connection, email_ids: Sequence[uuid.UUID], error: str
) -> None:
    """The copies could not be appended; they stay pending and the next run tries again."""
    _set_entries(connection, email_ids, sent_copy_error=error)


def _set_entries(connection: Connection, email_ids: Sequence[uuid.UUID], **values: Any) -> None:
    if email_ids:
        with connection.begin():
            connection.execute(
                update(ENTRY).where(ENTRY.c.email_id.in_(list(email_ids))).values(**values)
            )


# What a person does -----------------------------------------------------------------------


def retry_email(session: Session, email_id: uuid.UUID) -> str:
    """Queue a failed email again, due at once with fresh attempts; returns what was done."""
    entry = _entry(session, email_id)
    if entry.state == OutboxState.unconfirmed:
        raise OutboxError(
            f"email {email_id} may have been delivered already (its run stopped after handing "
            "it to the server); check with the recipient, then run "
            f"`inboxflow outbox resolve {email_id} --sent` or `--not-sent`"
        )
    if entry.state == OutboxState.completed:
        raise OutboxError(f"email {email_id} was sent already ({entry.smtp_reply or 'completed'})")
    if entry.state == OutboxState.sending:
        raise OutboxError(
            f"email {email_id} is being sent right now; if no run is going, the next run settles it"
        )
    was = entry.state
    _requeue(session, entry)
    return "queued again" if was == OutboxState.error else "queued (it was waiting to retry)"


def retry_failed(session: Session, mailbox: str | None) -> list[uuid.UUID]:
    """Queue again every email in error (not the unconfirmed ones) of one or all mailboxes."""
    query = select(OutboxEntry).where(OutboxEntry.state == OutboxState.error)
    if mailbox:
        query = query.join(Mailbox, Mailbox.id == OutboxEntry.mailbox_id).where(
            Mailbox.address == mailbox.strip().lower()
        )
    entries = list(session.scalars(query))
    for entry in entries:
        _requeue(session, entry)
    return [entry.email_id for entry in entries]


def resolve_email(session: Session, email_id: uuid.UUID, *, sent: bool, by: str) -> str:
    """A person settles an unconfirmed email: it was delivered (sent) or it was not (queue it)."""
    entry = _entry(session, email_id)
    if entry.state != OutboxState.unconfirmed:
        raise OutboxError(
            f"email {email_id} is {entry.state}, not waiting for confirmation; "
            "only emails whose sending was interrupted are resolved"
        )
    email = session.get(Email, email_id)
    assert email is not None
    now = utcnow()
    if sent:
        entry.state = OutboxState.completed
        entry.completed_at = now
        entry.resolution = f"confirmed delivered by {by}"
        # The Sent folder may hold it already (providers that file sent mail): the
        # copier looks before appending (pending copies from earlier runs are checked).
        entry.sent_copy_pending = True
        email.send_status = SendStatus.completed
        email.send_error = None
        email.sent_at = email.sent_at or now
        session.add_all([entry, email])
        return "recorded as sent"
    entry.resolution = f"confirmed not delivered by {by}; queued again"
    _requeue(session, entry)
    return "queued again"


def _entry(session: Session, email_id: uuid.UUID) -> OutboxEntry:
    entry = session.get(OutboxEntry, email_id)
    if entry is None:
        raise OutboxError(f"no outgoing email {email_id} (see `inboxflow outbox list`)")
    return entry


def _requeue(session: Session, entry: OutboxEntry) -> None:
    email = session.get(Email, entry.email_id)
    assert email is not None
    entry.state = OutboxState.queued
    entry.attempts = 0
    entry.next_attempt_at = None
    email.send_status = SendStatus.queued
    email.send_error = None
    session.add_all([entry, email])


# Listing ----------------------------------------------------------------------------------


def list_outbox(
    session: Session,
    mailbox: str | None = None,
    state: OutboxState | None = None,
    limit: int | None = 50,
) -> list[dict[str, object]]:
    """Outgoing emails, newest first, with the user's message and the cause for operators."""
    query = (
        select(OutboxEntry, Email, Mailbox.address)
        .join(Email, Email.id == OutboxEntry.email_id)
        .join(Mailbox, Mailbox.id == OutboxEntry.mailbox_id)
        .order_by(OutboxEntry.queued_at.desc(), OutboxEntry.email_id)
    )
    if mailbox:
        query = query.where(Mailbox.address == mailbox.strip().lower())
    if state is not None:
        query = query.where(OutboxEntry.state == state)
    if limit:
        query = query.limit(limit)
    rows = []
    for entry, email, address in session.execute(query):
        failed = entry.state in (OutboxState.error, OutboxState.unconfirmed)
        rows.append(
            {
                "id": str(email.id),
                "mailbox": address,
                "to": email.to or email.cc or email.bcc,
                "subject": email.subject,
                "status": str(email.send_status or ""),
                "state": str(entry.state),
                "attempts": entry.attempts,
                "queued": entry.queued_at.isoformat(timespec="seconds"),
                "next_attempt": entry.next_attempt_at.isoformat(timespec="seconds")
                if entry.next_attempt_at
                else None,
                "sent": email.sent_at.isoformat(timespec="seconds") if email.sent_at else None,
                "message": USER_ERROR_MESSAGE if failed else "",
                "cause": email.send_error or "",
                "smtp_reply": entry.smtp_reply or "",
                "resolution": entry.resolution or "",
                "sent_copy": entry.sent_folder or ("pending" if entry.sent_copy_pending else ""),
                "message_id": email.message_id,
            }
        )
    return rows
