"""Automatic starts of email processes."""

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import created_field


class ProcessStart(SQLModel, table=True):
    """A process started by its `on:` trigger for an email: each email starts each process
    once, however often initial processing looks at it, and a start a crash interrupted
    is made again."""

    __tablename__ = "process_start"

    email_id: uuid.UUID = Field(foreign_key="email.id", primary_key=True)
    process: str = Field(primary_key=True)
    started_at: datetime = created_field()
    # Set in the run's own transaction, with the steps' work: a start without it never
    # committed anything (the run crashed) and is started again by the next run.
    finished_at: datetime | None = Field(default=None, index=True)
    outcome: str | None = None  # completed, stopped or failed
