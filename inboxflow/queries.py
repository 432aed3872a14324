"""Read-only queries behind the CLI's listings."""

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from models import Attachment, Email, EmailProvider, Mailbox, ProviderDomain, SyncState
from tasks.errors import ConfigError


@dataclass
class EmailFilter:
    mailbox: str | None = None
    folder: str | None = None
    unread: bool = False
    limit: int | None = 50


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
    query = query.order_by(Email.received_at.desc(), Email.created_at.desc())
    if where.limit:
        query = query.limit(where.limit)
    return [_email_summary(email, address) for email, address in session.execute(query)]


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
    details = _email_summary(email, mailbox)
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
