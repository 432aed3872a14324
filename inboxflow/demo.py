"""`inboxflow demo`: the main job on the embedded default, with the bundled sample mailbox.

SQLite in the project's data folder, Prefect's local mode (a temporary server
starts by itself), and the sample emails in samples/mailbox imported through
the same path as a real sync.
"""

from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from sqlalchemy import select

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

SAMPLE_MAILBOX = PROJECT_ROOT / "samples" / "mailbox"
DEMO_ADDRESS = "sales@northwind.example"


def run_demo(
    console: Console,
    import_emails: Callable[[Path, str, str], dict[str, int]],
    list_emails: Callable[[], None],
) -> None:
    console.print(f"[bold]inboxflow demo[/bold] — database {database_url()}")
    init_db()
    ensure_demo_mailbox()
    console.print(f"importing the sample mailbox {SAMPLE_MAILBOX.relative_to(PROJECT_ROOT)} ...")
    totals = import_emails(SAMPLE_MAILBOX, DEMO_ADDRESS, "INBOX")
    console.print(
        f"{totals['read']} sample messages read: {totals['stored']} stored now, "
        f"{totals['duplicates']} were already stored, {totals['problems']} repaired by the parser"
    )
    list_emails()


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
