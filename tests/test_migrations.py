"""Schema migrations: an existing database upgrades in place and keeps its data."""

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models import Attachment, Email, get_engine, init_db
from models.db import upgrade_schema
from models.outbox import OutboxEntry


def insert(connection: sa.Connection, table: str, **given: Any) -> Any:
    """A row with the given values and a plain value in every other required column."""
    reflected = sa.Table(table, sa.MetaData(), autoload_with=connection)
    # Reflected SQLite columns are CHAR(32), not Uuid: ids go in as SQLAlchemy stores them.
    as_stored = (lambda v: v.hex) if connection.dialect.name == "sqlite" else (lambda v: v)
    row = {k: as_stored(v) if isinstance(v, uuid.UUID) else v for k, v in given.items()}
    for column in reflected.columns:
        if column.name in row or column.nullable or column.server_default is not None:
            continue
        row[column.name] = _plain_value(column.type)
    connection.execute(reflected.insert().values(row))
    return given.get("id")


def _plain_value(column_type: sa.types.TypeEngine) -> Any:
    if isinstance(column_type, sa.Uuid):
        return uuid.uuid4()
    if isinstance(column_type, sa.Boolean):
        return False
    if isinstance(column_type, sa.Integer):
        return 0
    if isinstance(column_type, sa.DateTime):
        return datetime(2026, 11, 1, tzinfo=UTC)
    if isinstance(column_type, sa.JSON):
        return []
    return "x"


def test_email_bodies_move_to_their_own_table_with_nothing_lost(empty_database: str) -> None:
    upgrade_schema("0004")
    email_id = uuid.uuid4()
    with get_engine().begin() as connection:
        provider = insert(connection, "email_provider", id=uuid.uuid4(), name="p")
        mailbox = insert(
            connection, "mailbox", id=uuid.uuid4(), address="a@x.example", provider_id=provider
        )
        insert(
            connection,
            "email",
            id=email_id,
            mailbox_id=mailbox,
            message_id="<1@x>",
            body_text="Grüße — the text",
            body_html="<p>the html</p>",
            references=[],
        )
        insert(connection, "attachment", id=uuid.uuid4(), email_id=email_id, file_name="a.pdf")
        insert(connection, "outbox_entry", email_id=email_id, mailbox_id=mailbox, refused={})

    init_db()  # 0004 -> newest, as on a user's machine

    with Session(get_engine()) as session:
        email = session.get(Email, email_id)
        assert email is not None
        assert (email.body_text, email.body_html) == ("Grüße — the text", "<p>the html</p>")
        # Moving the columns must not have cascaded into the rows that point at the email.
        assert session.exec(select(Attachment).where(Attachment.email_id == email_id)).one()
        assert session.get(OutboxEntry, email_id) is not None
    columns = {c["name"] for c in sa.inspect(get_engine()).get_columns("email")}
    assert not {"body_text", "body_html"} & columns


def test_the_migrations_build_the_schema_the_models_describe(empty_database: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    init_db()
    with get_engine().connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == [], "a model changed without a migration (alembic revision)"


def test_stored_emails_learn_the_message_they_answer(empty_database: str) -> None:
    upgrade_schema("0006")
    with get_engine().begin() as connection:
        provider = insert(connection, "email_provider", id=uuid.uuid4(), name="p")
        mailbox = insert(
            connection, "mailbox", id=uuid.uuid4(), address="a@x.example", provider_id=provider
        )
        for message_id, in_reply_to, references in (
            ("<plain@x>", None, []),
            ("<reply@x>", "<parent@x>", ["<root@x>", "<parent@x>"]),
            ("<refs-only@x>", None, ["<root@x>", "<other-parent@x>"]),
        ):
            insert(
                connection,
                "email",
                id=uuid.uuid4(),
                mailbox_id=mailbox,
                message_id=message_id,
                in_reply_to=in_reply_to,
                references=references,
            )

    init_db()

    with Session(get_engine()) as session:
        stored = {e.message_id: e.parent_message_id for e in session.exec(select(Email))}
    assert stored == {
        "<plain@x>": None,
        "<reply@x>": "<parent@x>",
        "<refs-only@x>": "<other-parent@x>",  # the last reference: the parent
    }
