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
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(["email_id"], ["email.id"]),
        sa.PrimaryKeyConstraint("email_id", "process"),
    )
    op.create_index("ix_process_start_finished_at", "process_start", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_process_start_finished_at", table_name="process_start")
    op.drop_table("process_start")
