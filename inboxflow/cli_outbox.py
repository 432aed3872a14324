"""The CLI's sending commands: `inboxflow send`, `inboxflow outbox ...`, `inboxflow templates ...`.

Registered on the main app by ``register(app)`` at the end of inboxflow/cli.py.
"""

import os
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from inboxflow.cli import JsonOption, _session, err, out, print_rows, reported_errors
from inboxflow.flow_runs import cli_flow_runs
from models import Email, SendStatus, init_db, session_scope
from models.outbox import OutboxState
from tasks.errors import InboxflowError, OutboxError
from tasks.outbox import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_DELAY,
    USER_ERROR_MESSAGE,
    NewAttachment,
    OutgoingEmail,
    list_outbox,
    queue_email,
    resolve_email,
    retry_email,
    retry_failed,
)

outbox_app = typer.Typer(help="Outgoing emails: send the queue, list it, retry, resolve.")
templates_app = typer.Typer(help="Email templates (files in templates/ loaded into the database).")

UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        help="Who is sending (a user name); default: $INBOXFLOW_USER.",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    app.command("send")(send)
    app.add_typer(outbox_app, name="outbox")
    app.add_typer(templates_app, name="templates")


def send(
    from_: Annotated[str, typer.Option("--from", help="Mailbox to send from (its address).")],
    to: Annotated[list[str] | None, typer.Option("--to", help="Recipient (repeatable).")] = None,
    cc: Annotated[list[str] | None, typer.Option("--cc", help="Copy to (repeatable).")] = None,
    bcc: Annotated[
        list[str] | None, typer.Option("--bcc", help="Blind copy to (repeatable).")
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="Subject; a template or a reply can provide it.")
    ] = None,
    body: Annotated[str | None, typer.Option(help="Plain-text body.")] = None,
    html_file: Annotated[Path | None, typer.Option(help="HTML body from a file.")] = None,
    template: Annotated[str | None, typer.Option(help="Email template name.")] = None,
    source: Annotated[
        str | None, typer.Option(help="Record filling the template's macros, OBJECT:ID.")
    ] = None,
    attach: Annotated[
        list[Path] | None, typer.Option("--attach", help="Attach a file (repeatable).")
    ] = None,
    inline: Annotated[
        list[Path] | None,
        typer.Option("--inline", help="Inline image the HTML shows as cid:FILE-NAME (repeatable)."),
    ] = None,
    reply_to_email: Annotated[
        str | None, typer.Option(help="Id of the email this one answers.")
    ] = None,
    user: UserOption = None,
    now: Annotated[
        bool, typer.Option("--now", help="Send at once instead of at the next scheduled run.")
    ] = False,
) -> None:
    """Queue an email to send and print its id."""
    with reported_errors():
        sender = user or os.environ.get("INBOXFLOW_USER")
        if not sender:
            raise OutboxError("who is sending? pass --user NAME or set INBOXFLOW_USER")
        if sum(x is not None for x in (body, html_file, template)) > 1:
            raise OutboxError("give one of --body, --html-file and --template")
        outgoing = OutgoingEmail(
            mailbox=from_,
            to=to or [],
            cc=cc or [],
            bcc=bcc or [],
            subject=subject,
            body_text=body,
            body_html=_read_text(html_file) if html_file else None,
            template=template,
            source=source,
            attachments=[NewAttachment.from_path(p) for p in attach or []]
            + [NewAttachment.from_path(p, inline=True) for p in inline or []],
            reply_to_email_id=_email_id(reply_to_email) if reply_to_email else None,
        )
        init_db()
        from tasks.sync import file_store

        with session_scope() as session:
            email = queue_email(session, outgoing, sender, store=file_store())
            email_id = email.id
    out.print(str(email_id), highlight=False)
    if not now:
        return
    _run_outbox(None, [email_id], DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_DELAY)
    with _session() as session:
        status = session.get(Email, email_id).send_status  # type: ignore[union-attr]
    if status != SendStatus.completed:
        err.print(
            f"[red]inboxflow:[/red] {USER_ERROR_MESSAGE} "
            f"(status {status}; `inboxflow outbox list` shows the cause)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


@outbox_app.command("send")
def outbox_send(
    mailbox: Annotated[str | None, typer.Option(help="Only this mailbox.")] = None,
    max_attempts: Annotated[
        int, typer.Option(help="Attempts before a temporary failure becomes an error.")
    ] = DEFAULT_MAX_ATTEMPTS,
    retry_delay: Annotated[
        int, typer.Option(help="Seconds before the first retry; doubles after each.")
    ] = DEFAULT_RETRY_DELAY,
) -> None:
    """Send the queued emails now (the outbound-sending flow)."""
    reports = _run_outbox(mailbox, None, max_attempts, retry_delay)
    if not reports:
        out.print("nothing to send")
    for report in reports:
        _print_report(report)
    if any(r["error"] or r["failed"] or r["unconfirmed"] for r in reports):
        raise typer.Exit(1)


@outbox_app.command("list")
def outbox_list(
    mailbox: Annotated[str | None, typer.Option(help="Only this mailbox.")] = None,
    state: Annotated[OutboxState | None, typer.Option(help="Only emails in this state.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (0 = all).")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List outgoing emails, newest first: status, attempts, the user's message and the cause."""
    with _session() as session:
        rows = list_outbox(session, mailbox, state, limit or None)
    columns = ["id", "mailbox", "to", "subject", "status", "attempts", "message", "cause"]
    print_rows(rows, as_json, columns, "outgoing emails")


@outbox_app.command("retry")
def outbox_retry(
    email_id: Annotated[str | None, typer.Argument(help="The email to send again.")] = None,
    all_failed: Annotated[
        bool, typer.Option("--all", help="Every email in error (of --mailbox, or all).")
    ] = False,
    mailbox: Annotated[str | None, typer.Option(help="With --all: only this mailbox.")] = None,
    later: Annotated[
        bool, typer.Option("--later", help="Only queue again; the next scheduled run sends.")
    ] = False,
) -> None:
    """Queue a failed email again (attempts start afresh) and send it now."""
    with reported_errors():
        if (email_id is None) == (not all_failed):
            raise OutboxError("name one email id, or pass --all")
        with _session() as session:
            if email_id is not None:
                ids = [_email_id(email_id)]
                out.print(f"{ids[0]}: {retry_email(session, ids[0])}", highlight=False)
            else:
                ids = retry_failed(session, mailbox)
                out.print(f"{len(ids)} email(s) queued again", highlight=False)
    if later or not ids:
        return
    reports = _run_outbox(None, ids, DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_DELAY)
    for report in reports:
        _print_report(report)
    if any(r["error"] or r["failed"] or r["unconfirmed"] for r in reports):
        raise typer.Exit(1)


@outbox_app.command("resolve")
def outbox_resolve(
    email_id: Annotated[str, typer.Argument(help="An email whose sending was interrupted.")],
    sent: Annotated[
        bool | None,
        typer.Option(
            "--sent/--not-sent",
            help="It was delivered (record it), or it was not (queue it again).",
            show_default=False,
        ),
    ] = None,
    user: UserOption = None,
) -> None:
    """Settle an email whose sending was interrupted: delivered, or not (then it is queued)."""
    with reported_errors():
        if sent is None:
            raise OutboxError("say what happened: --sent or --not-sent")
        who = user or os.environ.get("INBOXFLOW_USER") or os.environ.get("USER") or "operator"
        ident = _email_id(email_id)
        with _session() as session:
            outcome = resolve_email(session, ident, sent=sent, by=who)
    out.print(f"{ident}: {outcome}", highlight=False)


@templates_app.command("load")
def templates_load(
    folder: Annotated[
        Path | None,
        typer.Argument(help="Folder of *.html templates; default templates/.", show_default=False),
    ] = None,
) -> None:
    """Create or update the email templates from the template files."""
    from tasks.templates import load_template_files

    with _session() as session:
        report = load_template_files(session, folder)
    for problem in report.problems:
        err.print(f"[red]template skipped:[/red] {problem}", highlight=False, soft_wrap=True)
    out.print(
        f"{len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged, {len(report.problems)} with problems",
        highlight=False,
    )
    if report.problems:
        raise typer.Exit(1)


@templates_app.command("list")
def templates_list(as_json: JsonOption = False) -> None:
    """List the email templates in the database."""
    from sqlalchemy import select

    from models import EmailTemplate

    with _session() as session:
        rows = [
            {"name": t.name, "source": t.source_object or "", "subject": t.subject}
            for t in session.scalars(select(EmailTemplate).order_by(EmailTemplate.name))
        ]
    print_rows(rows, as_json, ["name", "source", "subject"], "templates")


def _run_outbox(
    mailbox: str | None,
    email_ids: list[uuid.UUID] | None,
    max_attempts: int,
    retry_delay: int,
) -> list[dict[str, Any]]:
    with reported_errors():
        init_db()
        from flows.outbound_sending import outbound_sending

        with cli_flow_runs():
            state = outbound_sending(
                mailbox, email_ids, max_attempts, retry_delay, return_state=True
            )
        reports = state.result(raise_on_failure=False)
        if isinstance(reports, BaseException):
            raise InboxflowError(f"sending failed: {reports}")
        if not reports and state.is_failed():
            raise InboxflowError(state.message or "sending failed")
    return list(reports or [])


def _print_report(report: dict[str, Any]) -> None:
    if report["skipped"]:
        out.print(f"{report['address']}: skipped, {report['skipped']}", highlight=False)
        return
    parts = [f"{report['sent']} sent"]
    for key, label in (
        ("retrying", "to retry later"),
        ("failed", "failed"),
        ("unconfirmed", "interrupted, awaiting a person (`inboxflow outbox resolve`)"),
        ("found_in_sent", "interrupted but found in Sent"),
        ("delivered_before_crash", "taken by the server before an interruption, now recorded"),
    ):
        if report[key]:
            parts.append(f"{report[key]} {label}")
    out.print(f"{report['address']}: {', '.join(parts)}", highlight=False)
    for key in ("error", "sent_copy_error"):
        if report[key]:
            err.print(f"[red]inboxflow:[/red] {report[key]}", highlight=False, soft_wrap=True)


def _email_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise OutboxError(f"{value!r} is not an email id (a UUID)") from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OutboxError(f"cannot read {path}: {exc}") from exc
