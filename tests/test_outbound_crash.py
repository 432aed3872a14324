"""Exactly once (SPEC 5, issue 4 acceptance 4): a sender killed between the server's
acceptance and its own status update never sends the email again on a guess.

How the crash is made: the sending runs as a real `inboxflow outbox send` child
process; the test SMTP server's DATA handler, after storing the message and
before answering 250, SIGKILLs that child's process group and waits for it to be
gone. No hook in inboxflow's code: the process dies exactly where a real crash
would hurt most.
"""

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from inboxflow.cli import app
from models import get_engine
from models.outbox import OutboxEntry, OutboxState
from tasks.handover import journal_path
from tasks.sending import sender_lock
from tasks.sync import file_store
from tests.support.dovecot import Dovecot
from tests.support.outbound import (
    SendingMailbox,
    add_sending_mailbox,
    email_row,
    mailbox_id,
    outbox_row,
    queue,
    run_outbox,
    sent_folder_messages,
)
from tests.support.smtp import Received, SmtpServer

pytestmark = pytest.mark.usefixtures("prefect_api")
runner = CliRunner()


def send_in_child_killed_at(
    smtp: SmtpServer,
    prefect_api: str,
    victim: str,
    before_kill: Callable[[Received], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Run `inboxflow outbox send` in a child; SIGKILL it when the server has ``victim``'s mail."""
    child: subprocess.Popen[bytes] | None = None

    def kill(received: Received) -> None:
        if victim not in received.rcpt_tos:
            return
        if before_kill is not None:
            before_kill(received)
        assert child is not None
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)

    smtp.on_data = kill
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    child = subprocess.Popen(
        [sys.executable, "-m", "inboxflow", "outbox", "send"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _out, errors = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        smtp.on_data = None
    assert child.returncode == -signal.SIGKILL, errors.decode(errors="replace")[-2000:]
    return child


def three_emails(sender: SendingMailbox) -> list[uuid.UUID]:
    return [
        queue(sender, to=[f"r{i}@customer.example"], subject=f"Order {i}", body_text=f"#{i}")
        for i in range(3)
    ]


def copies_in_sent(dovecot: Dovecot, sender: SendingMailbox) -> Counter[str]:
    from email.parser import BytesHeaderParser

    return Counter(
        str(BytesHeaderParser().parsebytes(raw)["Message-ID"])
        for raw in sent_folder_messages(dovecot, sender)
    )


def test_killed_after_the_server_took_the_email_is_not_sent_again_without_a_person(
    database, dovecot, smtp, monkeypatch, prefect_api
):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    first, second, third = three_emails(sender)

    send_in_child_killed_at(smtp, prefect_api, "r1@customer.example")

    # The state the crash left: the batch claimed ("sending"); its journal says the
    # server took #0, #1 was being handed over, #2 never was.
    assert [email_row(i).send_status for i in (first, second, third)] == ["sending"] * 3
    assert len(smtp.messages()) == 2

    state, reports = run_outbox()

    # Every recipient has exactly one copy: #1 was not sent again.
    recipients = Counter(r for m in smtp.messages() for r in m.rcpt_tos)
    assert recipients == {f"r{i}@customer.example": 1 for i in range(3)}
    assert state.is_failed()  # a person has something to do
    assert reports[0]["unconfirmed"] == 1 and reports[0]["sent"] == 1
    assert reports[0]["delivered_before_crash"] == 1
    assert email_row(first).send_status == "completed"
    assert outbox_row(first).smtp_reply.startswith("250")
    assert email_row(third).send_status == "completed"
    stuck, stuck_entry = email_row(second), outbox_row(second)
    assert stuck.send_status == "error" and stuck_entry.state == OutboxState.unconfirmed
    assert "may have been delivered" in stuck.send_error
    assert f"inboxflow outbox resolve {second} --sent" in stuck.send_error
    # The copy the killed run owed for #0 is made now, once.
    sent_ids = copies_in_sent(dovecot, sender)
    assert sent_ids == {email_row(first).message_id: 1, email_row(third).message_id: 1}

    refused = runner.invoke(app, ["outbox", "retry", str(second)])
    assert refused.exit_code == 1 and "may have been delivered already" in refused.output
    run_outbox()
    assert len(smtp.messages()) == 3  # still not sent again

    resolved = runner.invoke(app, ["outbox", "resolve", str(second), "--sent", "--user", "alice"])

    assert resolved.exit_code == 0, resolved.output
    assert email_row(second).send_status == "completed"
    assert outbox_row(second).resolution == "confirmed delivered by alice"
    run_outbox()  # makes the Sent copy, sends nothing
    assert len(smtp.messages()) == 3
    assert copies_in_sent(dovecot, sender)[email_row(second).message_id] == 1


def test_a_person_saying_not_delivered_queues_it_again(database, dovecot, smtp, monkeypatch):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    email_id = queue(sender, to=["r@customer.example"], subject="x", body_text="x")
    with get_engine().begin() as connection:  # as a killed run leaves it
        connection.execute(
            update(OutboxEntry.__table__)  # type: ignore[attr-defined]
            .where(OutboxEntry.email_id == email_id)
            .values(state=OutboxState.sending, attempts=1)
        )
    run_outbox()
    assert outbox_row(email_id).state == OutboxState.unconfirmed and smtp.messages() == []

    resolved = runner.invoke(app, ["outbox", "resolve", str(email_id), "--not-sent"])
    assert resolved.exit_code == 0 and "queued again" in resolved.output
    run_outbox()

    assert len(smtp.messages()) == 1
    assert email_row(email_id).send_status == "completed"


def test_killed_run_whose_provider_filed_the_email_in_sent_completes_it_from_there(
    database, dovecot, smtp, monkeypatch, prefect_api
):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    first, second, third = three_emails(sender)

    def provider_files_it(received: Received) -> None:
        # Like Gmail or Exchange: the server puts every submitted message in Sent itself.
        dovecot.append(sender.address, sender.password, "Sent", [received.data])

    send_in_child_killed_at(smtp, prefect_api, "r1@customer.example", provider_files_it)
    state, reports = run_outbox()

    assert state.is_completed(), reports
    assert reports[0]["found_in_sent"] == 1
    assert len(smtp.messages()) == 3
    assert email_row(second).send_status == "completed"
    assert outbox_row(second).resolution == "found in the Sent folder after an interrupted run"
    assert copies_in_sent(dovecot, sender)[email_row(second).message_id] == 1


def test_a_second_run_on_the_same_mailbox_stays_away(database, dovecot, smtp, monkeypatch):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    email_id = queue(sender, to=["r@customer.example"], subject="x", body_text="x")
    with sender_lock(mailbox_id(sender.address), sender.address):  # a run sending right now
        state, reports = run_outbox()

    assert reports[0]["skipped"] == "another run is sending from this mailbox"
    assert smtp.messages() == [] and email_row(email_id).send_status == "queued"
    run_outbox()
    assert len(smtp.messages()) == 1


def test_an_outbox_journal_that_cannot_be_written_stops_sending_with_a_clear_error(
    database, dovecot, smtp, monkeypatch
):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    email_id = queue(sender, to=["r@customer.example"], subject="x", body_text="x")
    journal = journal_path(file_store().root, mailbox_id(sender.address))
    journal.mkdir(parents=True)  # a directory where the file should be

    state, reports = run_outbox()

    assert state.is_failed() and smtp.messages() == []
    assert "the outbox journal" in reports[0]["error"] and sender.address in reports[0]["error"]
    assert email_row(email_id).send_status == "queued"

    journal.rmdir()
    run_outbox()
    assert len(smtp.messages()) == 1
