"""The `outbound-sending` flow: every queued email out over SMTP, exactly once (SPEC 5)."""

import uuid

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.states import Completed, Failed, State

from models import init_db
from tasks.errors import InboxflowError
from tasks.outbox import DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_DELAY, RetryPolicy
from tasks.sending import SendReport, load_senders, send_mailbox


@flow(name="outbound-sending")
def outbound_sending(
    mailbox: str | None = None,
    email_ids: list[uuid.UUID] | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    retry_delay_seconds: int = DEFAULT_RETRY_DELAY,
) -> State:
    """Send the due emails of one mailbox or all (or just the given emails).

    Per mailbox: settle what a crashed run left half-sent, send the queue over one
    SMTP connection, copy what was sent to the Sent folder and bind it. Temporary
    failures wait ``retry_delay_seconds``, doubling, for at most ``max_attempts``.
    """
    init_db()
    policy = RetryPolicy(max_attempts, retry_delay_seconds)
    try:
        jobs = load_senders(mailbox, email_ids)
    except InboxflowError as exc:
        get_run_logger().error(str(exc))
        return Failed(message=str(exc), data=[])
    reports = [send_mailbox(job, email_ids, policy) for job in jobs]
    publish_summary(reports)
    summary = [report.as_dict() for report in reports]
    troubled = [r for r in reports if r.error or r.failed or r.unconfirmed]
    message = f"{sum(r.sent for r in reports)} emails sent"
    if troubled:
        return Failed(message=f"{message}; {len(troubled)} mailbox(es) with errors", data=summary)
    return Completed(message=message, data=summary)


def publish_summary(reports: list[SendReport]) -> None:
    rows = [
        {
            "mailbox": r.address,
            "sent": r.sent,
            "retrying later": r.retrying,
            "failed": r.failed,
            "awaiting a person": r.unconfirmed,
            "found in Sent after a crash": r.found_in_sent,
            "taken by the server before a crash": r.delivered_before_crash,
            "Sent copies": r.sent_copies,
            "problem": r.error or r.skipped or r.sent_copy_error or "",
        }
        for r in reports
    ]
    create_table_artifact(rows, key="outbound-sending-summary", description="What was sent")
    get_run_logger().info("outbound sending: %d mailbox(es)", len(reports))
