"""The `mailbox-sync` flow: every new email of one or all mailboxes into the database."""

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.states import Completed, Failed, State

from flows.initial_processing import process_after_storing
from models import init_db
from tasks.errors import InboxflowError
from tasks.parsing import ParserPool
from tasks.sync import MailboxReport, file_store, load_mailboxes, max_file_size, sync_mailbox


@flow(name="mailbox-sync")
def mailbox_sync(address: str | None = None) -> State:
    """Sync one mailbox (by address) or every mailbox with download enabled."""
    init_db()
    try:
        jobs = load_mailboxes(address)
    except InboxflowError as exc:
        get_run_logger().error(str(exc))
        return Failed(message=str(exc), data=[])
    with ParserPool(file_store(), max_file_size()) as parser:
        reports = [sync_mailbox(job, parser) for job in jobs]
    process_after_storing(address)  # SPEC 3: a sync starts initial processing for what it stored
    publish_summary(reports)
    summary = [_as_dict(report) for report in reports]
    failed = [report.error for report in reports if report.error]
    if failed:
        return Failed(message=f"{len(failed)} of {len(reports)} mailboxes failed", data=summary)
    return Completed(message=f"{sum(r.stored for r in reports)} emails stored", data=summary)


def publish_summary(reports: list[MailboxReport]) -> None:
    rows = [
        {
            "mailbox": report.address,
            "stored": report.stored,
            "duplicates skipped": report.duplicates,
            "parse problems": report.problems,
            "error": report.error or "",
        }
        for report in reports
    ]
    create_table_artifact(rows, key="mailbox-sync-summary", description="What the sync stored")
    get_run_logger().info("synced %d mailbox(es)", len(reports))


def _as_dict(report: MailboxReport) -> dict[str, object]:
    return {
        "mailbox": report.address,
        "stored": report.stored,
        "duplicates": report.duplicates,
        "problems": report.problems,
        "folders": {f.folder: f.stored for f in report.folders},
        "error": report.error,
    }
