"""Prefect tasks of the outbound sending: one task per mailbox, one per batch of emails.

Per mailbox, under a lock of its own (one sender per mailbox at a time, so an
email in "sending" found under the lock belongs to a run that died):

1. settle what a dead run left in "sending", from its hand-over journal (see
   tasks/handover.py): delivered → completed, never handed over → queued again,
   handed over without an answer → Sent folder lookup, else unconfirmed;
2. send the due emails over one SMTP connection, a batch claimed ("sending") in
   one commit, each email in the journal before its DATA and after its 250;
3. meanwhile, in a background thread, record the delivered emails "completed" a
   chunk at a time, append their copies to the Sent folder and run them through
   the binding rules — IMAP and SQL overlap the SMTP round trips instead of
   adding to them.
"""

import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from logging import Logger, LoggerAdapter
from pathlib import Path
from typing import Any

import imapclient
from imapclient.exceptions import IMAPClientError
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from models import EmailProvider, Mailbox, get_engine
from models.base import utcnow
from models.outbox import OutboxEntry, OutboxState
from tasks.credentials import resolve_credential
from tasks.errors import (
    InboxflowError,
    MailboxBusyError,
    SmtpError,
    SmtpPermanentError,
    SmtpTemporaryError,
)
from tasks.filestore import FileStore
from tasks.handover import (
    HAND_OVER_WINDOW,
    Delivered,
    HandOverJournal,
    clear_journal,
    journal_path,
    read_journal,
)
from tasks.imap import ImapSettings, connect
from tasks.locking import mailbox_lock
from tasks.outbox import (
    CopyItem,
    RetryPolicy,
    SendItem,
    claim_batch,
    due_items,
    interrupted,
    pending_sent_copies,
    record_delivered,
    record_failure,
    record_filed_by_provider,
    record_sent_copies,
    record_sent_copy_error,
    release_never_sent,
    settle_interrupted,
)
from tasks.sent_copy import append_copies, find_by_message_id, sent_folder, with_bcc
from tasks.smtp import SmtpSession, SmtpSettings
from tasks.sync import file_store

BATCH_SIZE = 500
# Sent emails go to the Sent-copy thread in chunks this small, so little is left to
# copy when the last email is sent.
COPY_CHUNK = 50
# ... and are bound in bigger ones: the binding's queries cost per batch, not per email.
BIND_CHUNK = 250
# Namespace of the senders' lock keys (see sender_lock).
_SENDER_LOCK = uuid.UUID("6b1f3c52-5a0e-4c1e-9d0a-0f4b3c7e2a11")

Log = Logger | LoggerAdapter[Logger]
BindFn = Callable[[list[uuid.UUID]], None]


@dataclass(frozen=True)
class SenderJob:
    """A mailbox as the sender needs it; secrets are resolved only when connecting."""

    mailbox_id: uuid.UUID
    address: str
    login: str
    credential_ref: str
    auth: str
    tls_insecure: bool
    smtp_host: str
    smtp_port: int
    smtp_security: str
    smtp_timeout: int
    imap_host: str
    imap_port: int
    imap_security: str
    sending_enabled: bool = True
    # The provider files sent mail in Sent itself: no copy of ours (see EmailProvider).
    files_sent_mail: bool = False

    def smtp_settings(self) -> SmtpSettings:
        return SmtpSettings(
            address=self.address,
            host=self.smtp_host,
            port=self.smtp_port,
            security=self.smtp_security,
            login=self.login,
            secret=resolve_credential(self.credential_ref, self.address),
            auth=self.auth,
            timeout=float(self.smtp_timeout),
            tls_insecure=self.tls_insecure,
        )

    def imap_settings(self) -> ImapSettings:
        return ImapSettings(
            address=self.address,
            host=self.imap_host,
            port=self.imap_port,
            security=self.imap_security,
            login=self.login,
            secret=resolve_credential(self.credential_ref, self.address),
            auth=self.auth,
            tls_insecure=self.tls_insecure,
        )


@dataclass
class SendReport:
    """What one run did for one mailbox."""

    address: str
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    unconfirmed: int = 0
    found_in_sent: int = 0
    delivered_before_crash: int = 0
    sent_copies: int = 0
    sent_copy_error: str | None = None
    skipped: str | None = None
    error: str | None = None
    # Wall time of the SMTP phase (first claim to last reply), for the summary and benchmarks.
    sending_seconds: float = 0.0

    def count(self, states: dict[str, int]) -> None:
        self.retrying += states.get(OutboxState.queued, 0)
        self.failed += states.get(OutboxState.error, 0)
        self.unconfirmed += states.get(OutboxState.unconfirmed, 0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@task(name="load-senders", cache_policy=NO_CACHE)
def load_senders(address: str | None, email_ids: list[uuid.UUID] | None) -> list[SenderJob]:
    """Mailboxes with work: due emails, emails a dead run left, or Sent copies to make."""
    now = utcnow()
    # Table columns, not ORM attributes: a statement naming an ORM attribute makes the
    # first query configure every mapper (~50 ms), on the run's critical path.
    entry = OutboxEntry.__table__.c  # type: ignore[attr-defined]
    mailbox, provider = Mailbox.__table__.c, EmailProvider.__table__.c  # type: ignore[attr-defined]
    work = select(entry.mailbox_id).where(
        or_(
            (entry.state == OutboxState.queued)
            & or_(entry.next_attempt_at.is_(None), entry.next_attempt_at <= now),
            entry.state == OutboxState.sending,
            entry.sent_copy_pending.is_(True),
        )
    )
    if email_ids is not None:
        work = work.where(entry.email_id.in_(email_ids))
    query = (
        select(
            mailbox.id.label("mailbox_id"),
            mailbox.address,
            mailbox.login,
            mailbox.credential_ref,
            provider.auth,
            mailbox.tls_insecure,
            provider.smtp_host,
            provider.smtp_port,
            provider.smtp_security,
            provider.smtp_timeout,
            provider.imap_host,
            provider.imap_port,
            provider.imap_security,
            mailbox.sending_enabled,
            provider.files_sent_mail,
        )
        .join_from(Mailbox.__table__, EmailProvider.__table__, provider.id == mailbox.provider_id)
        .where(mailbox.id.in_(work.distinct()))
        .order_by(mailbox.address)
    )
    if address:
        query = query.where(mailbox.address == address.strip().lower())
    with get_engine().connect() as connection:
        rows = connection.execute(query).mappings().all()
    return [
        SenderJob(
            **{
                **row,
                "auth": str(row["auth"]),
                "smtp_security": str(row["smtp_security"]),
                "imap_security": str(row["imap_security"]),
            }
        )
        for row in rows
    ]


@task(name="send-mailbox", cache_policy=NO_CACHE)
def send_mailbox(
    job: SenderJob,
    email_ids: list[uuid.UUID] | None,
    policy: RetryPolicy,
    bind: bool = True,
) -> SendReport:
    """Settle, send and copy one mailbox's outgoing emails; a failure stays in this mailbox."""
    log = get_run_logger()
    report = SendReport(job.address)
    if not job.sending_enabled:
        # Queued before sending was switched off: kept, and sent once it is back on.
        report.skipped = "sending is disabled for this mailbox"
        log.warning("%s: %s; its queued emails wait", job.address, report.skipped)
        return report
    try:
        with sender_lock(job.mailbox_id, job.address):
            store = file_store()
            binder = OutgoingBinder(log) if bind else None
            journal_file = journal_path(store.root, job.mailbox_id)
            with SentCopier(job, store, log, binder, report) as copier:
                settle_dead_run(job, copier, journal_file, policy, log, report)
                with HandOverJournal(journal_file) as journal:
                    send_due(job, email_ids, policy, store, copier, journal, report)
    except MailboxBusyError:
        report.skipped = "another run is sending from this mailbox"
        log.info("%s: skipped, another run is sending from it", job.address)
    except InboxflowError as exc:
        report.error = str(exc) if job.address in str(exc) else f"mailbox {job.address}: {exc}"
        log.error(report.error)
    return report


@contextmanager
def sender_lock(mailbox_id: uuid.UUID, address: str) -> Iterator[None]:
    """One sender per mailbox at a time (MailboxBusyError otherwise); dies with its process.

    Keyed apart from the sync's lock of the same mailbox, so a sync and a send overlap.
    """
    with mailbox_lock(uuid.uuid5(_SENDER_LOCK, str(mailbox_id)), address):
        yield


def settle_dead_run(
    job: SenderJob,
    copier: "SentCopier",
    journal_file: Path,
    policy: RetryPolicy,
    log: Log,
    report: SendReport,
) -> None:
    """Emails a dead run left in "sending", settled by what its journal says (see
    tasks/handover.py) and the Sent folder; then the Sent copies still to be made."""
    with get_engine().connect() as connection:
        stuck = interrupted(connection, job.mailbox_id)
    if stuck:
        journal = read_journal(journal_file)
        delivered: list[tuple[Delivered, int]] = []
        unsent: list[uuid.UUID] = []
        uncertain: list[SendItem] = []
        for item in stuck:
            if item.email_id in journal.delivered:
                delivered.append((journal.delivered[item.email_id], item.attempts + 1))
            elif journal.never_handed_over(item.email_id):
                unsent.append(item.email_id)
            else:
                uncertain.append(item)
        with get_engine().connect() as connection:
            record_delivered(connection, delivered, utcnow(), policy, _DELIVERED_BEFORE_CRASH)
            release_never_sent(connection, unsent)
        report.delivered_before_crash += len(delivered)
        if delivered or unsent:
            log.info(
                "%s: after an interrupted run, %d email(s) the server had taken recorded as "
                "sent, %d never handed over queued again",
                job.address,
                len(delivered),
                len(unsent),
            )
        if uncertain:
            settle_uncertain(job, uncertain, copier, log, report)
    # Its every fact is in the database now.
    clear_journal(journal_file)
    with get_engine().connect() as connection:
        copies = pending_sent_copies(connection, job.mailbox_id)
    if copies:
        # Copies from an earlier run may have been appended just before it died: look first.
        copier.submit(copies, look_first=True)


_DELIVERED_BEFORE_CRASH = "the server took it before the sending run was interrupted"


def settle_uncertain(
    job: SenderJob, stuck: list[SendItem], copier: "SentCopier", log: Log, report: SendReport
) -> None:
    """Handed over with no answer recorded: completed if the Sent folder has them, else
    unconfirmed for a person. Never sent again blindly."""
    found, why = copier.look_up([item.message_id for item in stuck])
    done = [item.email_id for item in stuck if item.message_id in found]
    unknown = [item.email_id for item in stuck if item.message_id not in found]
    with get_engine().connect() as connection:
        settle_interrupted(connection, done, unknown, why, utcnow())
    report.found_in_sent += len(done)
    report.unconfirmed += len(unknown)
    for email_id in unknown:
        log.warning(
            "%s: email %s was interrupted after its hand-over to the SMTP server (%s); "
            "it is NOT sent again until a person resolves it",
            job.address,
            email_id,
            why,
        )
    if done:
        log.info("%s: %d interrupted email(s) found in Sent", job.address, len(done))


def send_due(
    job: SenderJob,
    email_ids: list[uuid.UUID] | None,
    policy: RetryPolicy,
    store: FileStore,
    copier: "SentCopier",
    journal: HandOverJournal,
    report: SendReport,
) -> None:
    """Send every due email of the mailbox over one SMTP connection, in batches."""
    with get_engine().connect() as connection:
        due = due_items(connection, job.mailbox_id, utcnow(), email_ids)
    if not due:
        return
    started = time.perf_counter()
    with SmtpSession(job.smtp_settings()) as smtp:
        for start in range(0, len(due), BATCH_SIZE):
            chunk = due[start : start + BATCH_SIZE]
            batch = send_batch(job, chunk, smtp, policy, store, copier, journal)
            for name in ("sent", "retrying", "failed", "unconfirmed"):
                setattr(report, name, getattr(report, name) + getattr(batch, name))
            if batch.error:
                # The server is unreachable: the rest of the queue fails the same way, now.
                rest = due[start + BATCH_SIZE :]
                report.error = batch.error
                if rest and batch.cause is not None:
                    report.count(_record_failure(rest, batch.cause, policy))
                break
    report.sending_seconds = time.perf_counter() - started


@dataclass
class BatchResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    unconfirmed: int = 0
    error: str | None = None
    cause: SmtpError | None = field(default=None, repr=False)


@task(name="send-batch", cache_policy=NO_CACHE)
def send_batch(
    job: SenderJob,
    due: list[SendItem],
    smtp: SmtpSession,
    policy: RetryPolicy,
    store: FileStore,
    copier: "SentCopier",
    journal: HandOverJournal,
) -> BatchResult:
    """Claim the batch, send each email, hand what the server took to the copier.

    The journal announces each email before its DATA (flushed to disk a window of
    emails at a time) and takes the server's answer right after; the database
    records "completed" a chunk at a time, in the copier's thread.
    """
    log = get_run_logger()
    result = BatchResult()
    journal.claimed([item.email_id for item in due])
    with get_engine().connect() as connection:
        items = claim_batch(connection, due, utcnow())
    delivered: list[tuple[Delivered, SendItem]] = []
    messages = ReadAhead(store, items)
    try:
        for index, item in enumerate(items):
            try:
                raw = messages.next()
                if index % HAND_OVER_WINDOW == 0:
                    window = items[index : index + HAND_OVER_WINDOW]
                    journal.may_hand_over([waiting.email_id for waiting in window])
                journal.handing_over(item.email_id)
                refused = smtp.envelope(job.address, item.envelope_to)
                delivery = smtp.data(raw, refused)
            except SmtpError as exc:
                _count(result, _record_failure([item], exc, policy))
                log.error("%s: email %s not sent: %s", job.address, item.email_id, exc)
                unreachable = _unreachable(smtp, exc)
                if unreachable is not None:
                    # No connection to be had: stop here and fail the rest alike, now.
                    _count(result, _record_failure(items[index + 1 :], unreachable, policy))
                    result.error, result.cause = str(unreachable), unreachable
                    break
                continue
            done = Delivered(item.email_id, delivery.reply, delivery.refused)
            journal.delivered(done)
            delivered.append((done, item))
            result.sent += 1
            if len(delivered) >= COPY_CHUNK:
                copier.record_and_copy(delivered, policy)
                delivered = []
            if delivery.refused:
                log.warning(
                    "%s: email %s: refused %s", job.address, item.email_id, delivery.refused
                )
    finally:
        messages.close()
        # Also when something unexpected stops the batch: what the server took is recorded.
        copier.record_and_copy(delivered, policy)
    log.info("%s: %d of %d emails sent", job.address, result.sent, len(items))
    return result


def _record_failure(
    items: Sequence[SendItem], error: SmtpError, policy: RetryPolicy
) -> dict[str, int]:
    attempts = [(item.email_id, item.attempts + 1) for item in items]
    with get_engine().connect() as connection:
        return record_failure(connection, attempts, error, policy, utcnow())


def _copy_item(item: SendItem) -> CopyItem:
    return CopyItem(item.email_id, item.message_id, item.raw_key, item.bcc)


def _unreachable(smtp: SmtpSession, error: SmtpError) -> SmtpError | None:
    """After a failure that broke the connection: the error if the server cannot be reached."""
    if smtp.is_open or not isinstance(error, SmtpTemporaryError | SmtpPermanentError):
        return None
    try:
        smtp.connection()
    except SmtpError as again:
        return again
    return None


class ReadAhead:
    """The batch's message bytes, read a few emails ahead of the sender in a thread of
    their own: reading a file leaves the SMTP loop's critical path, and at most
    ``DEPTH`` messages wait in memory (a message may carry attachments of MaxFileSize)."""

    DEPTH = 4

    def __init__(self, store: FileStore, items: Sequence[SendItem]) -> None:
        self._store = store
        self._items = iter(items)
        self._reads: deque[Future[bytes]] = deque()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="outbox-read")
        for _ in range(self.DEPTH):
            self._read_one_more()

    def next(self) -> bytes:
        """The next item's bytes (raises SmtpPermanentError as ``_raw`` does)."""
        read = self._reads.popleft()
        self._read_one_more()
        return read.result()

    def close(self) -> None:
        self._reader.shutdown(cancel_futures=True)

    def _read_one_more(self) -> None:
        item = next(self._items, None)
        if item is not None:
            self._reads.append(self._reader.submit(_raw, self._store, item))


def _raw(store: FileStore, item: SendItem) -> bytes:
    if not item.raw_key:
        raise SmtpPermanentError(
            "the email was queued without its message bytes; queue it with `inboxflow send`"
        )
    try:
        return store.get(item.raw_key)
    except OSError as exc:
        raise SmtpPermanentError(
            f"the message file is missing from the file store ({exc})"
        ) from exc


def _count(result: BatchResult, states: dict[str, int]) -> None:
    result.retrying += states.get(OutboxState.queued, 0)
    result.failed += states.get(OutboxState.error, 0)
    result.unconfirmed += states.get(OutboxState.unconfirmed, 0)


class SentCopier:
    """Appends sent emails to the mailbox's Sent folder from a background thread.

    One IMAP connection, opened on first need. A copy that cannot be made stays
    pending (``sent_copy_pending``) for the next run and never blocks sending.
    """

    def __init__(
        self,
        job: SenderJob,
        store: FileStore,
        log: Log,
        bind: BindFn | None,
        report: SendReport,
    ) -> None:
        self.job = job
        self.store = store
        self.log = log
        self.bind = bind
        self.report = report
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"sent-copy-{job.address}")
        self._futures: list[Future[None]] = []
        self._client: imapclient.IMAPClient | None = None
        self._folder: str | None = None
        self._broken: str | None = None
        self._unbound: list[uuid.UUID] = []

    def __enter__(self) -> "SentCopier":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def submit(self, items: list[CopyItem], look_first: bool = False) -> None:
        self._futures.append(self._executor.submit(self._copy, items, look_first))

    def record_and_copy(
        self, delivered: list[tuple[Delivered, SendItem]], policy: RetryPolicy
    ) -> None:
        """Record what the server took "completed", then copy and bind it, in this thread."""
        if delivered:
            work = self._executor.submit(self._record_and_copy, list(delivered), policy)
            self._futures.append(work)

    def look_up(self, message_ids: list[str]) -> tuple[set[str], str]:
        """Which Message-IDs the Sent folder holds; also says why when it could not look."""
        try:
            return self._executor.submit(self._look_up, message_ids).result(), "not in Sent"
        except (InboxflowError, IMAPClientError, OSError) as exc:
            return set(), f"the Sent folder could not be searched: {exc}"

    def close(self) -> None:
        for future in self._futures:
            future.result()
        self._executor.submit(self._bind).result()
        self._executor.submit(self._logout).result()
        self._executor.shutdown()

    # In the copier's thread -------------------------------------------------------------

    def _imap(self) -> tuple[imapclient.IMAPClient, str]:
        if self._client is None:
            self._client = connect(self.job.imap_settings())
            self._folder = sent_folder(self._client)
        assert self._folder is not None
        return self._client, self._folder

    def _look_up(self, message_ids: list[str]) -> set[str]:
        client, folder = self._imap()
        return find_by_message_id(client, folder, message_ids)

    def _record_and_copy(
        self, delivered: list[tuple[Delivered, SendItem]], policy: RetryPolicy
    ) -> None:
        try:
            with get_engine().connect() as connection:
                done = [(delivery, item.attempts + 1) for delivery, item in delivered]
                to_copy = set(record_delivered(connection, done, utcnow(), policy))
        except SQLAlchemyError as exc:
            # They stay "sending"; the journal knows the server took them: the next run
            # records them and makes their copies.
            error = f"{len(delivered)} sent email(s) could not be recorded yet: {exc}"
            self.report.error = self.report.error or error
            self.log.error("%s: %s", self.job.address, error)
            return
        copies = [_copy_item(item) for _, item in delivered if item.email_id in to_copy]
        if copies:
            self._copy(copies, look_first=False)

    def _copy(self, items: list[CopyItem], look_first: bool) -> None:
        ids = [item.email_id for item in items]
        if self.job.files_sent_mail:
            with get_engine().connect() as connection:
                record_filed_by_provider(connection, ids, utcnow())
        elif self._broken is None:
            try:
                self._append(items, look_first)
            except Exception as exc:  # a copy problem must never fail an email that was sent
                cause = str(exc) if isinstance(exc, InboxflowError | OSError) else repr(exc)
                self._broken = cause
                self.report.sent_copy_error = f"Sent copy not made ({cause}); next run retries"
                self.log.warning("%s: %s", self.job.address, self.report.sent_copy_error)
        if self._broken is not None:
            # Once IMAP failed, the rest of this run's copies wait for the next run too.
            with get_engine().connect() as connection:
                record_sent_copy_error(connection, ids, self._broken)
        self._unbound.extend(ids)
        if len(self._unbound) >= BIND_CHUNK:
            self._bind()

    def _bind(self) -> None:
        ids, self._unbound = self._unbound, []
        if self.bind is None or not ids:
            return
        try:
            self.bind(ids)
        except Exception as exc:  # binding must never undo or block a send
            self.log.error("%s: binding rules on sent emails failed: %s", self.job.address, exc)

    def _append(self, items: list[CopyItem], look_first: bool) -> None:
        client, folder = self._imap()
        present = (
            find_by_message_id(client, folder, [i.message_id for i in items])
            if look_first
            else set()
        )
        missing = [item for item in items if item.message_id not in present]
        raws = [with_bcc(self.store.get(item.raw_key or ""), item.bcc) for item in missing]
        appended = append_copies(client, folder, raws)
        now = utcnow()
        with get_engine().connect() as connection:
            record_sent_copies(
                connection,
                [item.email_id for item in missing],
                folder,
                appended.uidvalidity,
                appended.uids,
                now,
            )
            already = [item.email_id for item in items if item.message_id in present]
            record_sent_copies(connection, already, folder, None, [None] * len(already), now)
        self.report.sent_copies += len(items)

    def _logout(self) -> None:
        if self._client is None:
            return
        try:
            self._client.logout()
        except (IMAPClientError, OSError):
            self._client.shutdown()
        self._client = None


# Binding rules on outgoing emails (SPEC 4.3: rules apply to incoming and outgoing emails).


class OutgoingBinder:
    """Runs sent emails through the binding rules (SPEC 4.3: rules apply to outgoing mail too).

    The rules load on first use, in the Sent-copy thread, so loading them (imports,
    RE2 compilation) overlaps the sending instead of delaying its start. A rule
    problem is logged; rules that cannot load at all leave the emails for the
    initial-processing flow, which picks up every unprocessed email.
    """

    def __init__(self, log: Log) -> None:
        self.log = log
        self._book: Any = None
        self._unusable = False

    def __call__(self, email_ids: list[uuid.UUID]) -> None:
        book = self._rules()
        if book is not None:
            bind_outgoing(email_ids, book)

    def _rules(self) -> Any:
        if self._book is None and not self._unusable:
            from tasks.rules import load_rules

            try:
                self._book = load_rules()
            except InboxflowError as exc:
                self._unusable = True
                self.log.warning("binding rules not applied to sent emails: %s", exc)
                return None
            for problem in self._book.problems:
                self.log.error("binding rule skipped: %s", problem)
        return self._book


def bind_outgoing(email_ids: list[uuid.UUID], book: Any) -> None:
    """THE call site of initial processing for sent emails: its batch entry point, which
    applies the binding rules (and matching, threading) to these emails and commits."""
    from tasks.processing import process_emails

    with Session(get_engine()) as session:
        process_emails(session, email_ids, book)
        session.commit()
