"""initial processing: rule bindings, links made by hand, auto-reply flag, lookup indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 20:15:51.597747
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Adding columns and indexes needs no table copy, not even on SQLite (batch mode "auto").
    with op.batch_alter_table("email", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bound_by_rule", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("linked_by_user", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )
        batch_op.add_column(
            sa.Column("auto_kind", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_email_in_reply_to"), ["in_reply_to"], unique=False)
        batch_op.create_index(batch_op.f("ix_email_processed_at"), ["processed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("email", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_processed_at"))
        batch_op.drop_index(batch_op.f("ix_email_in_reply_to"))
        batch_op.drop_column("auto_kind")
        batch_op.drop_column("linked_by_user")
        batch_op.drop_column("bound_by_rule")
