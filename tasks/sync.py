"""Prefect tasks of the mailbox sync: one task per mailbox, per folder and per stored batch."""

from collections.abc import Callable
from dataclasses import dataclass, field

import imapclient
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote
from sqlalchemy import select
from sqlmodel import Session

from models import SyncState, get_engine, get_setting
from models.db import data_dir
from tasks.errors import InboxflowError
from tasks.filestore import FileStore
from tasks.imap import FetchedMessage, FolderPlan, fetch_messages, folders_to_sync, open_mailbox
from tasks.imap import plan_folder as plan_imap_folder
from tasks.locking import mailbox_lock
from tasks.mailboxes import MailboxJob, load_jobs
from tasks.parsing import ParsedEmail, ParserPool
from tasks.progress import Progress, publish
from tasks.storing import HighWaterMark, IncomingEmail, StoredBatch, store_emails

# A downloaded batch whose parsing is under way.
Pending = tuple[list[FetchedMessage], Callable[[], list[ParsedEmail]]]


@dataclass
class FolderReport:
    folder: str
    stored: int = 0
    duplicates: int = 0
    problems: int = 0


@dataclass
class MailboxReport:
    address: str
    folders: list[FolderReport] = field(default_factory=list)
    error: str | None = None

    @property
    def stored(self) -> int:
        return sum(f.stored for f in self.folders)

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.folders)

    @property
    def problems(self) -> int:
        return sum(f.problems for f in self.folders)


def file_store() -> FileStore:
    return FileStore(data_dir() / "files")


def max_file_size() -> int:
    with Session(get_engine()) as session:
        return int(get_setting(session, "MaxFileSize"))


@task(name="load-mailboxes", cache_policy=NO_CACHE)
def load_mailboxes(address: str | None) -> list[MailboxJob]:
    """The mailboxes to sync: one by address, or every one with download enabled."""
    with Session(get_engine()) as session:
        return load_jobs(session, address)


@task(name="sync-mailbox", cache_policy=NO_CACHE)
def sync_mailbox(job: MailboxJob, parser: ParserPool) -> MailboxReport:
    """Download what is new in every chosen folder of one mailbox.

    A mailbox that cannot be synced (dead server, wrong password, busy) is
    reported in one line and does not stop the other mailboxes.
    """
    report = MailboxReport(job.address)
    try:
        with mailbox_lock(job.id, job.address), open_mailbox(job.imap_settings()) as client:
            for folder in folders_to_sync(client, job.folders):
                report.folders.append(sync_folder(client, job, folder, parser))
    except InboxflowError as exc:
        report.error = str(exc) if job.address in str(exc) else f"mailbox {job.address}: {exc}"
        get_run_logger().error(report.error)
    except (OSError, imapclient.exceptions.IMAPClientError) as exc:
        # The connection broke mid-sync; what was committed stays, the next run resumes.
        report.error = f"mailbox {job.address}: connection lost during sync ({exc})"
        get_run_logger().error(report.error)
    return report


@task(name="sync-folder", cache_policy=NO_CACHE)
def sync_folder(
    client: imapclient.IMAPClient, job: MailboxJob, folder: str, parser: ParserPool
) -> FolderReport:
    """Download a folder's new messages in UID batches, committing each batch.

    Parsing of batch N (in worker processes) overlaps the download of batch N+1.
    """
    plan = _plan_folder(client, job, folder)
    publish(Progress(job.address, folder, planned=plan.message_count))
    report = FolderReport(folder)
    pending: Pending | None = None
    for uids in plan.batches:
        fetched, raws = fetch_messages(client, uids)
        parsing = parser.submit(raws)
        del raws  # the parser holds them now; keep peak memory at about two batches
        if pending is not None:
            _add(report, _store_pending(job, plan, pending))
        pending = (fetched, parsing)
    if pending is not None:
        _add(report, _store_pending(job, plan, pending))
    # Everything below UIDNEXT was seen (or left out by the first-sync period): move past it.
    store_batch(job, plan.folder, plan.uidvalidity, quote([]), quote([]), max(plan.uidnext - 1, 0))
    get_run_logger().info(
        "%s %s: %d stored, %d duplicates", job.address, folder, report.stored, report.duplicates
    )
    return report


def _plan_folder(client: imapclient.IMAPClient, job: MailboxJob, folder: str) -> FolderPlan:
    with Session(get_engine()) as session:
        state = session.scalars(
            select(SyncState).where(SyncState.mailbox_id == job.id, SyncState.folder == folder)
        ).first()
    return plan_imap_folder(
        client,
        folder,
        known_uidvalidity=state.uidvalidity if state else None,
        last_uid=state.last_uid if state else 0,
        since=job.first_sync_since(),
    )


def _store_pending(job: MailboxJob, plan: FolderPlan, pending: Pending) -> StoredBatch:
    fetched, parsing = pending
    parsed = parsing()
    # quote(): Prefect would otherwise walk every field of every email to look for futures.
    last_uid = max(m.uid for m in fetched)
    batch = store_batch(job, plan.folder, plan.uidvalidity, quote(fetched), quote(parsed), last_uid)
    publish(Progress(job.address, plan.folder, stored=len(fetched)))
    return batch


def _add(report: FolderReport, batch: StoredBatch) -> None:
    report.stored += len(batch.stored_ids)
    report.duplicates += batch.duplicates
    report.problems += batch.problems


@task(name="store-batch", cache_policy=NO_CACHE)
def store_batch(
    job: MailboxJob,
    folder: str,
    uidvalidity: int,
    fetched: list[FetchedMessage],
    parsed: list[ParsedEmail],
    last_uid: int,
) -> StoredBatch:
    """Store one batch and move the folder's high-water mark, in one transaction."""
    incoming = [
        IncomingEmail(p, folder, m.uid, uidvalidity, m.seen, m.internal_date)
        for m, p in zip(fetched, parsed, strict=True)
    ]
    mark = HighWaterMark(folder, uidvalidity, last_uid)
    with Session(get_engine(), expire_on_commit=False) as session:
        return store_emails(session, job.ref, incoming, mark)
