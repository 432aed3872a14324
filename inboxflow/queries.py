"""Read-only queries behind the CLI's listings."""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from models import (
    Account,
    Attachment,
    Contact,
    Email,
    EmailProvider,
    Mailbox,
    ProviderDomain,
    SyncState,
)
from models.emails import Direction
from models.records import RECORD_TYPES
from tasks.errors import ConfigError


@dataclass
class EmailFilter:
    mailbox: str | None = None
    folder: str | None = None
    unread: bool = False
    limit: int | None = 50
    # True: only emails that still need processing; False: only processed ones.
    needs_processing: bool | None = None
    outbound: bool = False


def list_providers(session: Session) -> list[dict[str, object]]:
    providers = session.scalars(select(EmailProvider).order_by(EmailProvider.name)).all()
    domains: dict[uuid.UUID, list[str]] = {}
    for row in session.scalars(select(ProviderDomain).order_by(ProviderDomain.domain)):
        domains.setdefault(row.provider_id, []).append(row.domain)
    return [
        {
            "name": p.name,
            "imap": f"{p.imap_host}:{p.imap_port}",
            "imap_security": str(p.imap_security),
            "smtp": f"{p.smtp_host}:{p.smtp_port}" if p.smtp_host else "",
            "smtp_security": str(p.smtp_security),
            "smtp_timeout": p.smtp_timeout,
            "login_format": str(p.login_format),
            "auth": str(p.auth),
            "files_sent_mail": p.files_sent_mail,
            "domains": domains.get(p.id, []),
        }
        for p in providers
    ]


def list_mailboxes(session: Session) -> list[dict[str, object]]:
    rows = session.execute(
        select(Mailbox, EmailProvider.name)
        .join(EmailProvider, Mailbox.provider_id == EmailProvider.id)
        .order_by(Mailbox.address)
    ).all()
    synced = {
        mailbox_id: last
        for mailbox_id, last in session.execute(select(SyncState.mailbox_id, SyncState.synced_at))
        if last is not None
    }
    return [
        {
            "address": m.address,
            "provider": provider,
            "login": m.login,
            "credential": m.credential_ref,
            "folders": "all" if m.folders is None else m.folders,
            "first_sync": str(m.first_sync_period),
            "download_enabled": m.download_enabled,
            "tls_insecure": m.tls_insecure,
            "last_synced": synced[m.id].isoformat(timespec="seconds") if m.id in synced else None,
        }
        for m, provider in rows
    ]


def list_emails(session: Session, where: EmailFilter) -> list[dict[str, object]]:
    query = select(Email, Mailbox.address).join(Mailbox, Email.mailbox_id == Mailbox.id)
    if where.mailbox:
        query = query.where(Mailbox.address == where.mailbox.lower())
    if where.folder:
        query = query.where(Email.folder == where.folder)
    if where.unread:
        query = query.where(Email.is_read.is_(False))
    if where.needs_processing is not None:
        query = query.where(Email.needs_processing.is_(where.needs_processing))
    if where.outbound:
        query = query.where(Email.direction == Direction.outgoing)
    query = query.order_by(Email.received_at.desc(), Email.created_at.desc())
    if where.limit:
        query = query.limit(where.limit)
    rows = session.execute(query).all()
    names = link_names(session, [email for email, _ in rows])
    return [
        {**_email_summary(email, address), **_links_summary(email, names)}
        for email, address in rows
    ]


# Email column → record type, for naming what an email is linked to.
LINK_COLUMNS = {f"{name.lower()}_id": name for name in RECORD_TYPES}


def link_names(session: Session, emails: list[Email]) -> dict[uuid.UUID, str]:
    """Names of the contacts, accounts and records these emails link to, in a few IN queries."""
    wanted: dict[str, set[uuid.UUID]] = {}
    for email in emails:
        for column in ("contact_id", "account_id", *LINK_COLUMNS):
            if getattr(email, column):
                wanted.setdefault(column, set()).add(getattr(email, column))
    names: dict[uuid.UUID, str] = {}
    for column, ids in wanted.items():
        model = {"contact_id": Contact, "account_id": Account}.get(column)
        model = model or RECORD_TYPES[LINK_COLUMNS[column]]
        # Records with a number (Inv-53) are known by it, the others by their name.
        label = model.number if hasattr(model, "number") else model.name  # type: ignore[attr-defined]
        for start in range(0, len(ids), 900):
            chunk = sorted(ids)[start : start + 900]
            rows = session.execute(select(model.id, label).where(model.id.in_(chunk)))  # type: ignore[attr-defined]
            names.update({record_id: str(value) for record_id, value in rows})
    return names


def _links_summary(email: Email, names: dict[uuid.UUID, str]) -> dict[str, object]:
    records = [
        f"{record_type} {names.get(getattr(email, column), '?')}"
        for column, record_type in LINK_COLUMNS.items()
        if getattr(email, column)
    ]
    people = [names.get(email.contact_id, "?") if email.contact_id else ""]
    people.append(names.get(email.account_id, "?") if email.account_id else "")
    return {
        "contact": people[0] or None,
        "account": people[1] or None,
        "records": records,
        "linked to": " / ".join([p for p in people if p] + records),
        "needs_processing": email.needs_processing,
        "todo": "yes" if email.needs_processing else "",
        "bound_by_rule": email.bound_by_rule,
        "auto": email.auto_kind,
        "thread_id": str(email.thread_id) if email.thread_id else None,
        "direction": str(email.direction),
    }


def _email_summary(email: Email, mailbox: str) -> dict[str, object]:
    moment = email.sent_at or email.received_at
    return {
        "id": str(email.id),
        "mailbox": mailbox,
        "folder": email.folder,
        "uid": email.uid,
        "message_id": email.message_id,
        "subject": email.subject,
        "from": f"{email.from_name} <{email.from_address}>"
        if email.from_name
        else email.from_address,
        "to": email.to,
        "cc": email.cc,
        "date": moment.isoformat(timespec="seconds") if moment else None,
        "read": email.is_read,
        "attachments": email.attachment_count,
    }


def get_email(session: Session, email_id: str) -> dict[str, object]:
    try:
        key = uuid.UUID(email_id)
    except ValueError as exc:
        raise ConfigError(f"{email_id!r} is not an email id (a UUID from `emails list`)") from exc
    row = session.execute(
        select(Email, Mailbox.address).join(Mailbox).where(Email.id == key)
    ).first()
    if row is None:
        raise ConfigError(f"email {email_id} not found")
    email, mailbox = row
    attachments = session.scalars(select(Attachment).where(Attachment.email_id == key)).all()
    details = {
        **_email_summary(email, mailbox),
        **_links_summary(email, link_names(session, [email])),
    }
    details.update(
        {
            "bcc": email.bcc,
            "direction": str(email.direction),
            "in_reply_to": email.in_reply_to,
            "references": email.references,
            "received_at": email.received_at.isoformat() if email.received_at else None,
            "body_text": email.body_text,
            "body_html": email.body_html,
            "raw_key": email.raw_key,
            "raw_size": email.raw_size,
            "parse_problems": email.parse_problems,
            "needs_processing": email.needs_processing,
            "attachment_list": [
                {
                    "file_name": a.file_name,
                    "mime_type": a.mime_type,
                    "size": a.size,
                    "inline": a.is_inline,
                    "content_id": a.content_id,
                    "checksum": a.checksum,
                    "stored": a.stored,
                    "skip_reason": a.skip_reason,
                }
                for a in attachments
            ],
        }
    )
    return details


def process_results(session: Session) -> list[dict[str, str | int]]:
    """Leads and cases with their contact, how many emails link to them, and the reply queued."""
    rows: list[dict[str, str | int]] = []
    for record_type, title_column in (("Lead", "name"), ("Case", "subject")):
        model: Any = RECORD_TYPES[record_type]
        link = getattr(Email, f"{record_type.lower()}_id")
        for record in session.scalars(select(model).order_by(model.created_at)):
            emails = session.scalars(select(Email).where(link == record.id)).all()
            contact = session.get(Contact, record.contact_id) if record.contact_id else None
            replies = [e for e in emails if e.direction == Direction.outgoing]
            label = f"{record_type} {getattr(record, 'number', '') or ''}".strip()
            rows.append(
                {
                    "record": label,
                    "title": getattr(record, title_column),
                    "contact": contact.name if contact else "",
                    "emails": len(emails) - len(replies),
                    "reply": f"{replies[0].subject} ({replies[0].send_status})" if replies else "",
                }
            )
    return rows
