"""email_body: an email's text and HTML in a table of their own

Processing and sending update small columns of the email row many times; with the
bodies in it, SQLite rewrote kilobytes of text for each such update. The bodies move,
unchanged, to email_body (1:1 with email).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_body",
        sa.Column("email_id", sa.Uuid(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["email_id"], ["email.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("email_id"),
    )
    op.execute(
        "INSERT INTO email_body (email_id, text, html) SELECT id, body_text, body_html FROM email"
    )
    # In place, not batch mode: a batch copy of `email` would drop the old table, and
    # SQLite (foreign keys on) would cascade that into email_body and the outbox.
    # SQLite drops unindexed columns in place since 3.35.
    op.drop_column("email", "body_text")
    op.drop_column("email", "body_html")


def downgrade() -> None:
    op.add_column("email", sa.Column("body_text", sa.Text(), nullable=False, server_default=""))
    op.add_column("email", sa.Column("body_html", sa.Text(), nullable=False, server_default=""))
    op.execute(
        "UPDATE email SET body_text = b.text, body_html = b.html "
        "FROM email_body AS b WHERE b.email_id = email.id"
    )
    op.drop_table("email_body")
