"""Email templates: macros filled from a source record, rendered in Jinja2's sandbox.

A template (EmailTemplate row) has a name, a subject and an HTML body with
macros, and optionally the record type its macros come from (``source_object``:
Contact, Account, Lead, ...). It applies only to a record of that type; a
template without a source applies to any email and gets no record. Macros::

    {{ recipient.name }} {{ recipient.email }}     who the record says the email is for
    {{ sender.name }} {{ sender.email }}           the user sending, and the mailbox
    {{ contact.name }} {{ account.name }} ...      the source record, and the contact and
                                                   account it links to, by type name

The body is HTML and autoescaped (a contact named ``<b>`` stays text); a macro
that does not exist is an error, never a silent blank. The sandbox keeps a
template from reaching Python internals.

Analysts keep templates as files in ``templates/`` (``*.html``: a YAML header
between ``---`` lines, then the body) and load them with ``inboxflow templates
load``; a broken file is reported as ``file:line: reason`` and the others load.
"""

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlmodel import Session, SQLModel

from models import Account, AccountEmail, Contact, ContactEmail, EmailTemplate
from models.db import PROJECT_ROOT
from models.records import LINKED_TYPES
from tasks.analyst_files import FileProblem, display_path
from tasks.errors import OutboxError, TemplateError

DEFAULT_TEMPLATES_DIR = PROJECT_ROOT / "templates"
FRONT_MATTER = "---"

_BODY = SandboxedEnvironment(autoescape=True, undefined=jinja2.StrictUndefined)
_SUBJECT = SandboxedEnvironment(autoescape=False, undefined=jinja2.StrictUndefined)


@dataclass(frozen=True)
class SourceRef:
    """A record that fills a template's macros: ``Contact:6f1c...``."""

    object: str
    id: uuid.UUID

    def __str__(self) -> str:
        return f"{self.object}:{self.id}"


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    # The address the source record gives, when the caller named no recipient.
    recipient_email: str | None
    template_name: str


def parse_source(value: str) -> SourceRef:
    """``Contact:UUID`` → SourceRef; the type is matched case-insensitively."""
    kind, _, ident = value.partition(":")
    names = {name.lower(): name for name in LINKED_TYPES}
    if kind.lower() not in names or not ident:
        raise OutboxError(
            f"source {value!r} must be OBJECT:ID with OBJECT one of {', '.join(LINKED_TYPES)}"
        )
    try:
        return SourceRef(names[kind.lower()], uuid.UUID(ident.strip()))
    except ValueError as exc:
        raise OutboxError(f"source {value!r}: {ident!r} is not a record id (a UUID)") from exc


def find_template(session: Session, name: str) -> EmailTemplate:
    template = session.scalar(select(EmailTemplate).where(EmailTemplate.name == name))
    if template is None:
        raise TemplateError(
            f"no template named {name!r}; load the templates/ folder with "
            "`inboxflow templates load`, or see `inboxflow templates list`"
        )
    return template


def render_template(
    session: Session,
    template: EmailTemplate,
    source: SourceRef | None,
    sender: Mapping[str, str],
) -> Rendered:
    """Subject and HTML body of a template, macros filled from the source record."""
    context: dict[str, Any] = {"sender": dict(sender)}
    recipient: dict[str, str] = {"name": "", "email": ""}
    if template.source_object:
        if source is None:
            raise TemplateError(
                f"template {template.name!r} fills its macros from {template.source_object} "
                f"records: name one with --source {template.source_object}:ID"
            )
        if source.object != template.source_object:
            raise TemplateError(
                f"template {template.name!r} applies to {template.source_object} records, "
                f"not to {source.object} records; choose a template for {source.object}"
            )
        context.update(_record_context(session, source))
        recipient = context.pop("_recipient")
    context["recipient"] = recipient
    subject = _render(_SUBJECT, template.name, "subject", template.subject, context)
    body = _render(_BODY, template.name, "body", template.body, context)
    # Only the ends are trimmed: a line break inside (say from a record's field) is
    # refused later as header injection, never smoothed over.
    return Rendered(subject.strip(), body, recipient["email"] or None, template.name)


def _render(
    env: SandboxedEnvironment, name: str, part: str, source: str, context: dict[str, Any]
) -> str:
    try:
        return env.from_string(source).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template {name!r} {part}, line {exc.lineno}: {exc.message}") from exc
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template {name!r} {part}: {exc.message}") from exc
    except jinja2.TemplateError as exc:  # SecurityError included
        raise TemplateError(f"template {name!r} {part}: {exc}") from exc


def _record_context(session: Session, source: SourceRef) -> dict[str, Any]:
    """The record under its type name, the contact/account it links to, and the recipient."""
    record = session.get(LINKED_TYPES[source.object], source.id)
    if record is None:
        raise TemplateError(f"no {source.object} with id {source.id}")
    context: dict[str, Any] = {source.object.lower(): _values(record)}
    contact = record if isinstance(record, Contact) else None
    account = record if isinstance(record, Account) else None
    contact_id = getattr(record, "contact_id", None)
    if contact is None and contact_id:
        contact = session.get(Contact, contact_id)
    account_id = getattr(record, "account_id", None)
    if account is None and account_id:
        account = session.get(Account, account_id)
    if contact is not None:
        context.setdefault("contact", _values(contact))
    if account is not None:
        context.setdefault("account", _values(account))
    # The email is for the record's contact when it has one, else for its account.
    if contact is not None:
        address = session.scalar(
            select(ContactEmail.address)
            .where(ContactEmail.contact_id == contact.id)
            .order_by(ContactEmail.id)
        )
        context["_recipient"] = {"name": contact.name, "email": address or ""}
    elif account is not None:
        address = session.scalar(
            select(AccountEmail.address)
            .where(AccountEmail.account_id == account.id)
            .order_by(AccountEmail.id)
        )
        context["_recipient"] = {"name": account.name, "email": address or ""}
    else:
        context["_recipient"] = {"name": getattr(record, "name", "") or "", "email": ""}
    return context


def _values(record: SQLModel) -> dict[str, Any]:
    """Plain column values: a template sees data, never the ORM object and its methods."""
    values: dict[str, Any] = {}
    for name, value in record.model_dump().items():
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, datetime | date):
            value = value.isoformat()
        values[name] = value
    return values


# Template files ---------------------------------------------------------------------------


class TemplateHeader(BaseModel):
    """The YAML header of a template file."""

    model_config = ConfigDict(extra="forbid", title="Email template")

    name: str | None = Field(
        default=None,
        min_length=1,
        description="Unique name; the file name without .html if omitted.",
    )
    subject: str = Field(description="Subject line, with macros.")
    source: str | None = Field(
        default=None,
        description=f"Record type the macros come from ({', '.join(LINKED_TYPES)}); "
        "omit for a template that applies to any email.",
    )
    description: str = Field(default="", description="What the template is for (free text).")

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str | None) -> str | None:
        if value is None:
            return None
        names = {name.lower(): name for name in LINKED_TYPES}
        if value.lower() not in names:
            raise ValueError(f"must be one of {', '.join(LINKED_TYPES)}")
        return names[value.lower()]


@dataclass(frozen=True)
class TemplateFile:
    name: str
    subject: str
    body: str
    source: str | None
    file: str


@dataclass
class LoadReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)


def templates_dir(directory: str | Path | None = None) -> Path:
    """The argument, INBOXFLOW_TEMPLATES_DIR, or the project's templates/ folder."""
    return Path(directory or os.environ.get("INBOXFLOW_TEMPLATES_DIR") or DEFAULT_TEMPLATES_DIR)


def load_template_files(session: Session, directory: str | Path | None = None) -> LoadReport:
    """Create or update an EmailTemplate row for every good *.html file; report the rest.

    Rows that have no file are left alone: templates may also be made in the database.
    """
    folder = templates_dir(directory)
    if not folder.is_dir():
        raise OutboxError(f"templates folder {folder} does not exist (set INBOXFLOW_TEMPLATES_DIR)")
    report = LoadReport()
    seen: dict[str, str] = {}
    for path in sorted(p for p in folder.iterdir() if p.suffix == ".html" and p.is_file()):
        parsed = read_template_file(path)
        if isinstance(parsed, FileProblem):
            report.problems.append(parsed)
            continue
        if parsed.name in seen:
            reason = f"template name {parsed.name!r} is already used by {seen[parsed.name]}"
            report.problems.append(FileProblem(parsed.file, 2, reason))
            continue
        seen[parsed.name] = parsed.file
        _upsert(session, parsed, report)
    return report


def _upsert(session: Session, parsed: TemplateFile, report: LoadReport) -> None:
    row = session.scalar(select(EmailTemplate).where(EmailTemplate.name == parsed.name))
    if row is None:
        session.add(
            EmailTemplate(
                name=parsed.name,
                subject=parsed.subject,
                body=parsed.body,
                source_object=parsed.source,
            )
        )
        report.created.append(parsed.name)
        return
    wanted = (parsed.subject, parsed.body, parsed.source)
    if (row.subject, row.body, row.source_object) == wanted:
        report.unchanged.append(parsed.name)
        return
    row.subject, row.body, row.source_object = wanted
    session.add(row)
    report.updated.append(parsed.name)


def read_template_file(path: Path) -> TemplateFile | FileProblem:
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return FileProblem(shown, 1, f"cannot read the file: {exc}")
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != FRONT_MATTER:
        return FileProblem(shown, 1, "must start with a '---' line, then the YAML header")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == FRONT_MATTER), None)
    if end is None:
        return FileProblem(shown, 1, "the YAML header has no closing '---' line")
    try:
        header = yaml.safe_load("".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 2
        return FileProblem(shown, line, f"not valid YAML: {getattr(exc, 'problem', exc)}")
    if not isinstance(header, dict):
        return FileProblem(shown, 2, "the header must be a mapping (name, subject, source)")
    try:
        spec = TemplateHeader.model_validate(header)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else ""
        line = _header_line(lines[1:end], key)
        return FileProblem(shown, line, f"{key or 'header'}: {error['msg']}")
    body = "".join(lines[end + 1 :])
    for part, source, first_line in (
        ("subject", spec.subject, _header_line(lines[1:end], "subject")),
        ("body", body, end + 2),
    ):
        try:
            _BODY.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            line = first_line + (exc.lineno or 1) - 1
            return FileProblem(shown, line, f"{part}: {exc.message}")
    return TemplateFile(spec.name or path.stem, spec.subject, body, spec.source, shown)


def _header_line(header_lines: list[str], key: str) -> int:
    for index, line in enumerate(header_lines):
        if key and line.startswith(f"{key}:"):
            return index + 2
    return 2
