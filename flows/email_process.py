"""The `email-process` flow: one analyst's process (processes/NAME.yaml) run on one email.

Every process file is a deployment of this flow (prefect.yaml), tagged "Email
Process", with ``process`` fixed and ``RecordId`` (the email's id) asked for. Each
step is a task run named after the step, so the Prefect UI shows the steps.

The run is one transaction (tasks/steps.py): it commits after the last step; a
failing step fails the run with the step's name and reason and nothing the run
did is kept. ``dry_run`` does every step and rolls back.
"""

import uuid
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State
from prefect.utilities.annotations import quote
from sqlmodel import Session

from flows.subflows import as_subflows
from models import get_engine, init_db
from tasks.errors import InboxflowError
from tasks.process_spec import Process, ProcessBook, load_process, load_processes
from tasks.steps import ProcessRun, StepOutcome, open_email, run_step
from tasks.triggers import Start, claim_starts, finish_start, start_is_pending


@flow(name="email-process", flow_run_name="{process} on email {RecordId}")
def email_process(
    RecordId: uuid.UUID,  # noqa: N803 - the name users see in the Prefect UI
    process: str,
    dry_run: bool = False,
    triggered: bool = False,
) -> State:
    """Run an email process on the email RecordId: each step in order, all or nothing.

    dry_run: do every step, then undo it all. triggered: started by the process's
    `on:` trigger (initial processing sets it; the run then records its outcome).
    """
    logger = get_run_logger()
    init_db()
    try:
        definition = load_process(process)
    except InboxflowError as exc:
        logger.error(str(exc))
        return Failed(message=str(exc))
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            run = ProcessRun(session, open_email(session, RecordId), definition, dry_run)
        except InboxflowError as exc:
            logger.error(str(exc))
            return Failed(message=str(exc))
        if triggered and not start_is_pending(session, RecordId, process):
            return Completed(message="already done by another run")
        outcomes, failure, stopped = run_steps(run, definition)
        if failure is not None:
            session.rollback()
            if triggered:
                finish_start(session, RecordId, process, "failed")
                session.commit()
            logger.error(failure)
            return Failed(message=failure)
        if triggered:
            finish_start(session, RecordId, process, "stopped" if stopped else "completed")
        if dry_run:
            session.rollback()
        else:
            session.commit()
    done = stopped or f"{len(outcomes)} step(s) done" + (
        " (dry run, nothing kept)" if dry_run else ""
    )
    logger.info("%s on email %s: %s", definition.key, RecordId, done)
    return Completed(message=done, data=_summary(definition, outcomes, dry_run, stopped))


def run_steps(
    run: ProcessRun, definition: Process
) -> tuple[list[StepOutcome], str | None, str | None]:
    """Each step as a task run, in order: (outcomes, why it failed, why it stopped)."""
    outcomes: list[StepOutcome] = []
    for step in definition.steps:
        try:
            outcome = run_process_step.with_options(name=step.name)(quote(run), step)
        except Exception as exc:  # noqa: BLE001 - any failure ends the run, rolled back
            reason = str(exc) if isinstance(exc, InboxflowError) else repr(exc)
            return (
                outcomes,
                f"step {step.name!r} failed: {reason}; nothing of this run was kept",
                None,
            )
        outcomes.append(outcome)
        if outcome.stops:
            return outcomes, None, f"stopped at step {step.name!r}: {outcome.summary}"
    return outcomes, None, None


@task(cache_policy=NO_CACHE)
def run_process_step(run: ProcessRun, step: Any) -> StepOutcome:
    """One step of a process (the task run carries the step's name)."""
    outcome = run_step(run, step)
    get_run_logger().info("%s: %s", step.name, outcome.summary)
    return outcome


def _summary(
    definition: Process, outcomes: list[StepOutcome], dry_run: bool, stopped: str | None = None
) -> dict[str, Any]:
    return {
        "process": definition.key,
        "dry_run": dry_run,
        "stopped": stopped,
        "steps": [{"step": o.step, "summary": o.summary, "skipped": o.skipped} for o in outcomes],
        "outputs": {
            step.id: {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in o.output.items()}
            for step, o in zip(definition.steps, outcomes, strict=False)
            if step.id
        },
    }


def start_triggered_processes(email_ids: list[uuid.UUID]) -> dict[str, int]:
    """Run every process whose `on:` trigger one of these new emails matches, once per email.

    Each run is a flow run of its own (a child of the calling flow); a failed run is
    logged and counted, and never fails the caller. Returns {"started": n, "failed": m}.
    """
    book = load_email_processes()
    if not book.triggered:
        return {}
    starts = claim_process_starts(quote(email_ids), quote(book))
    failed = 0
    with as_subflows():
        for start in starts:
            state = email_process(
                RecordId=start.email_id, process=start.process, triggered=True, return_state=True
            )
            failed += not state.is_completed()
    if failed:
        get_run_logger().error("%d of %d process runs failed", failed, len(starts))
    return {"started": len(starts), "failed": failed}


@task(name="load-email-processes", cache_policy=NO_CACHE)
def load_email_processes() -> ProcessBook:
    """The processes/*.yaml files; a broken file is logged and left out, the others load."""
    try:
        book = load_processes()
    except InboxflowError as exc:
        get_run_logger().warning("no email processes: %s", exc)
        return ProcessBook()
    for problem in book.problems:
        get_run_logger().error("process file skipped: %s", problem)
    return book


@task(name="claim-process-starts", cache_policy=NO_CACHE)
def claim_process_starts(email_ids: list[uuid.UUID], book: ProcessBook) -> list[Start]:
    """Which new emails start which processes; recorded so that each starts once."""
    with Session(get_engine()) as session:
        starts = claim_starts(session, email_ids, book)
        session.commit()
    return starts
