"""System settings, binding rules and email templates."""

import uuid
from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Column, Field, Session, SQLModel

from models.base import created_field, id_field

DEFAULT_SETTINGS: dict[str, str] = {
    "MailboxSyncInterval": "5",  # minutes
    "EmailProcessTag": "Email Process",
    "MaxFileSize": str(10 * 1024 * 1024),  # bytes
}


class SystemSetting(SQLModel, table=True):
    __tablename__ = "system_setting"

    key: str = Field(primary_key=True)
    value: str


def get_setting(session: Session, key: str) -> str:
    """A setting's value, or its default when it was never set."""
    row = session.get(SystemSetting, key)
    return row.value if row is not None else DEFAULT_SETTINGS[key]


class BindingRule(SQLModel, table=True):
    """A binding rule as loaded from rules/*.yaml."""

    __tablename__ = "binding_rule"

    id: uuid.UUID = id_field()
    name: str = Field(unique=True, index=True)
    pattern: str
    column: str = "subject"
    target_object: str
    target_column: str = "number"
    enabled: bool = True
    source_file: str = ""
    created_at: datetime = created_field()


class EmailTemplate(SQLModel, table=True):
    __tablename__ = "email_template"

    id: uuid.UUID = id_field()
    name: str = Field(unique=True, index=True)
    subject: str = ""
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # Record type whose fields fill the macros (Contact, Account, Lead, ...); None = no source.
    source_object: str | None = None
    created_at: datetime = created_field()
