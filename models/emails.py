"""Emails and their attachments."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, Relationship, SQLModel

from models.base import created_field, id_field


class Direction(StrEnum):
    incoming = "incoming"
    outgoing = "outgoing"


class SendStatus(StrEnum):
    draft = "draft"
    queued = "queued"
    sending = "sending"
    completed = "completed"
    error = "error"


class Email(SQLModel, table=True):
    """One email; its id is the RecordId that processes receive."""

    __table_args__ = (
        # Dedupe within a mailbox: the same message read twice (a re-sync after a
        # UIDVALIDITY change, an import of a mail already synced) is stored once.
        UniqueConstraint("mailbox_id", "message_id", name="uq_email_mailbox_message_id"),
        Index("ix_email_mailbox_folder_uid", "mailbox_id", "folder", "uid"),
    )

    id: uuid.UUID = id_field()
    mailbox_id: uuid.UUID = Field(foreign_key="mailbox.id")
    folder: str = ""
    uid: int | None = None
    uidvalidity: int | None = None
    # The header value, or a synthetic <sha256@message-id.invalid> when the message has none.
    message_id: str = Field(index=True)
    message_id_missing: bool = False
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The Message-ID this email answers: In-Reply-To, else the last of References.
    # Indexed: a parent that arrives after its replies finds them (initial processing).
    parent_message_id: str | None = Field(default=None, index=True)
    thread_id: uuid.UUID | None = Field(default=None, index=True)
    direction: Direction = Field(default=Direction.incoming, sa_type=String)
    from_name: str = ""
    from_address: str = Field(default="", index=True)
    to: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    cc: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    bcc: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # Lower-cased bare addresses of To/Cc/Bcc, for matching.
    to_addresses: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    cc_addresses: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    bcc_addresses: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    subject: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    sent_at: datetime | None = None
    received_at: datetime | None = None
    is_read: bool = False
    attachment_count: int = 0
    # Key of the raw RFC 5322 bytes in the file store, so any email can be re-parsed.
    raw_key: str | None = None
    raw_size: int = 0
    # What the parser had to guess or repair (broken MIME, unknown charset, ...).
    parse_problems: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    owner_id: uuid.UUID | None = Field(default=None, foreign_key="user.id")
    contact_id: uuid.UUID | None = Field(default=None, foreign_key="contact.id")
    account_id: uuid.UUID | None = Field(default=None, foreign_key="account.id")
    lead_id: uuid.UUID | None = Field(default=None, foreign_key="lead.id")
    case_id: uuid.UUID | None = Field(default=None, foreign_key="case.id")
    opportunity_id: uuid.UUID | None = Field(default=None, foreign_key="opportunity.id")
    invoice_id: uuid.UUID | None = Field(default=None, foreign_key="invoice.id")
    order_id: uuid.UUID | None = Field(default=None, foreign_key="order.id")
    contract_id: uuid.UUID | None = Field(default=None, foreign_key="contract.id")
    needs_processing: bool = Field(default=True, index=True)
    # Set once initial processing has looked at the email (indexed: new emails are picked by it).
    processed_at: datetime | None = Field(default=None, index=True)
    # Names of the binding rules that bound the email (clears needs_processing, SPEC 4.5).
    bound_by_rule: str | None = None
    # Fields a person linked by hand: a Contact, Account or Case linked by hand counts
    # towards "processed", the same filled automatically does not (SPEC 4.5).
    linked_by_user: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, server_default=text("'[]'")),
    )
    # auto-reply, bounce, auto-generated or bulk: mail no automatic process should answer.
    auto_kind: str | None = None
    send_status: SendStatus | None = Field(default=None, sa_type=String)
    send_error: str | None = None
    created_at: datetime = created_field()

    attachments: list["Attachment"] = Relationship(
        back_populates="email", sa_relationship_kwargs={"cascade": "all, delete-orphan"}
    )
    body: "EmailBody" = Relationship(
        sa_relationship_kwargs={"uselist": False, "cascade": "all, delete-orphan"}
    )

    @property
    def body_text(self) -> str:
        return self.body.text if self.body is not None else ""

    @property
    def body_html(self) -> str:
        return self.body.html if self.body is not None else ""


class EmailBody(SQLModel, table=True):
    """An email's text and HTML, in a row of their own beside the Email row.

    Bodies are most of an email's bytes, yet processing, sending and listing update
    and read only the small columns: apart, an update rewrites a small row, not kilobytes
    of text (SQLite rewrites whole rows).
    """

    __tablename__ = "email_body"

    email_id: uuid.UUID = Field(foreign_key="email.id", primary_key=True, ondelete="CASCADE")
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    html: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class Attachment(SQLModel, table=True):
    id: uuid.UUID = id_field()
    email_id: uuid.UUID = Field(foreign_key="email.id", index=True)
    file_name: str
    mime_type: str = "application/octet-stream"
    size: int = 0
    content_id: str | None = None
    is_inline: bool = False
    # sha256 of the content; also its key in the file store.
    checksum: str | None = None
    stored: bool = True
    skip_reason: str | None = None

    email: Email = Relationship(back_populates="attachments")
