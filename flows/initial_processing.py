"""The `initial-processing` flow: link new emails to people and records (SPEC 4).

Runs after every sync and import for what awaits processing, and on its own
(`inboxflow process-emails [--all]`). One task per batch of emails; running it
again changes nothing.
"""

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State
from prefect.utilities.annotations import quote
from sqlmodel import Session

from flows.email_process import start_triggered_processes
from flows.subflows import as_subflows
from models import get_engine, init_db
from tasks.batches import batched
from tasks.errors import InboxflowError
from tasks.processing import ProcessingReport, has_unprocessed, process_batch, select_email_ids
from tasks.rules import RuleBook, load_rules, record_rules

BATCH_SIZE = 1000


@flow(name="initial-processing")
def initial_processing(
    mailbox: str | None = None, all_emails: bool = False, rules_dir: str | None = None
) -> State:
    """Bind the new emails (of one mailbox, or all; every email with all_emails) and flag
    what a person still has to look at."""
    init_db()
    try:
        book = load_binding_rules(rules_dir)
        email_ids = select_emails(mailbox, all_emails)
    except InboxflowError as exc:
        get_run_logger().error(str(exc))
        return Failed(message=str(exc))
    report = ProcessingReport()
    for batch in batched(email_ids, BATCH_SIZE):
        # quote(): Prefect would otherwise walk every id and rule looking for futures.
        report.add(process_batch(quote(batch), quote(book)))
    # New mail starts the processes whose `on:` trigger it matches (a re-run of all
    # emails starts none: those emails had their chance when they were new).
    started = {} if all_emails else start_triggered_processes(email_ids)
    publish_summary(report, book)
    summary: dict[str, Any] = {**report.as_dict(), "rule_problems": [str(p) for p in book.problems]}
    summary["processes"] = started
    return Completed(message=f"{report.emails} emails processed", data=summary)


@task(name="load-binding-rules", cache_policy=NO_CACHE)
def load_binding_rules(rules_dir: str | None) -> RuleBook:
    """Read and check rules/*.yaml once per run, and mirror them into the binding_rule
    table; a broken rule is logged and left out."""
    book = load_rules(rules_dir)
    for problem in book.problems:
        get_run_logger().error("binding rule skipped: %s", problem)
    with Session(get_engine()) as session:
        record_rules(session, book)
    return book


@task(name="select-emails", cache_policy=NO_CACHE)
def select_emails(mailbox: str | None, all_emails: bool) -> list[Any]:
    """The ids of the emails to process, oldest first."""
    with Session(get_engine()) as session:
        return select_email_ids(session, mailbox, all_emails)


def publish_summary(report: ProcessingReport, book: RuleBook) -> None:
    rows = [{"what": name.replace("_", " "), "emails": n} for name, n in report.as_dict().items()]
    rows += [{"what": f"rule problem: {problem}", "emails": 0} for problem in book.problems]
    create_table_artifact(rows, key="initial-processing-summary", description="What was bound")
    get_run_logger().info("initial processing: %s", report.as_dict())


def process_after_storing(mailbox: str | None) -> dict[str, int]:
    """Run initial processing as a subflow when emails await it (called by sync and import).

    Returns {"processed": n, "need_processing": m}, or {} when nothing ran. Storing
    has committed by then: a failure here is logged, never fails the sync or import,
    and the emails stay unprocessed for the next run.
    """
    with Session(get_engine()) as session:
        if not has_unprocessed(session, mailbox):
            return {}
    with as_subflows():
        state = initial_processing(mailbox=mailbox, return_state=True)
    if not state.is_completed():
        get_run_logger().error("initial processing failed: %s", state.message)
        return {}
    summary = state.result()
    return {"processed": summary["emails"], "need_processing": summary["need_processing"]}
