"""Helpers for the outbound tests: a sending mailbox on the test SMTP server and Dovecot."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from sqlmodel import Session

from models import (
    Email,
    FirstSyncPeriod,
    LoginFormat,
    Mailbox,
    OutboxEntry,
    Security,
    User,
    get_engine,
    session_scope,
)
from models.providers import AuthKind
from tasks.mailboxes import add_mailbox, add_provider
from tasks.outbox import OutgoingEmail, queue_email
from tasks.sync import file_store
from tests.support.dovecot import Dovecot
from tests.support.smtp import SmtpServer


@dataclass(frozen=True)
class SendingMailbox:
    """A mailbox whose IMAP is the test Dovecot and whose SMTP is the test server."""

    address: str
    password: str
    owner: str
    variable: str


def add_sending_mailbox(
    dovecot: Dovecot,
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    *,
    security: str = "none",
    verify_tls: bool = False,
    display_name: str = "Northwind Sales",
    signature_html: str = "",
    owner: str = "alice",
    smtp_port: int | None = None,
    files_sent_mail: bool = False,
    oauth2: bool = False,
) -> SendingMailbox:
    """A mailbox that sends through ``smtp``; with ``oauth2`` its secret is an access
    token both servers accept (XOAUTH2), else a password."""
    tag = uuid.uuid4().hex[:10]
    address, password = f"sales-{tag}@northwind.example", f"pw-{tag}"
    dovecot.add_user(address, password)
    smtp.users[address] = password
    secret = password
    if oauth2:
        secret = smtp.tokens[address] = dovecot.add_oauth_token(address)
    variable = f"PW_{tag.upper()}"
    monkeypatch.setenv(variable, secret)
    port = smtp_port or (smtp.tls_port if security == "ssl" else smtp.port)
    with session_scope() as session:
        provider = add_provider(
            session,
            f"p-{tag}",
            f"{dovecot.host}:{dovecot.port}",
            Security.none,
            f"{smtp.host}:{port}",
            Security(security),
            10,
            LoginFormat.email,
            [],
            auth=AuthKind.oauth2 if oauth2 else AuthKind.basic,
            files_sent_mail=files_sent_mail,
        )
        mailbox = add_mailbox(
            session,
            address,
            f"env:{variable}",
            provider.name,
            None,
            ["INBOX"],
            FirstSyncPeriod.all,
            owner,
            not verify_tls,
        )
        mailbox.display_name = display_name
        mailbox.signature_html = signature_html
        session.add(mailbox)
    return SendingMailbox(address, password, owner, variable)


def queue(
    sender: SendingMailbox, *, user: str | None = None, process: bool = False, **fields: Any
) -> uuid.UUID:
    """Queue an email from the mailbox as its owner, as ``user``, or as an automatic process."""
    with session_scope() as session:
        outgoing = OutgoingEmail(mailbox=sender.address, **fields)
        who = None if process else (user or sender.owner)
        return queue_email(session, outgoing, who, store=file_store()).id


def run_outbox(**parameters: Any) -> tuple[Any, list[dict[str, Any]]]:
    """One outbound-sending flow run in this process; its state and per-mailbox reports."""
    from flows.outbound_sending import outbound_sending

    state = outbound_sending(return_state=True, **parameters)
    return state, state.result(raise_on_failure=False)


def email_row(email_id: uuid.UUID) -> Email:
    with Session(get_engine()) as session:
        # With its body: the caller reads it after the session has closed.
        email = session.get(Email, email_id, options=[selectinload(Email.body)])
        assert email is not None
        return email


def outbox_row(email_id: uuid.UUID) -> OutboxEntry:
    with Session(get_engine()) as session:
        entry = session.get(OutboxEntry, email_id)
        assert entry is not None
        return entry


def user_id(name: str) -> uuid.UUID:
    with Session(get_engine()) as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            user = User(name=name)
            session.add(user)
            session.commit()
        return user.id


def mailbox_id(address: str) -> uuid.UUID:
    with Session(get_engine()) as session:
        found = session.scalar(select(Mailbox.id).where(Mailbox.address == address))
        assert found is not None
        return found


def sent_folder_messages(dovecot: Dovecot, sender: SendingMailbox) -> list[bytes]:
    """The raw messages in the mailbox's Sent folder, oldest first."""
    client = dovecot.client(sender.address, sender.password)
    try:
        client.select_folder("Sent", readonly=True)
        uids = client.search("ALL")
        fetched = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
        return [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]
    finally:
        client.logout()
