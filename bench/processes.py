"""Email-process benchmark: 1,000 new emails that start a process by its trigger.

    ./run bench processes [--emails 1000] [--baseline 200]

Starts a real Prefect server (`prefect server start`, PostgreSQL-backed, on
127.0.0.1) and a fresh SQLite inboxflow database; stores N new enquiry emails
(each from its own sender) and the shipped create-lead process (4 steps: find or
create the contact, create the lead, link the email, queue the acknowledgement).
Then, measured in the same run against the same server:
  (a) the baseline: M empty Prefect flow runs started the same way (child runs
      of one parent flow) — Prefect's own cost per flow run;
  (b) the initial-processing flow on the N emails, whose trigger starts N
      create-lead runs; timed until every run is completed *and recorded* in
      the Prefect server (counted through its API).
Prints the total, runs/s, ms per run, the overhead per run over (a), and the
target: all 1,000 in <= 60 s.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

TARGET_SECONDS = 60.0
MAILBOX = "sales@northwind.example"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=200, help="empty flow runs measured")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inboxflow-bench-processes-"))
    from tests.support.prefect_server import PrefectServer

    server = PrefectServer(work / "prefect")
    (work / "prefect").mkdir()
    print(f"starting a Prefect server on PostgreSQL in {work} ...", flush=True)
    server.start()
    try:
        # Before Prefect is imported: it reads its settings once.
        os.environ.update(
            PREFECT_API_URL=server.api_url,
            PREFECT_HOME=str(server.client_home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_LEVEL="WARNING",
            INBOXFLOW_HOME=str(work / "inboxflow"),
            INBOXFLOW_PROCESSES_DIR=str(work / "processes"),
        )
        os.environ.pop("INBOXFLOW_DATABASE_URL", None)
        run(args.emails, args.baseline, work, server)
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)


def run(emails: int, baseline: int, work: Path, server: object) -> None:
    from prefect import flow
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from tests.support.prefect_server import PrefectServer

    assert isinstance(server, PrefectServer)
    seed(emails, work / "processes")
    print(f"{emails} new enquiry emails stored; process create-lead with its trigger", flush=True)

    @flow(name="bench-empty")
    def empty() -> None:
        """An empty flow run: Prefect's own cost."""

    @flow(name="bench-baseline")
    def baseline_parent(count: int) -> None:
        # As the triggered process runs are started (flows/email_process.py).
        with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            for _ in range(count):
                empty()

    started = time.perf_counter()
    baseline_parent(baseline)
    empty_ms = (time.perf_counter() - started) / baseline * 1000
    print(f"(a) {baseline} empty flow runs: {empty_ms:.0f} ms per run", flush=True)

    from flows.initial_processing import initial_processing

    started = time.perf_counter()
    state = initial_processing(return_state=True)
    flow_done = time.perf_counter() - started
    if not state.is_completed():
        sys.exit(f"initial processing failed: {state.message}")
    summary = state.result()["processes"]
    recorded = wait_recorded(server, emails, started)
    total = time.perf_counter() - started
    check_database(emails)
    per_run = total / emails * 1000
    print(
        f"(b) initial processing + {summary.get('started', 0)} create-lead runs "
        f"({summary.get('failed', 0)} failed): flow returned after {flow_done:.1f} s, "
        f"all {recorded} runs completed and recorded in Prefect after {total:.1f} s"
    )
    print(f"    {emails / total:.1f} runs/s, {per_run:.0f} ms per run (4 steps each)")
    print(
        f"    overhead per run over an empty flow run: {per_run - empty_ms:.0f} ms "
        f"(ratio {per_run / empty_ms:.2f} x the empty run)"
    )
    scaled = total * 1000 / emails
    verdict = "met" if scaled <= TARGET_SECONDS else "NOT met"
    print(f"target: 1,000 runs in <= {TARGET_SECONDS:.0f} s -> {scaled:.1f} s per 1,000: {verdict}")


def seed(emails: int, processes: Path) -> None:
    """The mailbox, the templates, the create-lead process and N new enquiry emails."""
    from email.message import EmailMessage
    from email.utils import format_datetime

    from sqlmodel import Session

    from models import FirstSyncPeriod, LoginFormat, Security, get_engine, init_db, session_scope
    from models.db import PROJECT_ROOT
    from tasks.mailboxes import add_mailbox, add_provider, mailbox_ref
    from tasks.parsing import parse_message
    from tasks.storing import IncomingEmail, store_emails
    from tasks.sync import file_store
    from tasks.templates import load_template_files

    processes.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "processes" / "create-lead.yaml", processes)
    init_db()
    with session_scope() as session:
        add_provider(
            session, "northwind", "imap.northwind.example:993", Security.ssl,
            "smtp.northwind.example:465", Security.ssl, 40, LoginFormat.email,
            ["northwind.example"],
        )  # fmt: skip
        add_mailbox(
            session, MAILBOX, "env:NW_PASSWORD", "northwind", None, None,
            FirstSyncPeriod.all, None, False,
        )  # fmt: skip
        load_template_files(session)
        mailbox = mailbox_ref(session, MAILBOX)
    files = file_store()
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    incoming = []
    for n in range(emails):
        message = EmailMessage()
        message["Subject"] = f"Price enquiry {n}: 200 cordless drills"
        message["From"] = f"Customer {n} <buyer{n}@customer{n % 50}.example>"
        message["To"] = f"Sales <{MAILBOX}>"
        message["Date"] = format_datetime(start + timedelta(seconds=n))
        message["Message-ID"] = f"<enquiry-{n}@bench.example>"
        message.set_content("Hello,\nplease send us your best price for 200 drills.\n")
        incoming.append(IncomingEmail(parse_message(message.as_bytes(), files, 10**7), "INBOX"))
    with Session(get_engine(), expire_on_commit=False) as session:
        store_emails(session, mailbox, incoming)


def wait_recorded(server: object, expected: int, since: float, timeout: float = 900) -> int:
    """Poll the server until `expected` email-process runs are COMPLETED; returns the count."""
    import httpx

    api = server.api_url  # type: ignore[attr-defined]
    body = {
        "flows": {"name": {"any_": ["email-process"]}},
        "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
    }
    deadline = since + timeout
    with httpx.Client(timeout=30) as client:
        while True:
            count = client.post(f"{api}/flow_runs/count", json=body).json()
            if count >= expected or time.perf_counter() > deadline:
                return int(count)
            time.sleep(0.2)


def check_database(expected: int) -> None:
    """Every email got its lead (the runs did their work, not only their bookkeeping)."""
    from sqlalchemy import func, select
    from sqlmodel import Session

    from models import Email, Lead, get_engine

    with Session(get_engine()) as session:
        leads = session.scalar(select(func.count()).select_from(Lead))
        linked = session.scalar(select(func.count()).where(Email.lead_id.is_not(None)))
    if leads != expected:
        sys.exit(f"expected {expected} leads, found {leads} ({linked} emails linked)")


if __name__ == "__main__":
    main()
