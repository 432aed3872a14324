"""email.parent_message_id: the Message-ID an email answers, In-Reply-To or else References

A reply processed before its parent arrived joins the parent's thread when it does;
the lookup went through In-Reply-To only, so a reply naming its parent only in
References (some clients send no In-Reply-To) stayed a thread of its own. The
column replaces in_reply_to's index for that lookup.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 19:10:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # In place (see 0005): no table copy.
    op.add_column(
        "email",
        sa.Column("parent_message_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    )
    email = sa.table(
        "email",
        sa.column("id", sa.Uuid()),
        sa.column("in_reply_to", sa.String()),
        sa.column("references", sa.Text()),
        sa.column("parent_message_id", sa.String()),
    )
    connection = op.get_bind()
    connection.execute(
        email.update()
        .where(email.c.in_reply_to.is_not(None))
        .values(parent_message_id=email.c.in_reply_to)
    )
    # As text on both: PostgreSQL's json type has no "<>", and its driver parses json.
    references = sa.cast(email.c.references, sa.Text())
    only_references = connection.execute(
        sa.select(email.c.id, references).where(email.c.in_reply_to.is_(None), references != "[]")
    ).all()
    for email_id, references in only_references:
        parents = json.loads(references or "[]")
        if parents:
            connection.execute(
                email.update().where(email.c.id == email_id).values(parent_message_id=parents[-1])
            )
    op.create_index(op.f("ix_email_parent_message_id"), "email", ["parent_message_id"])
    op.drop_index(op.f("ix_email_in_reply_to"), table_name="email")


def downgrade() -> None:
    op.create_index(op.f("ix_email_in_reply_to"), "email", ["in_reply_to"])
    op.drop_index(op.f("ix_email_parent_message_id"), table_name="email")
    op.drop_column("email", "parent_message_id")
