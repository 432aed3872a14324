"""email_provider.files_sent_mail: providers that file sent mail in Sent themselves

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 07:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # In place (see 0005): existing providers keep getting inboxflow's Sent copies.
    op.add_column(
        "email_provider",
        sa.Column("files_sent_mail", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("email_provider", "files_sent_mail")
