"""The CLI's email-process commands: `inboxflow processes validate|schema|list|run|deploy`.

Registered on the main app by ``register(app)`` at the end of inboxflow/cli.py.
"""

import os
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from inboxflow.cli import JsonOption, err, out, print_rows, reported_errors
from inboxflow.flow_runs import cli_flow_runs
from models import get_setting, init_db, session_scope
from tasks.errors import InboxflowError
from tasks.process_spec import (
    ProcessError,
    json_schema,
    load_process,
    load_processes,
    read_process_file,
)

processes_app = typer.Typer(help="Email processes (processes/*.yaml): check, list, run, deploy.")
DEPLOYMENT_FLOW = "email-process"
RUN_TIMEOUT = 600  # seconds to wait for a run through the Prefect server


def register(app: typer.Typer) -> None:
    app.add_typer(processes_app, name="processes")


@processes_app.command("validate")
def processes_validate(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Process files (default: all of processes/).")
    ] = None,
) -> None:
    """Check process files; each problem is reported as file:line: step: reason."""
    with reported_errors():
        if files:
            results = [read_process_file(path) for path in files]
            good = [process for process, _ in results if process is not None]
            problems = [problem for _, found in results for problem in found]
        else:
            book = load_processes()
            good, problems = list(book.processes.values()), book.problems
    for process in good:
        out.print(f"ok  {process.file}: {process.spec.name!r}, {len(process.steps)} steps")
    for problem in problems:
        err.print(f"[red]error[/red] {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)


@processes_app.command("schema")
def processes_schema() -> None:
    """Print the process file format as JSON Schema (for editors)."""
    typer.echo(json_schema(), nl=False)


@processes_app.command("list")
def processes_list(as_json: JsonOption = False) -> None:
    """The processes, their tag, trigger and Prefect deployment."""
    with reported_errors():
        init_db()
        book = load_processes()
        with session_scope() as session:
            tag = get_setting(session, "EmailProcessTag")
    rows = [
        {
            "process": key,
            "name": process.spec.name,
            "version": process.spec.version,
            "tag": tag,
            "trigger": process.trigger_summary() or "(started by hand)",
            "steps": len(process.steps),
            "deployment": f"{DEPLOYMENT_FLOW}/{key}",
            "file": process.file,
        }
        for key, process in sorted(book.processes.items())
    ]
    columns = ["process", "name", "tag", "trigger", "steps", "deployment"]
    print_rows(rows, as_json, columns, "email processes")
    for problem in book.problems:
        err.print(f"[red]broken process file[/red] {problem}", highlight=False, soft_wrap=True)


@processes_app.command("run")
def processes_run(
    name: Annotated[str, typer.Argument(help="The process (its file name without .yaml).")],
    email: Annotated[str, typer.Option("--email", help="The email's id (RecordId).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what each step would do; write nothing.")
    ] = False,
) -> None:
    """Run a process on an email (through the Prefect server when PREFECT_API_URL is set)."""
    with reported_errors():
        load_process(name)  # a broken or unknown process is reported before anything starts
        try:
            record_id = uuid.UUID(email.strip())
        except ValueError as exc:
            raise ProcessError(f"{email!r} is not an email id (a UUID from `emails list`)") from exc
        if os.environ.get("PREFECT_API_URL"):
            _run_through_server(name, record_id, dry_run)
        else:
            _run_here(name, record_id, dry_run)


def _run_here(name: str, record_id: uuid.UUID, dry_run: bool) -> None:
    init_db()
    from flows.email_process import email_process

    with cli_flow_runs():
        state = email_process(RecordId=record_id, process=name, dry_run=dry_run, return_state=True)
    if not state.is_completed():
        raise InboxflowError(state.message or f"process {name} failed")
    summary: dict[str, Any] = state.result()
    verb = "would" if dry_run else "did"
    out.print(f"{name} on email {record_id} ({'dry run' if dry_run else 'run'}):")
    for number, step in enumerate(summary["steps"], start=1):
        what = step["summary"] if step["skipped"] else f"{verb}: {step['summary']}"
        out.print(f"  {number}. {step['step']} — {what}", highlight=False)
    if summary["stopped"]:
        out.print(f"  {summary['stopped']}", highlight=False)
    out.print("dry run: nothing was written" if dry_run else state.message, highlight=False)


def _run_through_server(name: str, record_id: uuid.UUID, dry_run: bool) -> None:
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    deployment = f"{DEPLOYMENT_FLOW}/{name}"
    parameters: dict[str, Any] = {"RecordId": str(record_id)}
    if dry_run:
        parameters["dry_run"] = True
    out.print(f"starting {deployment} on the Prefect server; a worker of the pool runs it ...")
    try:
        run = run_deployment(deployment, parameters=parameters, timeout=RUN_TIMEOUT)
    except ObjectNotFound as exc:
        raise ProcessError(
            f"no deployment {deployment} on the server: run `inboxflow processes deploy`"
        ) from exc
    state = run.state
    if state is None or not state.is_final():
        raise ProcessError(
            f"flow run {run.name} ({run.id}) did not finish within {RUN_TIMEOUT} s: is a worker "
            "running? (`prefect worker start --pool inboxflow`)"
        )
    if not state.is_completed():
        raise ProcessError(f"flow run {run.name} ({run.id}): {state.name}: {state.message}")
    out.print(f"flow run {run.name} ({run.id}): {state.message or state.name}", highlight=False)


@processes_app.command("deploy")
def processes_deploy(
    apply: Annotated[
        bool | None,
        typer.Option(
            "--apply/--no-apply",
            help="Also run `prefect deploy --all` (default: when PREFECT_API_URL is set).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write prefect.yaml from processes/ (one deployment each), then deploy it."""
    from tasks.deployments import apply_deployments, prefect_yaml_path, render_prefect_yaml

    with reported_errors():
        init_db()
        book = load_processes()
        with session_scope() as session:
            interval = int(get_setting(session, "MailboxSyncInterval"))
            tag = get_setting(session, "EmailProcessTag")
        target = prefect_yaml_path()
        text = render_prefect_yaml(book, interval, tag)
        changed = not target.exists() or target.read_text(encoding="utf-8") != text
        if changed:
            target.write_text(text, encoding="utf-8")
        state = "written" if changed else "unchanged"
        out.print(
            f"{target.name} {state}: {len(book.processes)} process deployment(s) "
            f"({', '.join(sorted(book.processes)) or 'none'}) and the system flows"
        )
        for problem in book.problems:
            err.print(f"[red]left out, broken:[/red] {problem}", highlight=False, soft_wrap=True)
        if apply is None:
            apply = bool(os.environ.get("PREFECT_API_URL"))
        if apply:
            out.print("prefect deploy --all ...")
            apply_deployments(target.parent)
            out.print(
                f"deployed to {os.environ.get('PREFECT_API_URL', 'the Prefect server')}: "
                + ", ".join(f"{DEPLOYMENT_FLOW}/{key}" for key in sorted(book.processes)),
                highlight=False,
            )
        else:
            out.print("not deployed (PREFECT_API_URL is not set): run `prefect deploy --all`")
    if book.problems:
        raise typer.Exit(1)
