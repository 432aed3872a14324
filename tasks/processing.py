"""Initial processing of a batch of emails (SPEC 4): who, which records, which thread, done?

For each email, in date order: the sender or recipients give Contact and Account
(tasks/matching.py), the binding rules give connection fields (tasks/binding.py),
a reply joins its parent's thread and inherits its connection fields
(tasks/threads.py), the owner is the mailbox's owner, and ``needs_processing`` is
cleared when the email is bound well enough (``needs_processing`` below).

Processing only fills what is empty and only ever clears ``needs_processing``:
what a person linked or marked stays, and running it again changes nothing.
"""

import gc
import json
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Text, bindparam, func, select, type_coerce, update
from sqlmodel import Session

from models import Email, EmailBody, Mailbox, get_engine
from models.base import utcnow
from models.records import RECORD_TYPES
from tasks.binding import find_bindings
from tasks.errors import ConfigError
from tasks.matching import CHUNK, match_parties
from tasks.rules import RuleBook, connection_field
from tasks.threads import (
    ThreadNode,
    choose_parent,
    early_replies,
    find_by_message_id,
    parent_message_ids,
)

# Email columns that link to records: lead_id, case_id, opportunity_id, invoice_id, ...
CONNECTION_FIELDS: tuple[str, ...] = tuple(connection_field(name) for name in RECORD_TYPES)
# Filled automatically, these say nothing about whether a person has dealt with the email.
AUTOMATIC_DOES_NOT_COUNT = frozenset({"contact_id", "account_id", "case_id"})
EMAIL = Email.__table__  # type: ignore[attr-defined]
LOADED = (
    "id",
    "mailbox_id",
    "message_id",
    "in_reply_to",
    "references",
    "from_address",
    "to_addresses",
    "cc_addresses",
    "bcc_addresses",
    "subject",
    "auto_kind",
    "linked_by_user",
)
LAZY_JSON = frozenset({"references", "to_addresses", "cc_addresses", "bcc_addresses"})
LAZY_JSON |= {"linked_by_user"}
# What processing may change on an email (processed_at is set in SQL, once).
WRITTEN = ("contact_id", "account_id", *CONNECTION_FIELDS, "thread_id", "owner_id")
WRITTEN += ("bound_by_rule", "needs_processing")


def needs_processing(
    links: Mapping[str, Any], linked_by_user: Collection[str], bound_by_rule: str | None
) -> bool:
    """SPEC 4.5: does a person still have to look at an email linked like this?

    No when a binding rule bound it, or when Contact or Account is set and at least
    one connection field is filled — Contact, Account and Case count only when a
    person linked them by hand.
    """
    if bound_by_rule:
        return False
    if not (links.get("contact_id") or links.get("account_id")):
        return True
    counted = [
        name
        for name in ("contact_id", "account_id", *CONNECTION_FIELDS)
        if links.get(name) and (name not in AUTOMATIC_DOES_NOT_COUNT or name in linked_by_user)
    ]
    return not counted


@dataclass
class ProcessingReport:
    """What a run did, in numbers."""

    emails: int = 0
    changed: int = 0
    with_contact_or_account: int = 0
    bound_by_rules: int = 0
    in_threads: int = 0
    auto_replies: int = 0
    need_processing: int = 0

    def add(self, other: "ProcessingReport") -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Work:
    """One email of the batch: what is stored and what processing decides."""

    row: dict[str, Any]
    new: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> uuid.UUID:
        return self.row["id"]


def select_email_ids(session: Session, mailbox: str | None, all_emails: bool) -> list[uuid.UUID]:
    """The emails a run looks at, oldest first: new ones (never processed), or all."""
    query = select(Email.id)
    if mailbox:
        mailbox_id = session.scalar(select(Mailbox.id).where(Mailbox.address == mailbox.lower()))
        if mailbox_id is None:
            raise ConfigError(f"no mailbox {mailbox} (see `inboxflow mailbox list`)")
        query = query.where(Email.mailbox_id == mailbox_id)
    if not all_emails:
        query = query.where(Email.processed_at.is_(None))
    # Oldest first: an original is processed before its replies, which then find it.
    moment = func.coalesce(Email.sent_at, Email.received_at, Email.created_at)
    return list(session.scalars(query.order_by(moment, Email.created_at, Email.id)))


def has_unprocessed(session: Session, mailbox: str | None) -> bool:
    query = select(Email.id).where(Email.processed_at.is_(None))
    if mailbox:
        query = query.join(Mailbox, Mailbox.id == Email.mailbox_id).where(
            Mailbox.address == mailbox.lower()
        )
    return session.scalar(query.limit(1)) is not None


@task(name="process-batch", cache_policy=NO_CACHE)
def process_batch(email_ids: list[uuid.UUID], book: RuleBook) -> ProcessingReport:
    """Match, bind, thread and flag one batch of emails; one transaction."""
    with gc_paused(), Session(get_engine()) as session:
        report = process_emails(session, email_ids, book)
        session.commit()
    return report


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch runs.

    A batch makes tens of thousands of short-lived rows and dicts; each allocation
    burst triggers collections that walk Prefect's large heap (measured: a quarter of
    the batch's time). Memory is bounded by the batch; cycles are collected after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def process_emails(
    session: Session, email_ids: Sequence[uuid.UUID], book: RuleBook
) -> ProcessingReport:
    """Initial processing of these emails, written in the session (the caller commits)."""
    work = _load(session, email_ids, with_body=book.uses("body"))
    if not work:
        return ProcessingReport()
    parties = match_parties(
        session, [w.row["from_address"] for w in work], lambda i: _recipients(work[i].row)
    )
    bindings = find_bindings(session, [_texts(w.row) for w in work], book)
    candidates = [
        parent_message_ids(
            w.row["message_id"], w.row["in_reply_to"], _json_list(w.row["references"])
        )
        for w in work
    ]
    # Parents in the batch are known already; only the others are looked up.
    batch_nodes = {
        w.row["message_id"]: [
            ThreadNode(w.id, w.row["mailbox_id"], w.row["thread_id"], _links(w.row))
        ]
        for w in work
    }
    wanted = set()
    for message_ids in candidates:
        for message_id in message_ids:
            if message_id in batch_nodes:
                break
            wanted.add(message_id)
    stored = find_by_message_id(session, wanted, CONNECTION_FIELDS) | batch_nodes
    report = ProcessingReport(emails=len(work))
    in_batch: dict[uuid.UUID, ThreadNode] = {}
    merges: list[_Merge] = []
    for w, party, bound, parents in zip(work, parties, bindings, candidates, strict=True):
        row, new = w.row, dict(w.row)
        if party is not None:
            new["contact_id"] = new["contact_id"] or party.contact_id
            new["account_id"] = new["account_id"] or party.account_id
        rules = [hit.rule for name, hit in bound.items() if new[name] in (None, hit.record_id)]
        for name, hit in bound.items():
            new[name] = new[name] or hit.record_id
        new["bound_by_rule"] = row["bound_by_rule"] or (", ".join(dict.fromkeys(rules)) or None)
        parent = choose_parent(parents, stored, row["mailbox_id"])
        parent = in_batch.get(parent.id, parent) if parent is not None else None
        if parent is not None:
            new["thread_id"] = row["thread_id"] or parent.thread
            for name in CONNECTION_FIELDS:
                new[name] = new[name] or parent.links.get(name)
        else:
            new["thread_id"] = row["thread_id"] or row["id"]
        new["owner_id"] = row["owner_id"] or row["mailbox_owner_id"]
        new["needs_processing"] = row["needs_processing"] and needs_processing(
            new, _json_list(row["linked_by_user"]), new["bound_by_rule"]
        )
        w.new = new
        in_batch[w.id] = ThreadNode(w.id, row["mailbox_id"], new["thread_id"], _links(new))
        if row["is_new"] and new["thread_id"] != w.id:
            # Replies processed before this email pointed at it as their thread: redirect them.
            merges.append(_Merge(w.id, new["thread_id"], _links(new)))
        _count(report, row, new)
    merges.extend(_adopt_early_replies(session, work))
    # Before the merges move them: the old threads' emails are found by their old thread id.
    inherited = fill_thread_links(
        session, {m.old_thread: m.links for m in merges}, {w.id for w in work}
    )
    report.changed = _write(session, work, merges) + inherited
    return report


@dataclass(frozen=True)
class _Merge:
    """A thread processed before its parent arrived joins the parent's thread and links."""

    old_thread: uuid.UUID
    new_thread: uuid.UUID
    links: dict[str, Any]


def _load(session: Session, email_ids: Sequence[uuid.UUID], with_body: bool) -> list[_Work]:
    """The batch's emails, in the order given (select_email_ids sorts them oldest first).

    Core, not ORM, and no datetime columns: loading is a third of the work per email.
    """
    # JSON columns come as text and are parsed only when needed (_json_list).
    columns = [
        type_coerce(EMAIL.c[name], Text).label(name) if name in LAZY_JSON else EMAIL.c[name]
        for name in (*LOADED, *WRITTEN)
    ] + [
        EMAIL.c.processed_at.is_(None).label("is_new"),
        Mailbox.owner_id.label("mailbox_owner_id"),
    ]
    if with_body:
        columns += [EmailBody.text.label("body_text"), EmailBody.html.label("body_html")]
    connection = session.connection()
    found: dict[uuid.UUID, dict[str, Any]] = {}
    ids = list(email_ids)
    for start in range(0, len(ids), CHUNK):
        query = select(*columns).join(Mailbox, Mailbox.id == EMAIL.c.mailbox_id)
        if with_body:
            query = query.outerjoin(EmailBody, EmailBody.email_id == EMAIL.c.id)
        query = query.where(EMAIL.c.id.in_(ids[start : start + CHUNK]))
        found.update((row.id, dict(row._mapping)) for row in connection.execute(query))
    return [_Work(found[i]) for i in ids if i in found]


def _json_list(value: Any) -> list[Any]:
    """A JSON list column read as text (SQLite) or already decoded (psycopg decodes json)."""
    if isinstance(value, str):
        return json.loads(value) if value not in ("", "[]") else []
    return value or []


def _recipients(row: Mapping[str, Any]) -> list[str]:
    return [
        *_json_list(row["to_addresses"]),
        *_json_list(row["cc_addresses"]),
        *_json_list(row["bcc_addresses"]),
    ]


def _links(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: values[name] for name in CONNECTION_FIELDS}


def _texts(row: Mapping[str, Any]) -> dict[str, str]:
    texts = {"subject": row["subject"] or ""}
    if "body_text" in row:
        # An HTML-only email is searched in its HTML (markup and all) rather than not at all.
        texts["body"] = row["body_text"] or row["body_html"] or ""
    return texts


def _adopt_early_replies(session: Session, work: list[_Work]) -> list[_Merge]:
    """Replies stored and processed before the email they answer join its thread now."""
    parents = {w.row["message_id"]: w for w in work}
    batch = {w.id for w in work}
    return [
        _Merge(reply_id, parents[parent].new["thread_id"], _links(parents[parent].new))
        for reply_id, parent in early_replies(session, parents, batch)
        if parents[parent].new["thread_id"] != reply_id
    ]


def fill_thread_links(
    session: Session,
    links_by_thread: Mapping[uuid.UUID, Mapping[str, Any]],
    exclude: Collection[uuid.UUID] = (),
) -> int:
    """The emails of these threads take these links where they have none (SPEC 4.6: a
    thread shares its connection fields), and need processing no more when that binds
    them well enough. Returns how many emails changed; those in ``exclude`` are left out."""
    links_by_thread = {t: links for t, links in links_by_thread.items() if any(links.values())}
    if not links_by_thread:
        return 0
    names = ("contact_id", "account_id", *CONNECTION_FIELDS, "bound_by_rule", "needs_processing")
    columns = [EMAIL.c.id, EMAIL.c.thread_id, EMAIL.c.linked_by_user, *(EMAIL.c[n] for n in names)]
    connection = session.connection()
    changes: list[dict[str, Any]] = []
    threads = list(links_by_thread)
    for start in range(0, len(threads), CHUNK):
        query = select(*columns).where(EMAIL.c.thread_id.in_(threads[start : start + CHUNK]))
        for row in connection.execute(query).mappings():
            if row["id"] in exclude:
                continue
            links = links_by_thread[row["thread_id"]]
            new = {name: row[name] or links.get(name) for name in CONNECTION_FIELDS}
            if all(new[name] == row[name] for name in CONNECTION_FIELDS):
                continue
            new["needs_processing"] = row["needs_processing"] and needs_processing(
                {**row, **new}, _json_list(row["linked_by_user"]), row["bound_by_rule"]
            )
            changes.append({"b_id": row["id"], **{f"b_{n}": v for n, v in new.items()}})
    if changes:
        values = {name: bindparam(f"b_{name}") for name in (*CONNECTION_FIELDS, "needs_processing")}
        connection.execute(
            update(EMAIL).where(EMAIL.c.id == bindparam("b_id")).values(values), changes
        )
    return len(changes)


def _count(report: ProcessingReport, row: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    report.with_contact_or_account += bool(new["contact_id"] or new["account_id"])
    report.bound_by_rules += bool(new["bound_by_rule"])
    report.in_threads += new["thread_id"] != row["id"]
    report.auto_replies += bool(row["auto_kind"])
    report.need_processing += bool(new["needs_processing"])


def _write(session: Session, work: list[_Work], merges: list[_Merge]) -> int:
    """Write what changed; returns how many emails changed.

    Rows are grouped by the set of columns that changed, one executemany per group:
    fewer values to convert and fewer index entries to touch than writing every column.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    now = utcnow()
    for w in work:
        names = tuple(name for name in WRITTEN if w.new[name] != w.row[name])
        if not names and not w.row["is_new"]:
            continue
        params = {f"b_{name}": w.new[name] for name in names}
        params["b_id"] = w.id
        if w.row["is_new"]:
            params["b_now"] = now
        groups.setdefault((*names, "processed_at") if w.row["is_new"] else names, []).append(params)
    connection = session.connection()
    for names, rows in groups.items():
        # Bind names differ from column names (SQLAlchemy reserves those in SET).
        values: dict[str, Any] = {name: bindparam(f"b_{name}") for name in names}
        if "processed_at" in values:
            values["processed_at"] = bindparam("b_now", type_=EMAIL.c.processed_at.type)
        connection.execute(
            update(EMAIL).where(EMAIL.c.id == bindparam("b_id")).values(values), rows
        )
    if merges:
        connection.execute(
            update(EMAIL)
            .where(EMAIL.c.thread_id == bindparam("b_old"))
            .values(thread_id=bindparam("b_new")),
            [{"b_old": m.old_thread, "b_new": m.new_thread} for m in merges],
        )
    return sum(len(rows) for rows in groups.values())
