"""The outbox: what the sender needs to know about each outgoing email besides the email itself.

The Email row holds the message (addresses, subject, bodies, ``send_status``,
``send_error``) and its exact bytes in the file store (``raw_key``); the
OutboxEntry beside it holds the sender's state machine and bookkeeping:

    queued ──claim (per batch)──> sending ──server said 250──> completed
       ^                 │
       │  4xx, refused,  ├──5xx, or attempts used up──> error
       └──  timeout  ────┤
                         └──process died / connection broke after DATA──> unconfirmed

After a crash, the hand-over journal (tasks/handover.py) tells which emails in
``sending`` the server took (completed), which never left (queued again) and
which were caught in between (Sent folder lookup, else unconfirmed).

``unconfirmed`` (shown as ``error`` on the Email) means the server may have the
message: it is never sent again until a person says so (`inboxflow outbox resolve`).
"""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index, String, Text
from sqlmodel import Field, SQLModel

from models.base import created_field


class OutboxState(StrEnum):
    queued = "queued"
    sending = "sending"
    completed = "completed"
    error = "error"
    unconfirmed = "unconfirmed"


class OutboxEntry(SQLModel, table=True):
    """One outgoing email's place in the outbox (1:1 with its Email row)."""

    __tablename__ = "outbox_entry"
    __table_args__ = (
        # The sender's two questions: what is due now, and which Sent copies are missing.
        Index("ix_outbox_entry_due", "mailbox_id", "state", "next_attempt_at"),
        Index("ix_outbox_entry_sent_copy", "mailbox_id", "sent_copy_pending"),
    )

    email_id: uuid.UUID = Field(foreign_key="email.id", primary_key=True, ondelete="CASCADE")
    mailbox_id: uuid.UUID = Field(foreign_key="mailbox.id")
    state: OutboxState = Field(default=OutboxState.queued, sa_type=String)
    attempts: int = 0
    # None: due at once; a temporary failure pushes it out (backoff).
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    # Who asked for it; None for an automatic process.
    sender_user_id: uuid.UUID | None = Field(default=None, foreign_key="user.id")
    # Sent by an automatic process: carries "Auto-Submitted: auto-generated".
    auto_submitted: bool = False
    reply_to_email_id: uuid.UUID | None = Field(
        default=None, foreign_key="email.id", ondelete="SET NULL"
    )
    # By name, not by id: a template may be edited, reloaded or deleted after use.
    template_name: str | None = None
    source_object: str | None = None
    source_id: uuid.UUID | None = None
    # Bare envelope recipients (To, Cc and Bcc), as given to RCPT TO.
    envelope_to: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The server's reply to the end of DATA: the proof of hand-over ("250 2.0.0 queued as ...").
    smtp_reply: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Recipients the server refused while taking the others: {address: "550 ..."}.
    refused: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # How an interrupted send was settled: found in the Sent folder, or what a person said.
    resolution: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The copy in the mailbox's Sent folder: still to append (after completion), or done.
    sent_copy_pending: bool = False
    sent_folder: str | None = None
    sent_copy_at: datetime | None = None
    sent_copy_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    queued_at: datetime = created_field()
    completed_at: datetime | None = None
