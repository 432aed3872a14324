"""Automatic starts of email processes."""

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import created_field


class ProcessStart(SQLModel, table=True):
    """A process started by its `on:` trigger for an email: each email starts each process
    at most once, however often initial processing looks at it."""

    __tablename__ = "process_start"

    email_id: uuid.UUID = Field(foreign_key="email.id", primary_key=True)
    process: str = Field(primary_key=True)
    started_at: datetime = created_field()
