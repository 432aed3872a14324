"""Prefect tasks of the outbound sending: one task per mailbox, one per batch of emails.

Per mailbox, under a lock of its own (one sender per mailbox at a time, so an
email in "sending" found under the lock belongs to a run that died):

1. settle what a dead run left in "sending" (Sent folder lookup, else unconfirmed);
2. send the due emails over one SMTP connection, each claimed ("sending") in a
   committed transaction before its DATA and completed right after the 250;
3. meanwhile, in a background thread, append the sent copies to the Sent folder
   and run the outgoing emails through the binding rules — IMAP and SQL overlap
   the SMTP round trips instead of adding to them.
"""

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from logging import Logger, LoggerAdapter
from typing import Any, TypeVar

import imapclient
from imapclient.exceptions import IMAPClientError
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Connection, or_, select
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
from tasks.imap import ImapSettings, connect
from tasks.locking import mailbox_lock
from tasks.outbox import (
    CopyItem,
    Done,
    RetryPolicy,
    SendItem,
    claim,
    due_items,
    interrupted,
    pending_sent_copies,
    record_done,
    record_failure,
    record_filed_by_provider,
    record_sent_copies,
    record_sent_copy_error,
    settle_interrupted,
)
from tasks.sent_copy import append_copies, find_by_message_id, sent_folder, with_bcc
from tasks.smtp import SmtpSession, SmtpSettings
from tasks.sync import file_store

BATCH_SIZE = 500
# Sent emails go to the Sent-copy thread in chunks this small, so little is left to
# copy when the last email is sent.
COPY_CHUNK = 100
# Namespace of the senders' lock keys (see sender_lock).
_SENDER_LOCK = uuid.UUID("6b1f3c52-5a0e-4c1e-9d0a-0f4b3c7e2a11")

Log = Logger | LoggerAdapter[Logger]
T = TypeVar("T")
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
    sent_copies: int = 0
    sent_copy_error: str | None = None
    skipped: str | None = None
    error: str | None = None
    # Wall time of the SMTP phase (first claim to last record), for the summary and benchmarks.
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
    work = select(OutboxEntry.mailbox_id).where(
        or_(
            (OutboxEntry.state == OutboxState.queued)
            & or_(OutboxEntry.next_attempt_at.is_(None), OutboxEntry.next_attempt_at <= now),
            OutboxEntry.state == OutboxState.sending,
            OutboxEntry.sent_copy_pending.is_(True),
        )
    )
    if email_ids is not None:
        work = work.where(OutboxEntry.email_id.in_(email_ids))
    query = (
        select(Mailbox, EmailProvider)
        .join(EmailProvider, EmailProvider.id == Mailbox.provider_id)
        .where(Mailbox.id.in_(work.distinct()))
        .order_by(Mailbox.address)
    )
    if address:
        query = query.where(Mailbox.address == address.strip().lower())
    with Session(get_engine()) as session:
        rows = session.execute(query).all()
    return [
        SenderJob(
            mailbox_id=mailbox.id,
            address=mailbox.address,
            login=mailbox.login,
            credential_ref=mailbox.credential_ref,
            auth=str(provider.auth),
            tls_insecure=mailbox.tls_insecure,
            smtp_host=provider.smtp_host,
            smtp_port=provider.smtp_port,
            smtp_security=str(provider.smtp_security),
            smtp_timeout=provider.smtp_timeout,
            imap_host=provider.imap_host,
            imap_port=provider.imap_port,
            imap_security=str(provider.imap_security),
            sending_enabled=mailbox.sending_enabled,
            files_sent_mail=provider.files_sent_mail,
        )
        for mailbox, provider in rows
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
            with SentCopier(job, store, log, binder, report) as copier:
                settle_dead_run(job, copier, log, report)
                send_due(job, email_ids, policy, store, copier, report)
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


def settle_dead_run(job: SenderJob, copier: "SentCopier", log: Log, report: SendReport) -> None:
    """Emails a dead run left in "sending": completed if the Sent folder has them, else
    unconfirmed for a person; and Sent copies it did not make yet go to the copier."""
    with get_engine().connect() as connection:
        stuck = interrupted(connection, job.mailbox_id)
        copies = pending_sent_copies(connection, job.mailbox_id)
    if stuck:
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
    if copies:
        # Copies from an earlier run may have been appended just before it died: look first.
        copier.submit(copies, look_first=True)


def send_due(
    job: SenderJob,
    email_ids: list[uuid.UUID] | None,
    policy: RetryPolicy,
    store: FileStore,
    copier: "SentCopier",
    report: SendReport,
) -> None:
    """Send every due email of the mailbox over one SMTP connection, in batches."""
    with get_engine().connect() as connection:
        due = [item.email_id for item in due_items(connection, job.mailbox_id, utcnow(), email_ids)]
    if not due:
        return
    started = time.perf_counter()
    with SmtpSession(job.smtp_settings()) as smtp:
        for start in range(0, len(due), BATCH_SIZE):
            batch = send_batch(job, due[start : start + BATCH_SIZE], smtp, policy, store, copier)
            for name in ("sent", "retrying", "failed", "unconfirmed"):
                setattr(report, name, getattr(report, name) + getattr(batch, name))
            if batch.error:
                # The server is unreachable: the rest of the queue fails the same way, now.
                rest = due[start + BATCH_SIZE :]
                report.error = batch.error
                if rest and batch.cause is not None:
                    report.count(_fail_all(job, rest, batch.cause, policy))
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
    email_ids: list[uuid.UUID],
    smtp: SmtpSession,
    policy: RetryPolicy,
    store: FileStore,
    copier: "SentCopier",
) -> BatchResult:
    """Claim, send and record each email of the batch; hand the sent ones to the copier.

    Per email: the claim commits (with the previous email's "completed") while MAIL
    and RCPT go over the wire; DATA waits until the claim is on disk.
    """
    log = get_run_logger()
    result = BatchResult()
    sent: list[SendItem] = []
    done: Done | None = None
    with Ledger() as ledger:
        items = ledger.call(due_items, job.mailbox_id, utcnow(), email_ids).result()
        for index, item in enumerate(items):
            claim_future = ledger.call(claim, item, done, utcnow())
            done = None
            try:
                raw = _raw(store, item)
                refused = smtp.envelope(job.address, item.envelope_to)
                if not claim_future.result():  # another hand moved it: leave it alone
                    smtp.abandon()
                    continue
                delivery = smtp.data(raw, refused)
            except SmtpError as exc:
                if not claim_future.result():
                    continue
                attempt = [(item.email_id, item.attempts + 1)]
                _count(result, ledger.call(record_failure, attempt, exc, policy, utcnow()).result())
                log.error("%s: email %s not sent: %s", job.address, item.email_id, exc)
                unreachable = _unreachable(smtp, exc)
                if unreachable is not None:
                    # No connection to be had: stop here and fail the rest alike, now.
                    rest = [i.email_id for i in items[index + 1 :]]
                    if rest:
                        _count(result, _fail_all(job, rest, unreachable, policy))
                    result.error, result.cause = str(unreachable), unreachable
                    break
                continue
            done = Done(item.email_id, delivery.reply, delivery.refused)
            sent.append(item)
            result.sent += 1
            if len(sent) > COPY_CHUNK:
                # All but the last are recorded "completed" by now: copy and bind them.
                copier.submit([_copy_item(i) for i in sent[:-1]])
                sent = sent[-1:]
            if delivery.refused:
                log.warning(
                    "%s: email %s: refused %s", job.address, item.email_id, delivery.refused
                )
        if done is not None:
            ledger.call(record_done, done, utcnow()).result()
    if sent:
        copier.submit([_copy_item(i) for i in sent])
    log.info("%s: %d of %d emails sent", job.address, result.sent, len(items))
    return result


class Ledger:
    """A batch's database writes, in order, on a connection and a thread of their own.

    So a commit overlaps the SMTP round trips instead of adding to them; the caller
    still waits for each result where the order of events needs it.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="outbox-ledger")
        self._connection: Connection | None = None

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *_: object) -> None:
        self._executor.submit(self._close).result()
        self._executor.shutdown()

    def call(self, function: Callable[..., T], *args: Any) -> "Future[T]":
        """Run ``function(connection, *args)`` on the ledger's thread."""
        return self._executor.submit(lambda: function(self._open(), *args))

    def _open(self) -> Connection:
        if self._connection is None:
            self._connection = get_engine().connect()
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


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


def _fail_all(
    job: SenderJob, email_ids: Sequence[uuid.UUID], error: SmtpError, policy: RetryPolicy
) -> dict[str, int]:
    """Count one failed attempt for each of these queued emails (the server is unreachable)."""
    counts: dict[str, int] = {}
    with get_engine().connect() as connection:
        for start in range(0, len(email_ids), BATCH_SIZE):
            chunk = email_ids[start : start + BATCH_SIZE]
            items = due_items(connection, job.mailbox_id, utcnow(), chunk)
            attempts = [(i.email_id, i.attempts + 1) for i in items]
            for state, n in record_failure(connection, attempts, error, policy, utcnow()).items():
                counts[state] = counts.get(state, 0) + n
    return counts


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

    def __enter__(self) -> "SentCopier":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def submit(self, items: list[CopyItem], look_first: bool = False) -> None:
        self._futures.append(self._executor.submit(self._copy, items, look_first))

    def look_up(self, message_ids: list[str]) -> tuple[set[str], str]:
        """Which Message-IDs the Sent folder holds; also says why when it could not look."""
        try:
            return self._executor.submit(self._look_up, message_ids).result(), "not in Sent"
        except (InboxflowError, IMAPClientError, OSError) as exc:
            return set(), f"the Sent folder could not be searched: {exc}"

    def close(self) -> None:
        for future in self._futures:
            future.result()
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
        if self.bind is not None:
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
