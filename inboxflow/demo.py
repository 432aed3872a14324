"""`inboxflow demo`: the main job on the embedded default, with the bundled sample mailbox.

SQLite in the project's data folder, Prefect's local mode (a temporary server
starts by itself), the reference data in samples/reference (contacts, accounts,
users, invoices, orders, contracts), and the sample emails in samples/mailbox
imported through the same path as a real sync, then bound by initial processing.
"""

from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from inboxflow import queries
from models import (
    EmailProvider,
    FirstSyncPeriod,
    LoginFormat,
    Mailbox,
    Security,
    database_url,
    init_db,
    session_scope,
)
from models.db import PROJECT_ROOT
from tasks.mailboxes import add_mailbox, add_provider
from tasks.records import import_records
from tasks.templates import load_template_files

SAMPLE_MAILBOX = PROJECT_ROOT / "samples" / "mailbox"
SAMPLE_REFERENCE = PROJECT_ROOT / "samples" / "reference"
# In this order: contacts name their account, users their contact, records their account.
REFERENCE_FILES = (
    ("Account", "accounts.csv"),
    ("Contact", "contacts.csv"),
    ("User", "users.csv"),
    ("Invoice", "invoices.csv"),
    ("Order", "orders.csv"),
    ("Contract", "contracts.csv"),
)
DEMO_ADDRESS = "sales@northwind.example"


def run_demo(
    console: Console,
    import_emails: Callable[[Path, str, str], dict[str, int]],
    list_emails: Callable[[], None],
) -> None:
    console.print(f"[bold]inboxflow demo[/bold] — database {database_url()}")
    init_db()
    ensure_demo_mailbox()
    load_reference_data(console)
    console.print(f"importing the sample mailbox {SAMPLE_MAILBOX.relative_to(PROJECT_ROOT)} ...")
    totals = import_emails(SAMPLE_MAILBOX, DEMO_ADDRESS, "INBOX")
    console.print(
        f"{totals['read']} sample messages read: {totals['stored']} stored now, "
        f"{totals['duplicates']} were already stored, {totals['problems']} repaired by the parser"
    )
    list_emails()
    show_bindings(console)
    show_process_results(console)


def load_reference_data(console: Console) -> None:
    """The sample contacts, accounts, users and records the emails are about (idempotent)."""
    loaded = []
    with session_scope() as session:
        for record_type, file_name in REFERENCE_FILES:
            report = import_records(session, record_type, SAMPLE_REFERENCE / file_name)
            loaded.append(f"{report.created + report.updated + report.unchanged} {file_name[:-4]}")
        # The shipped processes reply from templates/ (lead-acknowledgement, case-registered).
        templates = load_template_files(session)
        loaded.append(
            f"{len(templates.created + templates.updated + templates.unchanged)} templates"
        )
    where = SAMPLE_REFERENCE.relative_to(PROJECT_ROOT)
    console.print(f"reference data from {where}: {', '.join(loaded)}")


def show_bindings(console: Console) -> None:
    """What initial processing bound, and what a person still has to look at."""
    with session_scope() as session:
        rows = queries.list_emails(session, queries.EmailFilter(DEMO_ADDRESS, limit=None))
    bound = [row for row in rows if row["records"]]
    table = Table(title="emails bound to records")
    for column in ("subject", "linked to", "bound by rule", "todo"):
        table.add_column(column, overflow="fold")
    for row in reversed(bound):
        table.add_row(
            str(row["subject"]),
            str(row["linked to"]),
            row["bound_by_rule"] or "(thread)",
            str(row["todo"]),
        )
    console.print(table)
    todo = [row for row in rows if row["needs_processing"]]
    console.print(
        f"{len(todo)} of {len(rows)} emails still need processing "
        "(`inboxflow emails list --unprocessed`; `inboxflow emails mark-processed ID`)"
    )


def ensure_demo_mailbox() -> None:
    """The Northwind provider and its sales mailbox (never contacted: the demo imports files)."""
    with session_scope() as session:
        if session.scalar(select(Mailbox).where(Mailbox.address == DEMO_ADDRESS)):
            return
        if not session.scalar(select(EmailProvider).where(EmailProvider.name == "northwind")):
            add_provider(
                session,
                "northwind",
                "imap.northwind.example:993",
                Security.ssl,
                "smtp.northwind.example:465",
                Security.ssl,
                40,
                LoginFormat.email,
                ["northwind.example"],
            )
        add_mailbox(
            session,
            DEMO_ADDRESS,
            "env:NORTHWIND_SALES_PASSWORD",
            provider_name="northwind",
            login=None,
            folders=None,
            first_sync=FirstSyncPeriod.all,
            owner="Nancy Davolio",
            tls_insecure=False,
        )


def show_process_results(console: Console) -> None:
    """What the shipped email processes (processes/*.yaml) made of the sample mail."""
    with session_scope() as session:
        rows = queries.process_results(session)
    table = Table(
        title="leads and cases created by the email processes (create-lead, register-case)"
    )
    for column in ("record", "title", "contact", "emails", "reply queued"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["record"], row["title"], row["contact"], str(row["emails"]), row["reply"])
    console.print(table)
    console.print(
        "replies wait in the outbox (`inboxflow outbox list`); run a process by hand with "
        "`inboxflow processes run create-lead --email ID [--dry-run]`"
    )
