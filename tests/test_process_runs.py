"""Email processes running (SPEC 6): create-lead, register-case, triggers, failures, dry runs.

Runs the `email-process` flow on a real database (SQLite and PostgreSQL), locally
through Prefect; tests/test_prefect_deployments.py starts the same flow from
deployments on a real Prefect server with a worker.
"""

import shutil
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session
from typer.testing import CliRunner

from inboxflow.cli import app
from models import (
    Case,
    Contact,
    Email,
    EmailProvider,
    Lead,
    ProcessStart,
    get_engine,
    session_scope,
)
from models.base import utcnow
from models.emails import Direction, SendStatus
from tasks.process_spec import DEFAULT_PROCESSES_DIR
from tasks.storing import MailboxRef
from tasks.templates import load_template_files
from tests.test_processing import Crm, crm, get, mailbox, message, process, store

__all__ = ["crm", "mailbox"]  # fixtures used here
pytestmark = pytest.mark.usefixtures("prefect_api")
runner = CliRunner()
ENQUIRY = "Price enquiry: 200 cordless drills"
NEW_CUSTOMER = "Peter Novak <peter.novak@novak-engineering.example>"


@pytest.fixture
def processes(crm: Crm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped processes in a folder of the test's own, and the shipped templates loaded."""
    folder = tmp_path / "processes"
    shutil.copytree(DEFAULT_PROCESSES_DIR, folder)
    monkeypatch.setenv("INBOXFLOW_PROCESSES_DIR", str(folder))
    with session_scope() as session:
        assert not load_template_files(session).problems
        # Replies are only queued here; the provider needs an SMTP server to queue them.
        for provider in session.scalars(select(EmailProvider)):
            provider.smtp_host = "smtp.northwind.example"
    return folder


def run(email_id: uuid.UUID, name: str, dry_run: bool = False) -> dict:
    from flows.email_process import email_process

    state = email_process(RecordId=email_id, process=name, dry_run=dry_run, return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def run_failed(email_id: object, name: str) -> str:
    from flows.email_process import email_process

    state = email_process(RecordId=email_id, process=name, return_state=True)
    assert state.is_failed()
    return state.message or ""


def count(model: type) -> int:
    with Session(get_engine()) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def outgoing(email_id: uuid.UUID) -> list[Email]:
    """The replies queued to an email."""
    with Session(get_engine()) as session:
        parent = session.get(Email, email_id)
        return list(
            session.scalars(
                select(Email).where(
                    Email.direction == Direction.outgoing,
                    Email.in_reply_to == parent.message_id,  # type: ignore[union-attr]
                )
            )
        )


# 2. create-lead ---------------------------------------------------------------------------


def test_create_lead_links_lead_and_contact_and_clears_needs_processing(
    processes: Path, mailbox: MailboxRef
) -> None:
    (email_id,) = store(mailbox, message(ENQUIRY, sender=NEW_CUSTOMER))
    result = run(email_id, "create-lead")

    email = get(email_id)
    with Session(get_engine()) as session:
        (lead,) = session.scalars(select(Lead)).all()
        contact = session.get(Contact, lead.contact_id)
    assert contact is not None and contact.name == "Peter Novak"
    assert lead.name == ENQUIRY and lead.source == "Email"
    assert email.lead_id == lead.id and email.contact_id == contact.id
    assert email.needs_processing is False
    assert [s["step"] for s in result["steps"]] == [
        "Find or create the sender as a contact",
        "Create the lead",
        "Link the email to the contact and the lead",
        "Acknowledge the enquiry",
    ]
    (reply,) = outgoing(email_id)
    assert reply.send_status == SendStatus.queued
    assert reply.to_addresses == ["peter.novak@novak-engineering.example"]
    assert reply.subject == "Thank you for your enquiry, Peter Novak"
    assert reply.lead_id == lead.id  # the reply is about the same lead


def test_create_lead_twice_on_one_email_makes_one_lead_and_one_reply(
    processes: Path, mailbox: MailboxRef
) -> None:
    (email_id,) = store(mailbox, message(ENQUIRY, sender=NEW_CUSTOMER))
    run(email_id, "create-lead")
    second = run(email_id, "create-lead")
    assert count(Lead) == 1 and count(Contact) == 4  # three from the crm fixture + Peter
    assert "reused" in second["steps"][1]["summary"]
    assert second["steps"][3]["skipped"] is True
    assert len(outgoing(email_id)) == 1


def test_a_process_that_says_so_creates_a_lead_each_run(
    processes: Path, mailbox: MailboxRef
) -> None:
    text = (processes / "create-lead.yaml").read_text()
    (processes / "always-lead.yaml").write_text(
        text.replace("      object: Lead\n", "      object: Lead\n      reuse_linked: false\n")
    )
    (email_id,) = store(mailbox, message(ENQUIRY, sender=NEW_CUSTOMER))
    run(email_id, "always-lead")
    run(email_id, "always-lead")
    assert count(Lead) == 2


# 3. register-case -------------------------------------------------------------------------


def test_register_case_then_a_reply_in_the_thread_keeps_one_case(
    processes: Path, mailbox: MailboxRef
) -> None:
    request = message("Problem: the drill CD-18 overheats", message_id="<req-1@adventure.example>")
    (request_id,) = store(mailbox, request)
    first = run(request_id, "register-case")
    reply = message(
        "Re: Problem: the drill CD-18 overheats",
        in_reply_to="<req-1@adventure.example>",
        references=["<req-1@adventure.example>"],
    )
    (reply_id,) = store(mailbox, reply)
    process()  # joins the reply to its thread (its trigger runs register-case on it, too)
    second = run(reply_id, "register-case")

    with Session(get_engine()) as session:
        (case,) = session.scalars(select(Case)).all()
    assert get(request_id).case_id == case.id and get(reply_id).case_id == case.id
    assert case.subject == "Problem: the drill CD-18 overheats"
    assert first["outputs"]["case"]["created"] is True
    assert second["outputs"]["case"]["created"] is False
    (confirmation,) = outgoing(request_id)
    assert case.number in confirmation.subject
    assert outgoing(reply_id) == []  # no second confirmation for the thread


def test_a_case_registered_on_an_email_is_shared_with_the_rest_of_its_thread(
    processes: Path, mailbox: MailboxRef
) -> None:
    request, answer = store(
        mailbox,
        message("Problem: the grinder AG-9 sparks", message_id="<req-2@adventure.example>"),
        message(
            "Re: Problem: the grinder AG-9 sparks",
            sender="Northwind Sales <sales@northwind.example>",
            in_reply_to="<req-2@adventure.example>",
        ),
    )

    process()  # threads the two; the trigger registers the case on the request

    case_id = get(request).case_id
    assert case_id is not None
    assert get(answer).thread_id == request and get(answer).case_id == case_id


# 5. automatic starts ----------------------------------------------------------------------


def test_trigger_starts_processes_for_matching_new_mail_only_and_skips_auto_replies(
    processes: Path, mailbox: MailboxRef
) -> None:
    enquiry, other, auto_reply = store(
        mailbox,
        message("Can you send a quote for 50 drivers?", sender=NEW_CUSTOMER),
        message("Lunch on Friday?", sender=NEW_CUSTOMER),
        message(
            "Out of office: Re: price list",
            headers={"Auto-Submitted": "auto-replied"},
        ),
    )
    summary = process()
    assert summary["processes"] == {"started": 1, "failed": 0}
    assert get(enquiry).lead_id is not None
    assert get(other).lead_id is None and get(auto_reply).lead_id is None
    assert count(Lead) == 1

    # Processing again (or all emails again) starts nothing twice.
    assert process()["processes"].get("started", 0) == 0
    process(all_emails=True)
    assert count(Lead) == 1 and len(outgoing(enquiry)) == 1


def test_a_start_whose_run_died_is_made_again_and_a_finished_one_never(
    processes: Path, mailbox: MailboxRef
) -> None:
    (email_id,) = store(mailbox, message("Lunch on Friday?", sender=NEW_CUSTOMER))
    process()  # matches no trigger: nothing started
    # As if a run had claimed the start an hour ago and died before it committed.
    with session_scope() as session:
        session.add(
            ProcessStart(
                email_id=email_id, process="create-lead", started_at=utcnow() - timedelta(hours=1)
            )
        )
    summary = process()
    assert summary["processes"] == {"started": 1, "failed": 0}
    assert get(email_id).lead_id is not None and count(Lead) == 1
    with Session(get_engine()) as session:
        start = session.get(ProcessStart, (email_id, "create-lead"))
        assert start is not None and start.outcome == "completed" and start.finished_at
    # Once finished, a triggered run (a second runner that lost the race) does nothing.
    from flows.email_process import email_process

    state = email_process(
        RecordId=email_id, process="create-lead", triggered=True, return_state=True
    )
    assert state.is_completed() and state.message == "already done by another run"
    assert process()["processes"].get("started", 0) == 0
    assert count(Lead) == 1 and len(outgoing(email_id)) == 1


def test_trigger_can_be_limited_to_mailboxes(processes: Path, mailbox: MailboxRef) -> None:
    text = (processes / "create-lead.yaml").read_text()
    (processes / "create-lead.yaml").write_text(
        text.replace("  email_received:\n", "  email_received:\n    mailboxes: [other@x.example]\n")
    )
    store(mailbox, message("Price please", sender=NEW_CUSTOMER))
    process()
    assert count(Lead) == 0


def test_max_age_skips_old_mail_such_as_a_first_sync(processes: Path, mailbox: MailboxRef) -> None:
    text = (processes / "create-lead.yaml").read_text()
    (processes / "create-lead.yaml").write_text(
        text.replace("  email_received:\n", "  email_received:\n    max_age: 2d\n")
    )
    # The test messages are written on 2 November 2026, stored today: older than 2 days.
    store(mailbox, message("Price please", sender=NEW_CUSTOMER))
    assert process()["processes"].get("started", 0) == 0
    (processes / "create-lead.yaml").write_text(
        text.replace("  email_received:\n", "  email_received:\n    max_age: 5000w\n")
    )
    store(mailbox, message("Another price please", sender=NEW_CUSTOMER))
    assert process()["processes"]["started"] == 1


# failures, all or nothing ---------------------------------------------------------------------


def test_a_record_id_that_is_no_email_fails_and_creates_nothing(processes: Path) -> None:
    missing = uuid.uuid4()
    assert run_failed(missing, "create-lead") == f"email {missing} not found"
    assert "RecordId: Input should be a valid UUID" in run_failed("not-a-uuid", "create-lead")
    assert count(Lead) == 0 and count(Contact) == 3


def test_a_failing_step_fails_the_run_by_name_and_keeps_nothing(
    processes: Path, mailbox: MailboxRef
) -> None:
    text = (processes / "create-lead.yaml").read_text()
    # The acknowledgement names a template that does not exist: the last step fails.
    (processes / "broken-reply.yaml").write_text(text.replace("lead-acknowledgement", "no-such"))
    (email_id,) = store(mailbox, message(ENQUIRY, sender=NEW_CUSTOMER))
    reason = run_failed(email_id, "broken-reply")
    assert reason.startswith("step 'Acknowledge the enquiry' failed: no template named 'no-such'")
    email = get(email_id)
    assert count(Lead) == 0 and count(Contact) == 3  # the lead and contact were rolled back
    assert email.lead_id is None and email.contact_id is None and email.needs_processing
    assert outgoing(email_id) == []


def test_stop_ends_the_run_completed_with_its_reason(processes: Path, mailbox: MailboxRef) -> None:
    (processes / "stop-early.yaml").write_text(
        "name: Stop early\nsteps:\n"
        "  - name: Only for customers we know\n"
        "    if: '{{ not email.contact_id }}'\n"
        "    uses: stop\n"
        "    with: { reason: 'unknown sender {{ email.from_address }}' }\n"
        "  - name: Make a lead\n    uses: record.create\n    with: { object: Lead }\n"
    )
    (email_id,) = store(mailbox, message(ENQUIRY, sender=NEW_CUSTOMER))
    result = run(email_id, "stop-early")
    assert result["stopped"] == (
        "stopped at step 'Only for customers we know': "
        "unknown sender peter.novak@novak-engineering.example"
    )
    assert count(Lead) == 0


# the CLI --------------------------------------------------------------------------------------


def test_cli_dry_run_shows_every_step_and_writes_nothing(
    processes: Path, mailbox: MailboxRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    (email_id,) = store(mailbox, message(ENQUIRY, sender=NEW_CUSTOMER))
    result = runner.invoke(
        app, ["processes", "run", "create-lead", "--email", str(email_id), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "would: created contact Peter Novak" in result.stdout
    assert f"would: created Lead {ENQUIRY}" in result.stdout
    assert "would: queued reply 'Thank you for your enquiry, Peter Novak'" in result.stdout
    assert "dry run: nothing was written" in result.stdout
    assert count(Lead) == 0 and count(Contact) == 3 and outgoing(email_id) == []


def test_cli_run_reports_a_missing_email_in_one_line(
    processes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    missing = uuid.uuid4()
    result = runner.invoke(app, ["processes", "run", "create-lead", "--email", str(missing)])
    assert result.exit_code == 1
    assert f"email {missing} not found" in result.stderr
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["processes", "run", "no-such", "--email", str(missing)])
    assert result.exit_code == 1 and "no process 'no-such'" in result.stderr
