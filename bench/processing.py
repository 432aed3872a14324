"""Initial-processing benchmark: emails/s on SQLite, at 10k and at 100k contacts.

    ./run bench processing [--emails 10000] [--rules 50]

For each contact count, a fresh SQLite database gets 20,000 accounts, the
contacts (every third with a second address; 50 of them employees), 20,000
invoices, 10,000 orders, 5,000 contracts, a rules folder of 50 rules, and the
emails, already stored and unprocessed: most from known contacts, some from
account addresses, some from strangers with a customer in Cc, some outgoing;
a third with a record number in the subject, a third replies (some with 60
References). Then the initial-processing flow runs once, timed end to end (Prefect
overhead included, heartbeats off), and once more (nothing new: idempotent).

The per-email work must not depend on the number of contacts: the two rates
should be about equal. Target: >= 5,000 emails/s.
"""

import argparse
import os
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ACCOUNTS = 20_000
INVOICES, ORDERS, CONTRACTS = 20_000, 10_000, 5_000
EMPLOYEES = 50
CHUNK = 5_000
MAILBOX = "sales@northwind.example"


def write_rules(folder: Path, count: int) -> None:
    """The three shipped rules and count - 3 more that rarely match (as real rule sets do)."""
    folder.mkdir(parents=True, exist_ok=True)
    rules = [
        ("Invoice number", r"\bInv-\d+\b", "Invoice.Number"),
        ("Order number", r"\bOrd-\d+\b", "Order.Number"),
        ("Contract number", r"\bCTR-\d{4}-\d{3}\b", "Contract.Number"),
    ]
    targets = ["Invoice.Number", "Order.Number", "Contract.Number", "Case.Number", "Lead.Name"]
    for i in range(count - len(rules)):
        rules.append((f"Extra rule {i}", rf"\bX{i:02d}-[A-Z]{{2}}\d{{3,6}}\b", targets[i % 5]))
    lines = ["rules:"]
    for name, pattern, target in rules:
        lines += [f"  - name: {name}", f"    pattern: '{pattern}'", f"    target: {target}"]
    (folder / "bench.yaml").write_text("\n".join(lines) + "\n")


def insert(session: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    from sqlalchemy import insert as sql_insert

    for start in range(0, len(rows), CHUNK):
        session.execute(sql_insert(model), rows[start : start + CHUNK])


def seed(contacts: int, emails: int, rng: random.Random, body_bytes: int) -> dict[str, float]:
    """Fill the current database; returns the seeding time."""
    from sqlalchemy import select

    from models import (
        Account,
        AccountEmail,
        Contact,
        ContactEmail,
        Contract,
        Email,
        EmailBody,
        FirstSyncPeriod,
        Invoice,
        LoginFormat,
        Mailbox,
        Order,
        Security,
        User,
        init_db,
        session_scope,
    )
    from tasks.mailboxes import add_mailbox, add_provider

    started = time.perf_counter()
    init_db()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with session_scope() as session:
        add_provider(
            session, "nw", "imap.nw.example:993", Security.ssl, None, Security.ssl, 40,
            LoginFormat.email, ["northwind.example"],
        )  # fmt: skip
        add_mailbox(
            session, MAILBOX, "env:X", "nw", None, None, FirstSyncPeriod.all, "Owner", False
        )
        mailbox_id = session.scalar(select(Mailbox.id))
        account_ids = [uuid.uuid4() for _ in range(ACCOUNTS)]
        insert(session, Account, [
            {"id": a, "name": f"Account {i}", "domain": f"a{i}.example", "created_at": now}
            for i, a in enumerate(account_ids)
        ])  # fmt: skip
        insert(session, AccountEmail, [
            {"id": uuid.uuid4(), "account_id": a, "address": f"info@a{i}.example"}
            for i, a in enumerate(account_ids)
        ])  # fmt: skip
        contact_ids = [uuid.uuid4() for _ in range(contacts)]
        insert(session, Contact, [
            {"id": c, "name": f"Contact {i}", "account_id": account_ids[i % ACCOUNTS],
             "created_at": now}
            for i, c in enumerate(contact_ids)
        ])  # fmt: skip
        addresses = [
            {"id": uuid.uuid4(), "contact_id": c, "address": f"c{i}@a{i % ACCOUNTS}.example"}
            for i, c in enumerate(contact_ids)
        ]
        addresses += [
            {"id": uuid.uuid4(), "contact_id": c, "address": f"c{i}@mail.example"}
            for i, c in enumerate(contact_ids)
            if i % 3 == 0
        ]
        insert(session, ContactEmail, addresses)
        insert(session, User, [
            {"id": uuid.uuid4(), "name": f"Employee {i}", "contact_id": contact_ids[i],
             "created_at": now}
            for i in range(EMPLOYEES)
        ])  # fmt: skip
        for model, prefix, count in (
            (Invoice, "Inv-", INVOICES),
            (Order, "Ord-", ORDERS),
            (Contract, "CTR-2024-", CONTRACTS),
        ):
            width = 3 if model is Contract else 0
            insert(session, model, [
                {"id": uuid.uuid4(), "number": f"{prefix}{i:0{width}d}", "created_at": now}
                for i in range(1, count + 1)
            ])  # fmt: skip
        rows = make_emails(emails, contacts, mailbox_id, now, rng)
        insert(session, Email, rows)
        body = ("Hello,\n" + "lorem ipsum dolor sit amet " * (body_bytes // 27 + 1))[:body_bytes]
        insert(session, EmailBody, [{"email_id": r["id"], "text": body, "html": ""} for r in rows])
    return {"seconds": time.perf_counter() - started}


def make_emails(
    count: int,
    contacts: int,
    mailbox_id: uuid.UUID,
    now: datetime,
    rng: random.Random,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    message_ids: list[str] = []
    for n in range(count):
        i = rng.randrange(EMPLOYEES, contacts)
        customer = f"c{i}@a{i % ACCOUNTS}.example"
        kind = rng.random()
        sender, to, cc = customer, [MAILBOX], []
        if 0.6 <= kind < 0.7:
            sender = f"info@a{rng.randrange(ACCOUNTS)}.example"
        elif 0.7 <= kind < 0.9:
            sender, cc = (
                f"stranger{n}@unknown.example",
                [f"c{rng.randrange(EMPLOYEES)}@x", customer],
            )
        elif kind >= 0.9:
            sender, to = MAILBOX, [customer]
        subject = rng.choice(["Question", "Delivery", "Thanks", "Meeting", "Price list"])
        number = rng.random()
        if number < 0.15:
            subject += f" about Inv-{rng.randrange(1, INVOICES + 5000)}"
        elif number < 0.25:
            subject += f" for Ord-{rng.randrange(1, ORDERS + 2000)}"
        elif number < 0.3:
            subject += f" re CTR-2024-{rng.randrange(1, CONTRACTS):03d}"
        in_reply_to, references = None, []
        if message_ids and rng.random() < 0.33:
            in_reply_to = rng.choice(message_ids[-2000:])
            references = [in_reply_to]
            if rng.random() < 0.1:
                references = [f"<gone-{n}-{k}@x>" for k in range(60)] + references
            subject = "Re: " + subject
        message_id = f"<bench-{n}@x>"
        message_ids.append(message_id)
        moment = now + timedelta(seconds=n)
        rows.append({
            "id": uuid.uuid4(), "mailbox_id": mailbox_id, "folder": "INBOX", "uid": n + 1,
            "message_id": message_id, "in_reply_to": in_reply_to, "references": references,
            "direction": "outgoing" if sender == MAILBOX else "incoming",
            "from_name": "", "from_address": sender, "to": ", ".join(to), "cc": ", ".join(cc),
            "to_addresses": to, "cc_addresses": cc, "bcc_addresses": [], "subject": subject,
            "sent_at": moment, "received_at": moment, "needs_processing": True,
            "created_at": moment,
        })  # fmt: skip
    return rows


def settle() -> None:
    """Leave the database at rest: seeding's write-ahead log copied into it, as after a sync."""
    from sqlalchemy import text

    from models import get_engine

    with get_engine().connect() as connection:
        connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


def warm_up(workdir: Path) -> None:
    """One flow run on an empty database: Prefect's first-run costs are not processing work."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.initial_processing import initial_processing

    os.environ["INBOXFLOW_HOME"] = str(workdir / "warm-up")
    os.environ["INBOXFLOW_DATABASE_URL"] = f"sqlite:///{workdir / 'warm-up' / 'db.sqlite'}"
    write_rules(workdir / "warm-up" / "rules", 3)
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        initial_processing(rules_dir=str(workdir / "warm-up" / "rules"))


def run_once(
    contacts: int, emails: int, rules: int, body_bytes: int, workdir: Path
) -> dict[str, float]:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.initial_processing import initial_processing

    home = workdir / f"home-{contacts}"
    os.environ["INBOXFLOW_HOME"] = str(home)
    os.environ["INBOXFLOW_DATABASE_URL"] = f"sqlite:///{home / 'bench.db'}"
    # No email processes: their runs are bench/processes.py's measure, not binding's.
    os.environ["INBOXFLOW_PROCESSES_DIR"] = str(home / "no-processes")
    (home / "no-processes").mkdir(parents=True, exist_ok=True)
    write_rules(home / "rules", rules)
    seeded = seed(contacts, emails, random.Random(contacts), body_bytes)
    settle()
    # A sync flow joins its heartbeat thread at exit (~1 s a run): not processing work.
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        started = time.perf_counter()
        state = initial_processing(rules_dir=str(home / "rules"), return_state=True)
        seconds = time.perf_counter() - started
        summary = state.result()
        started = time.perf_counter()
        again = initial_processing(rules_dir=str(home / "rules"), return_state=True).result()
        again_seconds = time.perf_counter() - started
    assert summary["emails"] == emails and again["emails"] == 0, (summary, again)
    return {
        "seed_seconds": seeded["seconds"],
        "seconds": seconds,
        "rate": emails / seconds,
        "again_seconds": again_seconds,
        **{k: v for k, v in summary.items() if isinstance(v, int)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--body-bytes", type=int, default=4000, help="text body of each email")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    results = {}
    with (
        tempfile.TemporaryDirectory(prefix="inboxflow-bench-") as tmp,
        prefect_test_harness(server_startup_timeout=180),
    ):
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        warm_up(Path(tmp))
        for contacts in (10_000, 100_000):
            result = run_once(contacts, args.emails, args.rules, args.body_bytes, Path(tmp))
            results[contacts] = result
            print(
                f"{contacts:>7,} contacts, {ACCOUNTS:,} accounts, {args.rules} rules, "
                f"{args.emails:,} emails of {args.body_bytes:,} B "
                f"(seeded in {result['seed_seconds']:.1f} s): "
                f"processed in {result['seconds']:.2f} s = {result['rate']:,.0f} emails/s; "
                f"second run {result['again_seconds']:.2f} s"
            )
            print(
                f"         {result['with_contact_or_account']:,} with contact or account, "
                f"{result['bound_by_rules']:,} bound by rules, {result['in_threads']:,} in "
                f"threads, {result['need_processing']:,} still need processing"
            )
    small, large = results[10_000]["rate"], results[100_000]["rate"]
    print(f"\n  emails/s     10k contacts: {small:,.0f}   100k contacts: {large:,.0f}")
    print(f"  ratio 100k/10k = {large / small:.2f} (1.0 = per-email work independent of contacts)")
    print(f"  target >= 5,000 emails/s: {'met' if min(small, large) >= 5000 else 'NOT met'}")


if __name__ == "__main__":
    main()
