"""Records and emails by hand: reference data from CSV, manual links, records made from an email.

Everything a person does here counts as a person having looked at the email:
what they link is recorded in ``Email.linked_by_user`` (SPEC 4.5).
"""

import csv
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlmodel import Session, SQLModel

from models import Account, AccountEmail, Case, Contact, ContactEmail, Email, User
from models.emails import Direction
from models.records import LINKED_TYPES, RECORD_TYPES
from tasks.errors import ConfigError
from tasks.processing import needs_processing
from tasks.rules import connection_field

ADDRESS_SEPARATORS = re.compile(r"[;,\s]+")
NUMBERED = ("Case", "Invoice", "Order", "Contract")
# What `emails link` accepts: option name → (record type, Email column).
LINKABLE: dict[str, tuple[str, str]] = {
    "contact": ("Contact", "contact_id"),
    "account": ("Account", "account_id"),
    **{name.lower(): (name, connection_field(name)) for name in RECORD_TYPES},
}
MAX_LISTED_PROBLEMS = 20


class RecordError(ConfigError):
    """A record cannot be found, created or imported as asked."""


# emails ----------------------------------------------------------------------------------


def get_email(session: Session, email_id: str) -> Email:
    try:
        key = uuid.UUID(email_id)
    except ValueError as exc:
        raise RecordError(f"{email_id!r} is not an email id (a UUID from `emails list`)") from exc
    email = session.get(Email, key)
    if email is None:
        raise RecordError(f"email {email_id} not found")
    return email


def refresh_needs_processing(email: Email) -> None:
    """Clear needs_processing when the email is now bound well enough (never sets it again)."""
    links = {name: getattr(email, name) for name in ("contact_id", "account_id")}
    links.update({name: getattr(email, name) for _, name in LINKABLE.values()})
    if email.needs_processing and not needs_processing(
        links, email.linked_by_user, email.bound_by_rule
    ):
        email.needs_processing = False


def _linked_by_hand(email: Email, *names: str) -> None:
    # Assign a new list: the JSON column does not notice changes made in place.
    email.linked_by_user = sorted({*email.linked_by_user, *names})


def link_email(session: Session, email_id: str, links: dict[str, str]) -> tuple[list[str], bool]:
    """Link an email to records given by id or natural key.

    Returns what was linked ("Invoice Inv-53", ...) and whether it still needs processing.
    """
    email = get_email(session, email_id)
    if not links:
        raise RecordError("name at least one record to link, e.g. --invoice Inv-53")
    linked: list[str] = []
    for option, ref in links.items():
        record_type, column = LINKABLE[option]
        record = find_record(session, record_type, ref)
        setattr(email, column, record.id)
        _linked_by_hand(email, column)
        linked.append(record_label(record_type, record))
        if record_type == "Contact" and email.account_id is None and record.account_id:
            email.account_id = record.account_id
    refresh_needs_processing(email)
    session.flush()
    return linked, email.needs_processing


def mark_processed(session: Session, email_id: str, thread: bool = False) -> int:
    """Clear needs_processing of an email, or of every email in its thread; returns how many."""
    email = get_email(session, email_id)
    where = (
        Email.thread_id == email.thread_id if thread and email.thread_id else Email.id == email.id
    )
    result = session.execute(
        update(Email).where(where, Email.needs_processing.is_(True)).values(needs_processing=False)
    )
    session.expire(email)
    return result.rowcount or 0


def create_contact_from_email(session: Session, email_id: str) -> Contact:
    """A contact named and addressed after the email's From, linked to the email."""
    email = get_email(session, email_id)
    address = email.from_address.strip().lower()
    if not address:
        raise RecordError(f"email {email_id} has no sender address")
    if email.direction == Direction.outgoing:
        raise RecordError(f"email {email_id} is outgoing: its sender is the mailbox itself")
    owner = session.execute(
        select(Contact.id, Contact.name)
        .join(ContactEmail, ContactEmail.contact_id == Contact.id)
        .where(ContactEmail.address == address)
    ).first()
    if owner is not None:
        raise RecordError(f"{address} already belongs to contact {owner.name} ({owner.id})")
    account_id = email.account_id or account_by_domain(session, address.rpartition("@")[2])
    contact = Contact(
        name=email.from_name.strip() or address.partition("@")[0], account_id=account_id
    )
    contact.emails.append(ContactEmail(address=address))
    session.add(contact)
    session.flush()
    email.contact_id = contact.id
    email.account_id = email.account_id or account_id
    _linked_by_hand(email, "contact_id")
    refresh_needs_processing(email)
    session.flush()
    return contact


def create_record_from_email(
    session: Session, email_id: str, record_type: str, number: str | None = None
) -> tuple[str, SQLModel]:
    """A record made from an email (customer = its contact or account), linked to it."""
    email = get_email(session, email_id)
    record_type = _record_type(record_type, RECORD_TYPES)
    model = RECORD_TYPES[record_type]
    title = (email.subject or f"{record_type} from {email.from_address}")[:200]
    values: dict[str, Any] = {"account_id": email.account_id}
    if record_type in ("Lead", "Opportunity", "Case"):
        values["contact_id"] = email.contact_id
    if record_type in ("Opportunity", "Invoice", "Order", "Contract") and not (
        email.contact_id or email.account_id
    ):
        raise RecordError(
            f"email {email_id} has no contact or account to be the customer of the "
            f"{record_type}: link one first (`emails link ID --contact ...` or "
            "`emails create-contact ID`)"
        )
    if record_type in NUMBERED:
        values["number"] = number or next_number(session, record_type)
        if find_record_or_none(session, record_type, values["number"]) is not None:
            raise RecordError(f"{record_type} {values['number']} exists already")
    elif number:
        raise RecordError(f"a {record_type} has no number")
    if record_type in ("Lead", "Opportunity"):
        values["name"] = title
    if record_type == "Lead":
        values["source"] = "Email"
    if record_type == "Case":
        values["subject"] = title
    record = model(**values)
    session.add(record)
    session.flush()
    column = connection_field(record_type)
    setattr(email, column, record.id)  # type: ignore[attr-defined]
    _linked_by_hand(email, column)
    refresh_needs_processing(email)
    session.flush()
    return record_type, record


def next_number(session: Session, record_type: str) -> str:
    """Cases are numbered CS-00001, ... when no number is given; other records need one."""
    if record_type != "Case":
        raise RecordError(
            f"give the new {record_type}'s number (--number; in a process: values: {{number: ...}})"
        )
    count = session.scalar(select(func.count()).select_from(Case)) or 0
    while True:
        count += 1
        candidate = f"CS-{count:05d}"
        if find_record_or_none(session, "Case", candidate) is None:
            return candidate


# finding records ---------------------------------------------------------------------------


def find_record(session: Session, record_type: str, ref: str) -> Any:
    record = find_record_or_none(session, record_type, ref)
    if record is None:
        raise RecordError(f"no {record_type} {ref!r} (give its id{_natural_key(record_type)})")
    return record


def find_record_or_none(session: Session, record_type: str, ref: str) -> Any:
    """A record by id or by natural key: number, email address or (unique) name."""
    model = _model(record_type)
    ref = ref.strip()
    try:
        return session.get(model, uuid.UUID(ref))
    except ValueError:
        pass
    if record_type in NUMBERED:
        return session.scalar(select(model).where(model.number == ref))  # type: ignore[attr-defined]
    if record_type in ("Contact", "Account") and "@" in ref:
        table = ContactEmail if record_type == "Contact" else AccountEmail
        owner = table.contact_id if record_type == "Contact" else table.account_id  # type: ignore[attr-defined]
        return session.scalar(
            select(model).join(table, owner == model.id).where(table.address == ref.lower())  # type: ignore[attr-defined]
        )
    named = session.scalars(select(model).where(model.name == ref).limit(2)).all()  # type: ignore[attr-defined]
    if len(named) > 1:
        raise RecordError(f"several {record_type} records are named {ref!r}: give the id")
    return named[0] if named else None


def record_label(record_type: str, record: Any) -> str:
    key = getattr(record, "number", None) or getattr(record, "name", None) or record.id
    return f"{record_type} {key}"


def _natural_key(record_type: str) -> str:
    if record_type in NUMBERED:
        return " or number"
    if record_type in ("Contact", "Account"):
        return ", email address or name"
    return " or name"


def _model(record_type: str) -> type[SQLModel]:
    return {"User": User, **LINKED_TYPES}[record_type]


def _record_type(name: str, choices: Iterable[str]) -> str:
    wanted = name.strip().lower()
    for choice in choices:
        if wanted in (choice.lower(), choice.lower() + "s"):
            return choice
    raise RecordError(f"unknown record type {name!r}; use one of {', '.join(choices)}")


def account_by_domain(session: Session, domain: str) -> uuid.UUID | None:
    found = session.scalars(select(Account.id).where(Account.domain == domain).limit(2)).all()
    return found[0] if len(found) == 1 else None


# CSV import --------------------------------------------------------------------------------


@dataclass
class ImportReport:
    record_type: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class _Row:
    line: int
    values: dict[str, str]


@dataclass
class _Problems:
    file: str
    lines: list[str] = field(default_factory=list)

    def add(self, line: int, reason: str) -> None:
        self.lines.append(f"{self.file}:{line}: {reason}")


COLUMNS: dict[str, tuple[str, ...]] = {
    "Account": ("name", "domain", "email"),
    "Contact": ("name", "email", "account"),
    "User": ("name", "email", "contact"),
    "Invoice": ("number", "account", "amount"),
    "Order": ("number", "account"),
    "Contract": ("number", "account"),
}


def import_records(session: Session, record_type: str, path: Path) -> ImportReport:
    """Create or update records from a CSV file; all rows or none (problems name file:line)."""
    record_type = _record_type(record_type, COLUMNS)
    rows = _read_csv(path, record_type)
    problems = _Problems(path.name)
    report = ImportReport(record_type)
    importer: Callable[[Session, list[_Row], _Problems, ImportReport], None] = {
        "Account": _import_accounts,
        "Contact": _import_contacts,
        "User": _import_users,
    }.get(record_type, _import_numbered)
    importer(session, rows, problems, report)
    if problems.lines:
        session.rollback()
        shown = problems.lines[:MAX_LISTED_PROBLEMS]
        more = len(problems.lines) - len(shown)
        raise RecordError(
            f"{path.name}: {len(problems.lines)} problem(s), nothing imported:\n  "
            + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else "")
        )
    session.flush()
    return report


def _read_csv(path: Path, record_type: str) -> list[_Row]:
    allowed = COLUMNS[record_type]
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [(name or "").strip().lower() for name in reader.fieldnames or []]
            unknown = [name for name in header if name not in allowed]
            if unknown or allowed[0] not in header:
                raise RecordError(
                    f"{path.name}:1: a {record_type} file has the columns {', '.join(allowed)} "
                    f"({allowed[0]} required)"
                    + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                )
            rows = []
            for raw in reader:
                values = {
                    key.strip().lower(): (value or "").strip()
                    for key, value in raw.items()
                    if key is not None
                }
                if any(values.values()):
                    rows.append(_Row(reader.line_num, values))
            return rows
    except FileNotFoundError as exc:
        raise RecordError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RecordError(f"{path}: cannot read it as UTF-8 CSV ({exc})") from exc


def _addresses(value: str) -> list[str]:
    return list(dict.fromkeys(a.lower() for a in ADDRESS_SEPARATORS.split(value) if a))


def _bad_addresses(addresses: list[str]) -> list[str]:
    return [a for a in addresses if a.count("@") != 1 or a.startswith("@") or a.endswith("@")]


def _by_name(session: Session, model: Any, names: Iterable[str]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    wanted = sorted(set(names))
    for start in range(0, len(wanted), 900):
        for record in session.scalars(
            select(model).where(model.name.in_(wanted[start : start + 900]))
        ):
            found.setdefault(record.name, []).append(record)
    return found


def _one_named(
    found: dict[str, list[Any]], name: str, record_type: str, problems: _Problems, line: int
) -> Any:
    matches = found.get(name, [])
    if not matches:
        problems.add(line, f"{record_type} {name!r} not found (import {record_type}s first)")
        return None
    if len(matches) > 1:
        problems.add(line, f"several {record_type}s are named {name!r}")
        return None
    return matches[0]


def _owners(session: Session, table: Any, owner: Any, addresses: Iterable[str]) -> dict[str, Any]:
    wanted = sorted(set(addresses))
    found: dict[str, Any] = {}
    for start in range(0, len(wanted), 900):
        rows = session.execute(
            select(table.address, owner).where(table.address.in_(wanted[start : start + 900]))
        )
        found.update({address: owner_id for address, owner_id in rows})
    return found


def _import_accounts(
    session: Session, rows: list[_Row], problems: _Problems, report: ImportReport
) -> None:
    existing = _by_name(session, Account, (r.values["name"] for r in rows))
    owners = _owners(
        session,
        AccountEmail,
        AccountEmail.account_id,
        (a for r in rows for a in _addresses(r.values.get("email", ""))),
    )
    for row in rows:
        name, addresses = row.values["name"], _addresses(row.values.get("email", ""))
        domain = row.values.get("domain", "").lower().lstrip("@") or None
        if not name:
            problems.add(row.line, "name is empty")
            continue
        if bad := _bad_addresses(addresses):
            problems.add(row.line, f"not an email address: {', '.join(bad)}")
            continue
        accounts = existing.get(name, [])
        if len(accounts) > 1:
            problems.add(row.line, f"several accounts are named {name!r}")
            continue
        account = accounts[0] if accounts else Account(name=name)
        taken = [a for a in addresses if owners.get(a) not in (None, account.id)]
        if taken:
            problems.add(row.line, f"{', '.join(taken)} already belong(s) to another account")
            continue
        changed = not accounts
        if domain and account.domain != domain:
            account.domain, changed = domain, True
        for address in addresses:
            if address not in owners:
                account.emails.append(AccountEmail(address=address))
                owners[address] = account.id
                changed = True
        if not accounts:
            session.add(account)
            existing[name] = [account]
        _tally(report, created=not accounts, changed=changed)


def _import_contacts(
    session: Session, rows: list[_Row], problems: _Problems, report: ImportReport
) -> None:
    accounts = _by_name(session, Account, (r.values.get("account", "") for r in rows))
    contacts_by_name = _by_name(session, Contact, (r.values["name"] for r in rows))
    owners = _owners(
        session,
        ContactEmail,
        ContactEmail.contact_id,
        (a for r in rows for a in _addresses(r.values.get("email", ""))),
    )
    for row in rows:
        name, addresses = row.values["name"], _addresses(row.values.get("email", ""))
        if not name:
            problems.add(row.line, "name is empty")
            continue
        if bad := _bad_addresses(addresses):
            problems.add(row.line, f"not an email address: {', '.join(bad)}")
            continue
        account = None
        if row.values.get("account"):
            account = _one_named(accounts, row.values["account"], "Account", problems, row.line)
            if account is None:
                continue
        known = {owners[a] for a in addresses if a in owners}
        if len(known) > 1:
            problems.add(row.line, "its addresses belong to different contacts")
            continue
        contact = session.get(Contact, known.pop()) if known else None
        if contact is None and not addresses:
            # Without an address, the name is the only key (if it is unique).
            same = contacts_by_name.get(name, [])
            contact = same[0] if len(same) == 1 else None
        created = contact is None
        if contact is None:
            contact = Contact(name=name)
            session.add(contact)
            contacts_by_name.setdefault(name, []).append(contact)
        changed = created
        if contact.name != name:
            contact.name, changed = name, True
        if account is not None and contact.account_id != account.id:
            contact.account_id, changed = account.id, True
        for address in addresses:
            if address not in owners:
                contact.emails.append(ContactEmail(address=address))
                owners[address] = contact.id
                changed = True
        _tally(report, created=created, changed=changed)


def _import_users(
    session: Session, rows: list[_Row], problems: _Problems, report: ImportReport
) -> None:
    users = _by_name(session, User, (r.values["name"] for r in rows))
    contacts = _by_name(session, Contact, (r.values.get("contact", "") for r in rows))
    for row in rows:
        name = row.values["name"]
        if not name:
            problems.add(row.line, "name is empty")
            continue
        contact_id = None
        ref = row.values.get("contact", "")
        if "@" in ref:
            contact = find_record_or_none(session, "Contact", ref)
            if contact is None:
                problems.add(row.line, f"no contact has the address {ref}")
                continue
            contact_id = contact.id
        elif ref:
            contact = _one_named(contacts, ref, "Contact", problems, row.line)
            if contact is None:
                continue
            contact_id = contact.id
        user = users[name][0] if name in users else None
        created = user is None
        if user is None:
            user = User(name=name)
            session.add(user)
            users[name] = [user]
        changed = created
        email = row.values.get("email", "").lower() or None
        if email and user.email != email:
            user.email, changed = email, True
        if contact_id and user.contact_id != contact_id:
            user.contact_id, changed = contact_id, True
        _tally(report, created=created, changed=changed)


def _import_numbered(
    session: Session, rows: list[_Row], problems: _Problems, report: ImportReport
) -> None:
    model: Any = RECORD_TYPES[report.record_type]
    numbers = sorted({r.values["number"] for r in rows})
    existing = {
        record.number: record
        for start in range(0, len(numbers), 900)
        for record in session.scalars(
            select(model).where(model.number.in_(numbers[start : start + 900]))
        )
    }
    accounts = _by_name(session, Account, (r.values.get("account", "") for r in rows))
    for row in rows:
        number = row.values["number"]
        if not number:
            problems.add(row.line, "number is empty")
            continue
        values: dict[str, Any] = {}
        if row.values.get("account"):
            account = _one_named(accounts, row.values["account"], "Account", problems, row.line)
            if account is None:
                continue
            values["account_id"] = account.id
        if row.values.get("amount"):
            try:
                values["amount"] = float(row.values["amount"].replace(",", ""))
            except ValueError:
                problems.add(row.line, f"amount {row.values['amount']!r} is not a number")
                continue
        record = existing.get(number)
        created = record is None
        if record is None:
            record = model(number=number)
            session.add(record)
            existing[number] = record
        changed = created
        for key, value in values.items():
            if getattr(record, key) != value:
                setattr(record, key, value)
                changed = True
        _tally(report, created=created, changed=changed)


def _tally(report: ImportReport, created: bool, changed: bool) -> None:
    if created:
        report.created += 1
    elif changed:
        report.updated += 1
    else:
        report.unchanged += 1
