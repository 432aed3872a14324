"""process_start: automatic starts of email processes

Revision ID: 0004
Revises: 0002, 0003
Create Date: 2026-11-23 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
# Joins the initial-processing (0002) and outbox (0003) branches.
down_revision: str | Sequence[str] | None = ("0002", "0003")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "process_start",
        sa.Column("email_id", sa.Uuid(), nullable=False),
        sa.Column("process", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["email_id"], ["email.id"]),
        sa.PrimaryKeyConstraint("email_id", "process"),
    )


def downgrade() -> None:
    op.drop_table("process_start")
