"""The `inboxflow` command line: everything an operator needs without the Prefect UI."""

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from inboxflow import queries
from inboxflow.flow_runs import cli_flow_runs
from models import FirstSyncPeriod, LoginFormat, Security, init_db, session_scope
from models.providers import AuthKind
from tasks.credentials import env_reference
from tasks.errors import InboxflowError
from tasks.mailboxes import add_mailbox, add_provider, remove_provider

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
provider_app = typer.Typer(help="Email providers: how to reach a mail service.")
mailbox_app = typer.Typer(help="Mailboxes (email accounts) to sync.")
emails_app = typer.Typer(help="Stored emails.")
rules_app = typer.Typer(help="Binding rules (rules/*.yaml): check and try them.")
records_app = typer.Typer(help="Contacts, accounts, users and records (reference data).")
app.add_typer(provider_app, name="provider")
app.add_typer(mailbox_app, name="mailbox")
app.add_typer(emails_app, name="emails")
app.add_typer(rules_app, name="rules")
app.add_typer(records_app, name="records")

# Piped output (tests, scripts) gets wide tables instead of rich's default 80 columns.
out = Console(width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "200")))
err = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Prefect's own log lines too.")
    ] = False,
) -> None:
    """inboxflow: email-centred business processes on Prefect."""
    # Set before Prefect is imported (it reads its settings once).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if not verbose:
        # The CLI reports outcomes itself; the full logs are in the Prefect UI.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn our errors into one line on stderr and exit code 1, never a traceback."""
    try:
        yield
    except InboxflowError as exc:
        err.print(f"[red]inboxflow:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if os.environ.get("INBOXFLOW_DEBUG"):
            raise
        err.print(
            f"[red]inboxflow: unexpected error:[/red] {type(exc).__name__}: {exc} "
            "(set INBOXFLOW_DEBUG=1 to see the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None


def print_rows(rows: list[dict[str, Any]], as_json: bool, columns: list[str], title: str) -> None:
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    if not rows:
        out.print(f"no {title}")
        return
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[_cell(row.get(column)) for column in columns])
    out.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


# providers -------------------------------------------------------------------------------


@provider_app.command("add")
def provider_add(
    name: str,
    imap: Annotated[str, typer.Option(help="IMAP server as HOST:PORT (143 plain, 993 TLS).")],
    imap_security: Annotated[Security, typer.Option()] = Security.ssl,
    smtp: Annotated[str | None, typer.Option(help="SMTP server as HOST:PORT.")] = None,
    smtp_security: Annotated[Security, typer.Option()] = Security.ssl,
    smtp_timeout: Annotated[int, typer.Option(help="Seconds.")] = 40,
    login_format: Annotated[LoginFormat, typer.Option()] = LoginFormat.email,
    domain: Annotated[
        list[str] | None, typer.Option(help="Mail domain served (repeatable).")
    ] = None,
    auth: Annotated[
        AuthKind,
        typer.Option(help="basic: a password; oauth2: an access token (XOAUTH2) as the secret."),
    ] = AuthKind.basic,
    files_sent_mail: Annotated[
        bool,
        typer.Option(
            "--files-sent-mail",
            help="Its SMTP server files sent mail in Sent itself (Gmail, Outlook.com): "
            "inboxflow appends no copy of its own.",
        ),
    ] = False,
) -> None:
    """Register an email provider."""
    with reported_errors(), _session() as session:
        add_provider(
            session,
            name,
            imap,
            imap_security,
            smtp,
            smtp_security,
            smtp_timeout,
            login_format,
            domain or [],
            auth,
            files_sent_mail,
        )
    out.print(f"provider {name} added")


@provider_app.command("list")
def provider_list(as_json: JsonOption = False) -> None:
    """List providers."""
    with _session() as session:
        rows = queries.list_providers(session)
    columns = ["name", "imap", "imap_security", "smtp", "smtp_security", "login_format", "domains"]
    print_rows(rows, as_json, columns, "providers")


@provider_app.command("remove")
def provider_remove(name: str) -> None:
    """Remove a provider (refused while mailboxes use it)."""
    with reported_errors(), _session() as session:
        remove_provider(session, name)
    out.print(f"provider {name} removed")


# mailboxes -------------------------------------------------------------------------------


@mailbox_app.command("add")
def mailbox_add(
    address: str,
    password_env: Annotated[
        str, typer.Option(help="Environment variable that holds the password at sync time.")
    ],
    provider: Annotated[
        str | None, typer.Option(help="Provider name; detected from the domain if omitted.")
    ] = None,
    login: Annotated[str | None, typer.Option(help="Login, when the provider's is manual.")] = None,
    folders: Annotated[
        str, typer.Option(help="'all' or a comma-separated list (children not included).")
    ] = "all",
    first_sync: Annotated[FirstSyncPeriod, typer.Option()] = FirstSyncPeriod.month,
    owner: Annotated[str | None, typer.Option(help="User who owns the mailbox.")] = None,
    tls_insecure: Annotated[
        bool, typer.Option(help="Accept any TLS certificate (self-signed test servers only).")
    ] = False,
) -> None:
    """Add a mailbox; its password stays in the environment, never in the database."""
    chosen = (
        None
        if folders.strip().lower() == "all"
        else [f.strip() for f in folders.split(",") if f.strip()]
    )
    with reported_errors(), _session() as session:
        mailbox = add_mailbox(
            session,
            address,
            env_reference(password_env),
            provider,
            login,
            chosen,
            first_sync,
            owner,
            tls_insecure,
        )
        login_used = mailbox.login
    out.print(f"mailbox {address.lower()} added (login {login_used})")


@mailbox_app.command("list")
def mailbox_list(as_json: JsonOption = False) -> None:
    """List mailboxes."""
    with _session() as session:
        rows = queries.list_mailboxes(session)
    columns = ["address", "provider", "login", "credential", "folders", "first_sync", "last_synced"]
    print_rows(rows, as_json, columns, "mailboxes")


# sync and import -------------------------------------------------------------------------


@app.command()
def sync(
    address: Annotated[str | None, typer.Argument(help="One mailbox; all when omitted.")] = None,
) -> None:
    """Download new email of one or all mailboxes (the mailbox-sync flow)."""
    from inboxflow.progress_bar import progress_bar

    with reported_errors():
        init_db()
        from flows.mailbox_sync import mailbox_sync

        with progress_bar(out), cli_flow_runs():
            state = mailbox_sync(address, return_state=True)
        reports = state.result(raise_on_failure=False)
        if isinstance(reports, BaseException):
            raise InboxflowError(f"sync failed: {reports}")
        if not reports and state.is_failed():
            raise InboxflowError(state.message or "sync failed")
    for report in reports:
        if report["error"]:
            err.print(f"[red]inboxflow:[/red] {report['error']}", highlight=False, soft_wrap=True)
        else:
            folders = ", ".join(f"{k} {v}" for k, v in report["folders"].items() if v)
            line = f"{report['mailbox']}: {report['stored']} new emails stored"
            extra = f" ({folders})" if folders else ""
            skipped = f", {report['duplicates']} duplicates skipped" if report["duplicates"] else ""
            out.print(line + extra + skipped, highlight=False)
    if any(report["error"] for report in reports):
        raise typer.Exit(1)


@app.command("import")
def import_emails(
    path: Path,
    mailbox: Annotated[str, typer.Option(help="Mailbox the emails belong to.")],
    folder: Annotated[str, typer.Option(help="Folder for .eml and mbox input.")] = "INBOX",
) -> None:
    """Import .eml files, an mbox file or a Maildir folder (upload emails)."""
    totals = run_import(path, mailbox, folder)
    out.print(
        f"{totals['read']} messages read: {totals['stored']} stored, "
        f"{totals['duplicates']} already there, {totals['problems']} with parse problems"
    )


def run_import(path: Path, mailbox: str, folder: str) -> dict[str, int]:
    with reported_errors():
        init_db()
        from flows.email_import import email_import

        with cli_flow_runs():
            state = email_import(str(path), mailbox, folder, return_state=True)
        if not state.is_completed():
            raise InboxflowError(state.message or "import failed")
        result = state.result()
    return result


# emails ----------------------------------------------------------------------------------


@emails_app.command("list")
def emails_list(
    mailbox: Annotated[str | None, typer.Option(help="Only this mailbox.")] = None,
    folder: Annotated[str | None, typer.Option(help="Only this folder.")] = None,
    unread: Annotated[bool, typer.Option("--unread", help="Only unread emails.")] = False,
    unprocessed: Annotated[
        bool, typer.Option("--unprocessed", help="Only emails that still need processing.")
    ] = False,
    processed: Annotated[
        bool, typer.Option("--processed", help="Only emails that need no processing.")
    ] = False,
    outbound: Annotated[bool, typer.Option("--outbound", help="Only outgoing emails.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many (0 = all).")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List stored emails, newest first, with what they are linked to."""
    if unprocessed and processed:
        err.print("[red]inboxflow:[/red] choose one of --unprocessed and --processed")
        raise typer.Exit(2)
    todo = True if unprocessed else False if processed else None
    where = queries.EmailFilter(mailbox, folder, unread, limit or None, todo, outbound)
    with _session() as session:
        rows = queries.list_emails(session, where)
    columns = ["id", "folder", "date", "from", "subject", "attachments", "linked to", "todo"]
    print_rows(rows, as_json, columns, "emails")


@emails_app.command("show")
def emails_show(email_id: str, as_json: JsonOption = False) -> None:
    """Show one email: headers, body, attachments, and what the parser had to repair."""
    with reported_errors(), _session() as session:
        email = queries.get_email(session, email_id)
    if as_json:
        out.print_json(json.dumps(email, default=str))
        return
    for key in (
        "id",
        "mailbox",
        "folder",
        "uid",
        "message_id",
        "date",
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "direction",
        "in_reply_to",
        "read",
        "thread_id",
        "linked to",
        "bound_by_rule",
        "auto",
        "todo",
    ):
        if email.get(key) not in (None, ""):
            out.print(f"[bold]{key}:[/bold] {email[key]}", highlight=False)
    if email["parse_problems"]:
        out.print(f"[yellow]parse problems:[/yellow] {email['parse_problems']}", highlight=False)
    out.print()
    out.print(email["body_text"] or "(no text part)", highlight=False, markup=False)
    for a in email["attachment_list"]:  # type: ignore[union-attr]
        state = "" if a["stored"] else f" — not stored: {a['skip_reason']}"
        what = f"{a['file_name']} ({a['mime_type']}, {a['size']} bytes)"
        out.print(f"[bold]attachment:[/bold] {what}{state}", highlight=False)


@emails_app.command("mark-processed")
def emails_mark_processed(
    email_id: str,
    thread: Annotated[
        bool, typer.Option("--thread", help="Every email of its thread, not only this one.")
    ] = False,
) -> None:
    """Mark an email (or its whole thread) as processed: it leaves the needs-processing list."""
    from tasks.records import mark_processed

    with _session() as session:
        cleared = mark_processed(session, email_id, thread)
    what = "in its thread " if thread else ""
    out.print(f"{cleared} email(s) {what}marked processed", highlight=False)


@emails_app.command("link")
def emails_link(
    email_id: str,
    lead: Annotated[str | None, typer.Option(help="Lead id or name.")] = None,
    case: Annotated[str | None, typer.Option(help="Case id or number.")] = None,
    opportunity: Annotated[str | None, typer.Option(help="Opportunity id or name.")] = None,
    invoice: Annotated[str | None, typer.Option(help="Invoice id or number (Inv-53).")] = None,
    order: Annotated[str | None, typer.Option(help="Order id or number (Ord-12).")] = None,
    contract: Annotated[str | None, typer.Option(help="Contract id or number.")] = None,
    contact: Annotated[str | None, typer.Option(help="Contact id, email address or name.")] = None,
    account: Annotated[str | None, typer.Option(help="Account id, email address or name.")] = None,
) -> None:
    """Link an email to records by hand (RECORD_ID: an id, or a number, address or name)."""
    from tasks.records import link_email

    given = {
        "lead": lead,
        "case": case,
        "opportunity": opportunity,
        "invoice": invoice,
        "order": order,
        "contract": contract,
        "contact": contact,
        "account": account,
    }
    with _session() as session:
        linked, todo = link_email(session, email_id, {k: v for k, v in given.items() if v})
    state = "still needs processing" if todo else "processed"
    out.print(f"email {email_id} linked to {', '.join(linked)} ({state})", highlight=False)


@emails_app.command("create-contact")
def emails_create_contact(email_id: str) -> None:
    """Create a contact from the email's sender (name and address from From) and link it."""
    from tasks.records import create_contact_from_email

    with _session() as session:
        contact = create_contact_from_email(session, email_id)
        line = f"contact {contact.name} ({contact.id}) created and linked to email {email_id}"
    out.print(line, highlight=False)


@emails_app.command("create-record")
def emails_create_record(
    email_id: str,
    record_type: Annotated[
        str, typer.Argument(help="Lead, Opportunity, Case, Invoice, Order or Contract.")
    ],
    number: Annotated[
        str | None, typer.Option(help="Number of an Invoice, Order or Contract (Case: optional).")
    ] = None,
) -> None:
    """Create a record from an email (customer = its contact or account) and link it."""
    from tasks.records import create_record_from_email, record_label

    with _session() as session:
        kind, record = create_record_from_email(session, email_id, record_type, number)
        line = f"{record_label(kind, record)} ({record.id}) created and linked to email {email_id}"  # type: ignore[attr-defined]
    out.print(line, highlight=False)


# initial processing and binding rules ----------------------------------------------------

RulesDirOption = Annotated[
    Path | None,
    typer.Option(
        "--rules-dir", help="Folder of rule files (default: INBOXFLOW_RULES_DIR or rules/)."
    ),
]


@app.command("process-emails")
def process_emails(
    all_emails: Annotated[
        bool, typer.Option("--all", help="Look at every email again, not only new ones.")
    ] = False,
    mailbox: Annotated[str | None, typer.Option(help="Only this mailbox.")] = None,
    rules_dir: RulesDirOption = None,
) -> None:
    """Link new emails to contacts, accounts and records (the initial-processing flow)."""
    with reported_errors():
        init_db()
        from flows.initial_processing import initial_processing

        with cli_flow_runs():
            state = initial_processing(
                mailbox, all_emails, str(rules_dir) if rules_dir else None, return_state=True
            )
        if not state.is_completed():
            raise InboxflowError(state.message or "initial processing failed")
        summary = state.result()
    for problem in summary["rule_problems"]:
        err.print(f"[yellow]binding rule skipped:[/yellow] {problem}", highlight=False)
    out.print(
        f"{summary['emails']} emails processed ({summary['changed']} changed): "
        f"{summary['with_contact_or_account']} linked to a contact or account, "
        f"{summary['bound_by_rules']} bound by rules, {summary['in_threads']} in a thread, "
        f"{summary['auto_replies']} auto-replies or bounces; "
        f"{summary['need_processing']} still need processing",
        highlight=False,
    )
    if summary["processes"]:
        started = summary["processes"]
        out.print(
            f"{started['started']} process run(s) started by triggers, {started['failed']} failed"
        )


@rules_app.command("validate")
def rules_validate(rules_dir: RulesDirOption = None) -> None:
    """Check every rule file; each problem is reported as file:line: reason."""
    from tasks.rules import load_rules

    with reported_errors():
        book = load_rules(rules_dir)
    for rule in book.rules:
        state = "" if rule.enabled else " (disabled)"
        out.print(
            f"ok  {rule.file}:{rule.line}: {rule.name!r}: {rule.column} → {rule.target}{state}",
            highlight=False,
        )
    for problem in book.problems:
        err.print(f"[red]error[/red] {problem}", highlight=False, soft_wrap=True)
    out.print(f"{len(book.rules)} rule(s) usable, {len(book.problems)} problem(s)")
    if book.problems:
        raise typer.Exit(1)


@rules_app.command("test")
def rules_test(
    rule_file: Path,
    limit: Annotated[int, typer.Option(help="Show at most this many bindings.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Dry run: which stored emails the file's rules would bind. Changes nothing."""
    from dataclasses import asdict, replace

    from tasks.binding import preview_bindings
    from tasks.rules import RuleBook, read_rule_file

    with reported_errors():
        if not rule_file.is_file():
            raise InboxflowError(f"{rule_file}: no such rule file")
        rules, problems = read_rule_file(rule_file)
    for problem in problems:
        err.print(f"[red]error[/red] {problem}", highlight=False, soft_wrap=True)
    if not rules:
        err.print("[red]inboxflow:[/red] no usable rule in the file")
        raise typer.Exit(1)
    for rule in rules:
        if not rule.enabled:
            err.print(f"rule {rule.name!r} is disabled: tried anyway, it does not run")
    # A dry run tries disabled rules too: that is how an analyst checks one before enabling it.
    book = RuleBook([replace(rule, enabled=True) for rule in rules])
    with _session() as session:
        scanned, found = preview_bindings(session, book, max(limit, 1))
    rows = [asdict(preview) for preview in found]
    columns = ["email_id", "subject", "rule", "target", "value", "outcome"]
    print_rows(rows, as_json, columns, "emails the rules would bind")
    if not as_json:
        out.print(f"{scanned} stored email(s) scanned, nothing changed")
    if problems:
        raise typer.Exit(1)


@records_app.command("import")
def records_import(
    record_type: Annotated[
        str, typer.Argument(help="Account, Contact, User, Invoice, Order or Contract.")
    ],
    file: Path,
) -> None:
    """Create or update records from a CSV file (header row; several addresses with ';')."""
    from tasks.records import import_records

    with _session() as session:
        report = import_records(session, record_type, file)
    out.print(
        f"{report.record_type}: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged",
        highlight=False,
    )


# demo ------------------------------------------------------------------------------------


@app.command()
def demo() -> None:
    """Import the bundled sample mailbox into the embedded database and list it."""
    from inboxflow.demo import run_demo

    with reported_errors():
        run_demo(out, run_import, lambda: emails_list(limit=0, as_json=False))


@contextmanager
def _session() -> Iterator[Any]:
    with reported_errors():
        init_db()
        with session_scope() as session:
            yield session


from inboxflow.cli_outbox import register  # noqa: E402 (cli_outbox imports this module)

register(app)  # send, outbox ..., templates ...

from inboxflow.cli_processes import register as register_processes  # noqa: E402

register_processes(app)  # processes validate|schema|list|run|deploy
from inboxflow.cli_settings import register as register_settings  # noqa: E402

register_settings(app)  # settings list|set
