"""outbox: the sender's state of each outgoing email

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-23 20:29:58.402628
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
# A branch of its own off 0001 (initial processing adds 0002 in parallel); init_db
# upgrades to all heads.
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_entry",
        sa.Column("email_id", sa.Uuid(), nullable=False),
        sa.Column("mailbox_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_attempt_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("sender_user_id", sa.Uuid(), nullable=True),
        sa.Column("auto_submitted", sa.Boolean(), nullable=False),
        sa.Column("reply_to_email_id", sa.Uuid(), nullable=True),
        sa.Column("template_name", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("source_object", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("source_id", sa.Uuid(), nullable=True),
        sa.Column("envelope_to", sa.JSON(), nullable=False),
        sa.Column("smtp_reply", sa.Text(), nullable=True),
        sa.Column("refused", sa.JSON(), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("sent_copy_pending", sa.Boolean(), nullable=False),
        sa.Column("sent_folder", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("sent_copy_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("sent_copy_error", sa.Text(), nullable=True),
        sa.Column("queued_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("completed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["email_id"], ["email.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailbox.id"]),
        sa.ForeignKeyConstraint(["reply_to_email_id"], ["email.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["sender_user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("email_id"),
    )
    with op.batch_alter_table("outbox_entry", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_entry_due", ["mailbox_id", "state", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            "ix_outbox_entry_sent_copy", ["mailbox_id", "sent_copy_pending"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_entry_sent_copy")
        batch_op.drop_index("ix_outbox_entry_due")
    op.drop_table("outbox_entry")
