"""Mailboxes (email accounts), who may use them, and how far each folder is synced."""

import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import JSON, Column, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import created_field, id_field


class FirstSyncPeriod(StrEnum):
    day = "1d"
    week = "1w"
    month = "1m"
    three_months = "3m"
    six_months = "6m"
    all = "all"

    def as_timedelta(self) -> timedelta | None:
        """How far back a first sync reaches; None means everything."""
        return {
            "1d": timedelta(days=1),
            "1w": timedelta(weeks=1),
            "1m": timedelta(days=31),
            "3m": timedelta(days=92),
            "6m": timedelta(days=183),
            "all": None,
        }[self.value]


class Mailbox(SQLModel, table=True):
    id: uuid.UUID = id_field()
    address: str = Field(unique=True, index=True)
    provider_id: uuid.UUID = Field(foreign_key="email_provider.id", index=True)
    login: str
    # env:VAR or secret:BLOCK-NAME; the password itself never reaches the database.
    credential_ref: str
    owner_id: uuid.UUID | None = Field(default=None, foreign_key="user.id")
    display_name: str = ""
    signature_html: str = ""
    is_default_sender: bool = False
    sending_enabled: bool = True
    download_enabled: bool = True
    first_sync_period: FirstSyncPeriod = Field(default=FirstSyncPeriod.month, sa_type=String)
    # None syncs every folder; a list names exactly the folders to sync (children not implied).
    folders: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    tls_insecure: bool = False
    created_at: datetime = created_field()


class MailboxAccess(SQLModel, table=True):
    """Shared access to a mailbox for a user or a role."""

    __tablename__ = "mailbox_access"

    id: uuid.UUID = id_field()
    mailbox_id: uuid.UUID = Field(foreign_key="mailbox.id", index=True)
    user_id: uuid.UUID | None = Field(default=None, foreign_key="user.id")
    role_id: uuid.UUID | None = Field(default=None, foreign_key="role.id")
    can_access_emails: bool = True
    can_send: bool = False
    can_set_up: bool = False


class SyncState(SQLModel, table=True):
    """The high-water mark of one mailbox folder: only UIDs above it are new."""

    __tablename__ = "sync_state"
    __table_args__ = (UniqueConstraint("mailbox_id", "folder"),)

    id: uuid.UUID = id_field()
    mailbox_id: uuid.UUID = Field(foreign_key="mailbox.id", index=True)
    folder: str
    uidvalidity: int
    last_uid: int = 0
    synced_at: datetime | None = None
