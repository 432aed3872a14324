"""Applying binding rules: the records a batch of emails names (SPEC 4, step 3).

For a batch, every email's texts go through the rules (one RE2 Set scan per
column, then only the matching rules extract values); the values are looked up
with one indexed IN query per target (record type and column); per email, the
first rule in order whose value names an existing record binds that record type.
"""

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from models import Email, EmailBody
from models.records import RECORD_TYPES
from tasks.matching import CHUNK
from tasks.rules import Rule, RuleBook


@dataclass(frozen=True)
class RuleHit:
    """A rule that named an existing record in an email."""

    rule: str
    value: str
    record_id: uuid.UUID


# An email's texts by rule column: {"subject": ..., "body": ...}.
Texts = Mapping[str, str]


def find_bindings(
    session: Session, emails: Sequence[Texts], book: RuleBook
) -> list[dict[str, RuleHit]]:
    """For each email: connection field (e.g. invoice_id) → the rule hit that binds it."""
    order = {rule.name: i for i, rule in enumerate(book.rules)}
    matches: list[list[tuple[Rule, list[str]]]] = []
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for texts in emails:
        hits = []
        for column, text in texts.items():
            for rule in book.candidates(column, text):
                values = rule.values(text)
                if values:
                    hits.append((rule, values))
                    wanted[(rule.record_type, rule.record_column)].update(values)
        hits.sort(key=lambda hit: order[hit[0].name])
        matches.append(hits)
    existing = {target: find_records(session, *target, values) for target, values in wanted.items()}
    results: list[dict[str, RuleHit]] = []
    for hits in matches:
        bound: dict[str, RuleHit] = {}
        for rule, values in hits:
            if rule.email_field in bound:
                continue
            records = existing[(rule.record_type, rule.record_column)]
            value = next((v for v in values if v in records), None)
            if value is not None:
                bound[rule.email_field] = RuleHit(rule.name, value, records[value])
        results.append(bound)
    return results


def find_records(
    session: Session, record_type: str, column: str, values: set[str]
) -> dict[str, uuid.UUID]:
    """Which of these values name a record: value → record id (the oldest if several)."""
    model = RECORD_TYPES[record_type]
    table = model.__table__  # type: ignore[attr-defined]
    found: dict[str, uuid.UUID] = {}
    ordered = sorted(values)
    for start in range(0, len(ordered), CHUNK):
        rows = session.connection().execute(
            select(table.c[column], table.c.id)
            .where(table.c[column].in_(ordered[start : start + CHUNK]))
            .order_by(table.c.created_at, table.c.id)
        )
        for value, record_id in rows:
            found.setdefault(value, record_id)
    return found


@dataclass(frozen=True)
class Preview:
    """What a rule would do to one stored email (`inboxflow rules test`)."""

    email_id: uuid.UUID
    subject: str
    rule: str
    target: str
    value: str
    outcome: str  # "would bind", "already bound", "kept: bound to another record"


def preview_bindings(
    session: Session, book: RuleBook, limit: int, batch_size: int = 1000
) -> tuple[int, list[Preview]]:
    """Which stored emails the rules would bind, newest first; reads only, changes nothing.

    Returns how many emails were scanned and at most ``limit`` previews.
    """
    fields = sorted({rule.email_field for rule in book.enabled})
    columns = [Email.id, Email.subject, *(getattr(Email, name) for name in fields)]
    query = select(*columns)
    if book.uses("body"):
        query = query.add_columns(
            EmailBody.text.label("body_text"), EmailBody.html.label("body_html")
        ).outerjoin(EmailBody, EmailBody.email_id == Email.id)
    query = query.order_by(Email.received_at.desc(), Email.created_at.desc())
    targets = {rule.name: rule.target for rule in book.rules}
    scanned, found = 0, []
    for rows in session.execute(query.execution_options(yield_per=batch_size)).partitions():
        records = [dict(row._mapping) for row in rows]
        texts = [
            {"subject": r["subject"]}
            | ({"body": r["body_text"] or r["body_html"]} if "body_text" in r else {})
            for r in records
        ]
        for record, bound in zip(records, find_bindings(session, texts, book), strict=True):
            scanned += 1
            for name, hit in bound.items():
                current = record[name]
                outcome = (
                    "would bind"
                    if current is None
                    else "already bound"
                    if current == hit.record_id
                    else "kept: bound to another record"
                )
                found.append(
                    Preview(
                        record["id"],
                        record["subject"],
                        hit.rule,
                        targets[hit.rule],
                        hit.value,
                        outcome,
                    )
                )
            if len(found) >= limit:
                return scanned, found[:limit]
    return scanned, found
