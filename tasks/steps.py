"""The actions of email processes: what each step of a processes/*.yaml file does (SPEC 6).

A run works in one database transaction (``ProcessRun``): every step reads and
writes through it, and the run commits only when the last step is done. A step
that fails rolls the whole run back, so a failed run leaves no half-made lead and
no queued reply behind, and running it again starts from a clean state. A dry run
does every step the same way and rolls back at the end.

Inputs are rendered in Jinja2's sandbox: a value that is one expression
(``"{{ lead.id }}"``) keeps its type (a UUID, a bool, None); any other text is
rendered as text. A misspelt field is an error, never a silent blank.
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jinja2
from sqlalchemy import or_, select
from sqlmodel import Session

from models import Account, AccountEmail, Contact, ContactEmail, Email, Mailbox
from models.records import LINKED_TYPES, RECORD_TYPES
from tasks.errors import InboxflowError
from tasks.outbox import OutgoingEmail, queue_email
from tasks.process_spec import EXPRESSIONS, Process, ProcessError, Step, condition_template
from tasks.processing import CONNECTION_FIELDS, fill_thread_links
from tasks.records import (
    LINKABLE,
    account_by_domain,
    find_record_or_none,
    mark_processed,
    next_number,
    record_label,
    refresh_needs_processing,
)
from tasks.rules import connection_field, is_text_type
from tasks.sync import file_store

ONE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expression>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)
EMAIL_FIELDS = (
    "id", "folder", "message_id", "thread_id", "direction", "from_name", "from_address",
    "to", "cc", "subject", "body_text", "body_html", "sent_at", "received_at", "auto_kind",
    "needs_processing", "contact_id", "account_id", "lead_id", "case_id", "opportunity_id",
    "invoice_id", "order_id", "contract_id",
)  # fmt: skip


class StepError(ProcessError):
    """A step cannot do what the process file asks (bad input, missing record, ...)."""


@dataclass
class StepOutcome:
    """What a step did: its outputs (for later steps) and one line for people."""

    step: str
    summary: str
    output: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False
    # A `stop` step: the run ends here, completed, with the summary as its reason.
    stops: bool = False


@dataclass
class ProcessRun:
    """One run of a process on one email: the transaction and what the steps made."""

    session: Session
    email: Email
    process: Process
    dry_run: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        return {"email": self.email_values(), "process": self.process.key, **self.outputs}

    def email_values(self) -> dict[str, Any]:
        values = {name: getattr(self.email, name) for name in EMAIL_FIELDS}
        values["body"] = self.email.body_text
        mailbox = self.session.get(Mailbox, self.email.mailbox_id)
        values["mailbox"] = mailbox.address if mailbox else ""
        return values


def open_email(session: Session, record_id: uuid.UUID | str) -> Email:
    """The email a run is about, locked for the run (PostgreSQL) so two runs take turns."""
    try:
        key = record_id if isinstance(record_id, uuid.UUID) else uuid.UUID(str(record_id))
    except ValueError as exc:
        raise ProcessError(f"RecordId {record_id!r} is not an email id (a UUID)") from exc
    email = session.scalar(select(Email).where(Email.id == key).with_for_update())
    if email is None:
        raise ProcessError(f"email {key} not found")
    return email


def run_step(run: ProcessRun, step: Step) -> StepOutcome:
    """Do one step; raises StepError (or another InboxflowError) with the reason."""
    context = run.context()
    if step.condition is not None and not evaluate_condition(step.condition, context):
        return StepOutcome(step.name, f"skipped: condition {step.condition!r} is false", {}, True)
    inputs = render(step.inputs, context)
    outcome = ACTION_RUNNERS[step.uses](run, inputs)
    outcome.step = step.name
    if step.id:
        run.outputs[step.id] = outcome.output
    run.session.flush()
    return outcome


# Expressions ---------------------------------------------------------------------------------


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every expression in a value (strings, and inside mappings and lists)."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            single = ONE_EXPRESSION.match(value)
            if single:
                return _expression(single.group("expression"))(**context)
            return _template(value).render(context)
        except jinja2.UndefinedError as exc:
            raise StepError(f"{value!r}: {exc.message}") from exc
        except jinja2.TemplateError as exc:
            raise StepError(f"{value!r}: {exc}") from exc
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value


def evaluate_condition(condition: str, context: dict[str, Any]) -> bool:
    source = condition_template(condition)
    single = ONE_EXPRESSION.match(source)
    try:
        if single:
            return bool(_expression(single.group("expression"))(**context))
        text = _template(source).render(context).strip().lower()
    except jinja2.UndefinedError as exc:
        raise StepError(f"if {condition!r}: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        raise StepError(f"if {condition!r}: {exc}") from exc
    return text not in ("", "false", "none", "0", "no")


@cache
def _expression(source: str) -> Any:
    return EXPRESSIONS.compile_expression(source, undefined_to_none=False)


@cache
def _template(source: str) -> jinja2.Template:
    return EXPRESSIONS.from_string(source)


# Values ------------------------------------------------------------------------------------


def record_id(value: Any, what: str) -> uuid.UUID | None:
    """A record id from an input: a UUID, its text, or nothing."""
    if value in (None, ""):
        return None
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value).strip())
    except ValueError as exc:
        raise StepError(f"{what}: {value!r} is not a record id") from exc


def column_values(record_type: str, values: dict[str, Any]) -> dict[str, Any]:
    """Input names → columns (contact → contact_id), values converted to the column's type."""
    table = LINKED_TYPES[record_type].__table__  # type: ignore[attr-defined]
    converted: dict[str, Any] = {}
    for name, value in values.items():
        column = name if name in table.columns else f"{name}_id"
        if column not in table.columns or column in ("id", "created_at"):
            raise StepError(f"{record_type} has no column {name!r}")
        if column.endswith("_id"):
            converted[column] = record_id(value, name)
        else:
            converted[column] = _typed(table.columns[column], name, value)
    return converted


def _typed(column: Any, name: str, value: Any) -> Any:
    """A value for a text, number or flag column; text stays text whatever it looks like."""
    if value is None or is_text_type(column.type):
        return value if value is None else str(value)
    try:
        python_type = column.type.python_type
        return python_type(value)
    except (NotImplementedError, TypeError, ValueError) as exc:
        raise StepError(f"{name}: {value!r} does not fit the column {column.name}") from exc


def record_output(record_type: str, record: Any, created: bool) -> dict[str, Any]:
    """A record as later steps see it: {{ lead.id }}, {{ lead.created }}, {{ case.number }}."""
    table = LINKED_TYPES[record_type].__table__  # type: ignore[attr-defined]
    output = {column.name: getattr(record, column.name) for column in table.columns}
    output.update(object=record_type, created=created, label=record_label(record_type, record))
    return output


def _existing(session: Session, record_type: str, key: uuid.UUID | None, what: str) -> Any:
    if key is None:
        return None
    record = session.get(LINKED_TYPES[record_type], key)
    if record is None:
        raise StepError(f"{what}: there is no {record_type} {key}")
    return record


def _check_references(session: Session, record_type: str, values: dict[str, Any]) -> None:
    """Every *_id value names an existing record (a clear error instead of a broken link)."""
    table = LINKED_TYPES[record_type].__table__  # type: ignore[attr-defined]
    for column, value in values.items():
        if column.endswith("_id") and value is not None:
            target = next(iter(table.columns[column].foreign_keys)).column.table.name
            referenced = next(name for name, m in LINKED_TYPES.items() if m.__tablename__ == target)  # type: ignore[attr-defined]
            _existing(session, referenced, value, column.removesuffix("_id"))


# Actions -----------------------------------------------------------------------------------


def contact_find_or_create(run: ProcessRun, inputs: dict[str, Any]) -> StepOutcome:
    address = str(inputs.get("email") or "").strip().lower()
    if address.count("@") != 1:
        raise StepError(f"email: {address!r} is not an email address")
    contact = find_record_or_none(run.session, "Contact", address)
    created = contact is None
    if contact is None:
        account_id = record_id(inputs.get("account"), "account")
        _existing(run.session, "Account", account_id, "account")
        name = str(inputs.get("name") or "").strip() or address.partition("@")[0]
        contact = Contact(
            name=name, account_id=account_id or account_by_domain(run.session, _domain(address))
        )
        contact.emails.append(ContactEmail(address=address))
        run.session.add(contact)
        run.session.flush()
    output = record_output("Contact", contact, created) | {"email": address}
    verb = "created" if created else "found"
    return StepOutcome("", f"{verb} contact {contact.name} <{address}>", output)


def account_find_or_create(run: ProcessRun, inputs: dict[str, Any]) -> StepOutcome:
    address = str(inputs.get("email") or "").strip().lower()
    domain = str(inputs.get("domain") or "").strip().lower().lstrip("@") or None
    name = str(inputs.get("name") or "").strip()
    account = None
    if address:
        account = find_record_or_none(run.session, "Account", address)
    if account is None and domain:
        account = run.session.scalar(select(Account).where(Account.domain == domain).limit(1))
    if account is None and name:
        account = find_record_or_none(run.session, "Account", name)
    created = account is None
    if account is None:
        account = Account(name=name or domain or _domain(address), domain=domain)
        if address:
            account.emails.append(AccountEmail(address=address))
        run.session.add(account)
        run.session.flush()
    verb = "created" if created else "found"
    return StepOutcome(
        "", f"{verb} account {account.name}", record_output("Account", account, created)
    )


def record_create(run: ProcessRun, inputs: dict[str, Any]) -> StepOutcome:
    record_type = inputs["object"]
    column = connection_field(record_type)
    if inputs.get("reuse_linked", True):
        linked = getattr(run.email, column) or _thread_link(run, column)
        if linked is not None:
            record = run.session.get(RECORD_TYPES[record_type], linked)
            if record is not None:
                label = record_label(record_type, record)
                output = record_output(record_type, record, False)
                return StepOutcome("", f"{label} is already linked to the email: reused", output)
    values = column_values(record_type, inputs.get("values") or {})
    _check_references(run.session, record_type, values)
    if "number" in RECORD_TYPES[record_type].__table__.columns and not values.get("number"):  # type: ignore[attr-defined]
        values["number"] = next_number(run.session, record_type)
    record = RECORD_TYPES[record_type](**values)
    run.session.add(record)
    run.session.flush()
    # Linked as a process links: automatic, so "needs processing" follows SPEC 4.5.
    setattr(run.email, column, record.id)
    refresh_needs_processing(run.email)
    _share_with_thread(run, {column: record.id})
    label = record_label(record_type, record)
    return StepOutcome("", f"created {label}", record_output(record_type, record, True))


def _share_with_thread(run: ProcessRun, links: dict[str, Any]) -> None:
    """The other emails of the thread that have no such link get it (a reply answered
    before the case was registered shows the case too)."""
    if run.email.thread_id is not None:
        fill_thread_links(run.session, {run.email.thread_id: links}, {run.email.id})


def _thread_link(run: ProcessRun, column: str) -> uuid.UUID | None:
    """The record of this type another email of the thread is linked to, if any."""
    email = run.email
    if email.thread_id is None:
        return None
    field_ = getattr(Email, column)
    return run.session.scalar(
        select(field_)
        .where(or_(Email.thread_id == email.thread_id, Email.id == email.thread_id))
        .where(field_.is_not(None))
        .order_by(Email.created_at)
        .limit(1)
    )


def record_update(run: ProcessRun, inputs: dict[str, Any]) -> StepOutcome:
    record_type = inputs["object"]
    record = _existing(run.session, record_type, record_id(inputs.get("id"), "id"), "id")
    if record is None:
        raise StepError("id: give the id of the record to update, e.g. '{{ lead.id }}'")
    values = column_values(record_type, inputs.get("values") or {})
    _check_references(run.session, record_type, values)
    for column, value in values.items():
        setattr(record, column, value)
    run.session.flush()
    changed = ", ".join(f"{k}={v}" for k, v in values.items())
    label = record_label(record_type, record)
    return StepOutcome("", f"updated {label}: {changed}", record_output(record_type, record, False))


def record_find(run: ProcessRun, inputs: dict[str, Any]) -> StepOutcome:
    record_type = inputs["object"]
    model: Any = LINKED_TYPES[record_type]
    where = dict(inputs.get("where") or {})
    query = select(model)
    address = where.pop("email", None) if record_type in ("Contact", "Account") else None
    if address is not None:
        table: Any = ContactEmail if record_type == "Contact" else AccountEmail
        owner = table.contact_id if record_type == "Contact" else table.account_id
        query = query.join(table, owner == model.id).where(table.address == str(address).lower())
    for column, value in column_values(record_type, where).items():
        query = query.where(getattr(model, column) == value)
    found = run.session.scalars(query.limit(2)).all()
    if len(found) > 1:
        raise StepError(f"several {record_type} records match {inputs.get('where')}: be more exact")
    if not found:
        if inputs.get("required"):
            raise StepError(f"no {record_type} matches {inputs.get('where')}")
        output = {"found": False, "id": None, "object": record_type, "created": False}
        return StepOutcome("", f"no {record_type} matches {inputs.get('where')}", output)
    record = found[0]
    output = record_output(record_type, record, False) | {"found": True}
    return StepOutcome("", f"found {record_label(record_type, record)}", output)


def email_link(run: ProcessRun, inputs: dict[str, Any]) -> StepOutcome:
    linked, columns = [], []
    for option, value in inputs.items():
        key = record_id(value, option)
        if key is None:
            continue
        record_type, column = LINKABLE[option]
        record = _existing(run.session, record_type, key, option)
        setattr(run.email, column, record.id)
        linked.append(record_label(record_type, record))
        columns.append(column)
        if record_type == "Contact" and run.email.account_id is None and record.account_id:
            run.email.account_id = record.account_id
    refresh_needs_processing(run.email)
    run.session.flush()
    _share_with_thread(run, {c: getattr(run.email, c) for c in columns if c in CONNECTION_FIELDS})
    summary = "linked the email to " + ", ".join(linked) if linked else "nothing to link"
    output = {"linked": linked, "needs_processing": run.email.needs_processing}
    return StepOutcome("", summary, output)


def email_mark_processed(run: ProcessRun, inputs: dict[str, Any]) -> StepOutcome:
    thread = bool(inputs.get("thread"))
    count = mark_processed(run.session, str(run.email.id), thread=thread)
    run.session.refresh(run.email)
    return StepOutcome("", f"marked {count} email(s) processed", {"count": count})


def email_send(run: ProcessRun, inputs: dict[str, Any]) -> StepOutcome:
    return _queue(run, inputs, reply=False)


def email_reply(run: ProcessRun, inputs: dict[str, Any]) -> StepOutcome:
    return _queue(run, inputs, reply=True)


def _queue(run: ProcessRun, inputs: dict[str, Any], *, reply: bool) -> StepOutcome:
    mailbox = inputs.get("mailbox") or run.email_values()["mailbox"]
    outgoing = OutgoingEmail(
        mailbox=str(mailbox),
        to=_recipients(inputs.get("to")),
        cc=_recipients(inputs.get("cc")),
        bcc=_recipients(inputs.get("bcc")),
        subject=inputs.get("subject"),
        body_text=inputs.get("body"),
        template=inputs.get("template"),
        source=inputs.get("source"),
        reply_to_email_id=run.email.id if reply else None,
    )
    try:
        # sender None: an automatic process, so the mail says Auto-Submitted: auto-generated.
        queued = queue_email(run.session, outgoing, None, store=file_store())
    except InboxflowError as exc:
        raise StepError(str(exc)) from exc
    if reply:
        # A reply is about what the email is about: same contact, account and records.
        for column in ("contact_id", "account_id", *CONNECTION_FIELDS):
            setattr(queued, column, getattr(run.email, column))
        refresh_needs_processing(queued)
    what = "reply" if reply else "email"
    summary = f"queued {what} {queued.subject!r} to {queued.to or queued.cc or queued.bcc}"
    output = {"id": queued.id, "message_id": queued.message_id, "subject": queued.subject}
    return StepOutcome("", summary, output)


def _recipients(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(item) for item in value if item]


def set_values(run: ProcessRun, inputs: dict[str, Any]) -> StepOutcome:
    shown = ", ".join(f"{key}={value!r}" for key, value in inputs.items())
    return StepOutcome("", f"set {shown}", dict(inputs))


def stop(run: ProcessRun, inputs: dict[str, Any]) -> StepOutcome:
    reason = str(inputs.get("reason") or "").strip() or "no reason given"
    return StepOutcome("", reason, {"reason": reason}, stops=True)


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


ACTION_RUNNERS: dict[str, Callable[[ProcessRun, dict[str, Any]], StepOutcome]] = {
    "contact.find_or_create": contact_find_or_create,
    "account.find_or_create": account_find_or_create,
    "record.create": record_create,
    "record.update": record_update,
    "record.find": record_find,
    "email.link": email_link,
    "email.mark_processed": email_mark_processed,
    "email.send": email_send,
    "email.reply": email_reply,
    "set": set_values,
    "stop": stop,
}
