"""Shared column helpers."""

import uuid
from datetime import UTC, datetime

from sqlmodel import Field


def utcnow() -> datetime:
    """Every timestamp is time-zone aware UTC (SQLModel's UTCDateTime column insists)."""
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def id_field() -> uuid.UUID:
    return Field(default_factory=new_id, primary_key=True)


def created_field() -> datetime:
    return Field(default_factory=utcnow, nullable=False)
