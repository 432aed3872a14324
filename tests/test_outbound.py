"""Outbound sending (SPEC 5, issue 4) over a real SMTP server, with Sent copies in a real Dovecot.

Every test reads back what the SMTP server received and parses it; nothing is mocked.
"""

import hashlib
import uuid
from email import policy
from email.parser import BytesParser

import pytest
from sqlalchemy import func, select
from sqlmodel import Session
from typer.testing import CliRunner

from inboxflow.cli import app
from models import (
    Attachment,
    Email,
    Invoice,
    MailboxAccess,
    Role,
    SystemSetting,
    UserRole,
    get_engine,
    session_scope,
)
from models.outbox import OutboxState
from tasks.errors import (
    AttachmentTooLargeError,
    HeaderInjectionError,
    OutboxError,
    SendPermissionError,
)
from tasks.outbox import USER_ERROR_MESSAGE, NewAttachment, list_outbox
from tasks.sync import file_store
from tests.support.outbound import (
    SendingMailbox,
    add_sending_mailbox,
    email_row,
    mailbox_id,
    outbox_row,
    queue,
    run_outbox,
    sent_folder_messages,
    user_id,
)

pytestmark = pytest.mark.usefixtures("prefect_api")
runner = CliRunner()

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100ffff03000006000557bfabd40000000049454e44ae426082"
)
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
CSV = "name;amount\nGrüße GmbH;12,50\n".encode() * 50


def parse(raw: bytes):  # type: ignore[no-untyped-def]
    """The message as a mail client reads it (line ends as \n, like a saved .eml file)."""
    return BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))


def test_queued_email_arrives_with_every_header_part_and_attachment_byte_equal(
    database, dovecot, smtp, monkeypatch
):
    sender = add_sending_mailbox(
        dovecot,
        smtp,
        monkeypatch,
        display_name="Northwind Sales — Grüße",
        signature_html="<p><b>Alice Smith</b><br>Northwind Traders</p>",
    )
    html = '<p>Dear Mary,</p><p>our offer: <img src="cid:logo.png" alt="logo"></p>'
    email_id = queue(
        sender,
        to=["Mary Jones <mary@customer.example>", "bob@customer.example"],
        cc=["Carol Ng <carol@partner.example>"],
        bcc=["audit@northwind.example"],
        subject="Offer Inv-53 — prices for 2027 ✓",
        body_html=html,
        attachments=[
            NewAttachment("offer.pdf", PDF),
            NewAttachment("prices Grüße.csv", CSV, "text/csv"),
            NewAttachment("logo.png", PNG, "image/png", content_id="logo.png"),
        ],
    )
    assert email_row(email_id).send_status == "queued"

    state, reports = run_outbox()

    assert state.is_completed(), reports
    assert reports[0]["sent"] == 1
    (received,) = smtp.messages()
    stored = email_row(email_id)
    # The bytes on the wire are the bytes queued and kept in the file store.
    assert received.data == file_store().get(stored.raw_key)
    assert received.mail_from == sender.address
    assert received.login == sender.address
    assert sorted(received.rcpt_tos) == sorted(
        [
            "mary@customer.example",
            "bob@customer.example",
            "carol@partner.example",
            "audit@northwind.example",
        ]
    )
    message = parse(received.data)
    assert message["From"].addresses[0].display_name == "Northwind Sales — Grüße"
    assert message["From"].addresses[0].addr_spec == sender.address
    assert [(a.display_name, a.addr_spec) for a in message["To"].addresses] == [
        ("Mary Jones", "mary@customer.example"),
        ("", "bob@customer.example"),
    ]
    assert [(a.display_name, a.addr_spec) for a in message["Cc"].addresses] == [
        ("Carol Ng", "carol@partner.example")
    ]
    assert message["Bcc"] is None and b"audit@northwind.example" not in received.data
    assert message["Subject"] == "Offer Inv-53 — prices for 2027 ✓"
    assert message["Message-ID"] == stored.message_id
    assert message["Date"] is not None
    assert message["Auto-Submitted"] is None  # a person sent it
    assert message.get_content_type() == "multipart/mixed"
    text = message.get_body(("plain",)).get_content()
    assert "Dear Mary," in text and "-- \nAlice Smith\nNorthwind Traders" in text
    html_part = message.get_body(("html",))
    assert html_part.get_content().startswith(html)
    assert "<b>Alice Smith</b>" in html_part.get_content()
    related = next(p for p in message.walk() if p.get_content_type() == "multipart/related")
    image = next(p for p in related.iter_parts() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<logo.png>"
    assert image.get_payload(decode=True) == PNG
    attachments = {a.get_filename(): a.get_payload(decode=True) for a in message.iter_attachments()}
    assert attachments == {"offer.pdf": PDF, "prices Grüße.csv": CSV}
    # The row says what happened and points at its copy in the Sent folder.
    assert stored.send_status == "completed" and stored.send_error is None
    assert stored.sent_at is not None and stored.direction == "outgoing"
    entry = outbox_row(email_id)
    assert entry.state == OutboxState.completed and entry.attempts == 1
    assert entry.smtp_reply == "250 2.0.0 Ok: queued"
    (copy,) = sent_folder_messages(dovecot, sender)
    assert copy.replace(b"\r\n", b"\n").endswith(received.data.replace(b"\r\n", b"\n"))
    assert parse(copy)["Bcc"].addresses[0].addr_spec == "audit@northwind.example"
    assert stored.folder == "Sent" and stored.uid is not None
    with Session(get_engine()) as session:
        kept = {
            a.file_name: a
            for a in session.scalars(select(Attachment).where(Attachment.email_id == email_id))
        }
    assert kept["offer.pdf"].checksum == hashlib.sha256(PDF).hexdigest()
    assert kept["logo.png"].is_inline and kept["logo.png"].content_id == "logo.png"


@pytest.mark.parametrize(
    ("security", "verify_tls"),
    [("none", False), ("starttls", False), ("ssl", False), ("ssl", True)],
)
def test_each_smtp_security_mode_logs_in_and_delivers(
    database, dovecot, smtp, monkeypatch, security, verify_tls
):
    if verify_tls:
        # The default trust store, pointed at the test server's self-signed certificate.
        monkeypatch.setenv("SSL_CERT_FILE", str(smtp.cert_path))
    sender = add_sending_mailbox(
        dovecot, smtp, monkeypatch, security=security, verify_tls=verify_tls
    )
    email_id = queue(sender, to=["x@customer.example"], subject="hello", body_text="Hi!")

    state, reports = run_outbox()

    assert state.is_completed(), reports
    (received,) = smtp.messages()
    assert received.tls == (security != "none")
    assert received.port == (smtp.tls_port if security == "ssl" else smtp.port)
    assert received.login == sender.address
    assert parse(received.data).get_content().strip() == "Hi!"
    assert email_row(email_id).send_status == "completed"


def test_untrusted_certificate_is_a_permanent_error(database, dovecot, smtp, monkeypatch):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch, security="ssl", verify_tls=True)
    email_id = queue(sender, to=["x@customer.example"], subject="hello", body_text="Hi!")

    state, reports = run_outbox()

    assert state.is_failed()
    assert smtp.messages() == []
    email = email_row(email_id)
    assert email.send_status == "error"
    assert "certificate is not trusted" in email.send_error


def test_server_down_sets_error_with_cause_then_retry_sends_it_once(
    database, dovecot, smtp, monkeypatch, caplog
):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    email_id = queue(sender, to=["x@customer.example"], subject="Down", body_text="Hi")
    smtp.stop()

    run_outbox(max_attempts=2, retry_delay_seconds=0)
    first = email_row(email_id)
    assert first.send_status == "queued"  # a temporary failure: tried again later
    assert "attempt 1 of 2" in first.send_error and "connection refused" in first.send_error
    state, reports = run_outbox(max_attempts=2, retry_delay_seconds=0)

    assert state.is_failed()
    assert reports[0]["failed"] == 1
    email = email_row(email_id)
    assert email.send_status == "error"
    assert "gave up after 2 attempts" in email.send_error
    assert "connection refused" in email.send_error
    assert any("connection refused" in r.getMessage() for r in caplog.records)
    listed = runner.invoke(app, ["outbox", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = [r for r in _json(listed.output) if r["id"] == str(email_id)]
    assert row["status"] == "error"
    assert row["message"] == USER_ERROR_MESSAGE
    assert "connection refused" in row["cause"]

    smtp.start()
    retried = runner.invoke(app, ["outbox", "retry", str(email_id)])

    assert retried.exit_code == 0, retried.output
    assert "1 sent" in retried.output
    assert len(smtp.messages()) == 1
    assert email_row(email_id).send_status == "completed"
    assert outbox_row(email_id).attempts == 1  # a retry starts the attempts afresh
    run_outbox()  # nothing due: sent once, stays sent once
    assert len(smtp.messages()) == 1


def test_temporary_refusal_waits_for_its_backoff_and_permanent_refusal_is_not_retried(
    database, dovecot, smtp, monkeypatch
):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    smtp.refuse["busy@customer.example"] = "450 4.2.1 mailbox busy, try later"
    smtp.refuse["gone@customer.example"] = "550 5.1.1 no such user"
    busy = queue(sender, to=["busy@customer.example"], subject="a", body_text="a")
    gone = queue(sender, to=["gone@customer.example"], subject="b", body_text="b")
    fine = queue(sender, to=["ok@customer.example"], subject="c", body_text="c")

    run_outbox()
    run_outbox()  # again at once: the 450 waits for its backoff, the 550 is final

    assert [m.rcpt_tos for m in smtp.messages()] == [["ok@customer.example"]]
    assert email_row(fine).send_status == "completed"
    waiting, waiting_email = outbox_row(busy), email_row(busy)
    assert waiting.state == OutboxState.queued and waiting.attempts == 1
    assert waiting.next_attempt_at is not None
    assert "450 4.2.1 mailbox busy" in waiting_email.send_error
    failed, failed_email = outbox_row(gone), email_row(gone)
    assert failed.state == OutboxState.error and failed.attempts == 1
    assert "550 5.1.1 no such user" in failed_email.send_error
    with session_scope() as session:
        rows = {r["id"]: r for r in list_outbox(session)}
    assert rows[str(gone)]["message"] == USER_ERROR_MESSAGE
    assert rows[str(busy)]["message"] == ""


def test_partly_refused_recipients_are_recorded_on_a_sent_email(
    database, dovecot, smtp, monkeypatch
):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    smtp.refuse["gone@customer.example"] = "550 5.1.1 no such user"
    email_id = queue(
        sender, to=["ok@customer.example", "gone@customer.example"], subject="a", body_text="a"
    )

    run_outbox()

    assert [m.rcpt_tos for m in smtp.messages()] == [["ok@customer.example"]]
    email = email_row(email_id)
    assert email.send_status == "completed"
    assert "gone@customer.example: 550 5.1.1 no such user" in email.send_error
    assert outbox_row(email_id).refused == {"gone@customer.example": "550 5.1.1 no such user"}


def queue_to_a_busy_recipient(dovecot, smtp, monkeypatch) -> tuple[SendingMailbox, uuid.UUID]:  # type: ignore[no-untyped-def]
    """An email to two recipients, one of whom the server refuses for now (451)."""
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    smtp.refuse["busy@customer.example"] = "451 4.2.1 mailbox busy, try later"
    to = ["ok@customer.example", "busy@customer.example"]
    return sender, queue(sender, to=to, subject="a", body_text="a")


def test_a_recipient_refused_for_now_gets_the_same_email_on_a_later_attempt(
    database, dovecot, smtp, monkeypatch
):
    sender, email_id = queue_to_a_busy_recipient(dovecot, smtp, monkeypatch)

    run_outbox(retry_delay_seconds=0)  # due again at once

    entry, email = outbox_row(email_id), email_row(email_id)
    assert [m.rcpt_tos for m in smtp.messages()] == [["ok@customer.example"]]
    assert email.send_status == "completed" and email.sent_at is not None
    assert "busy@customer.example: 451 4.2.1 mailbox busy" in email.send_error
    assert entry.state == OutboxState.queued and entry.envelope_to == ["busy@customer.example"]
    assert entry.attempts == 1

    del smtp.refuse["busy@customer.example"]
    run_outbox()

    first, second = smtp.messages()
    assert second.rcpt_tos == ["busy@customer.example"] and second.data == first.data
    entry, email = outbox_row(email_id), email_row(email_id)
    assert entry.state == OutboxState.completed and entry.attempts == 2
    assert email.send_status == "completed" and email.send_error is None
    assert len(sent_folder_messages(dovecot, sender)) == 1  # one Sent copy for both


def test_a_recipient_refused_for_now_until_attempts_run_out_is_given_up(
    database, dovecot, smtp, monkeypatch
):
    _, email_id = queue_to_a_busy_recipient(dovecot, smtp, monkeypatch)

    run_outbox(retry_delay_seconds=0, max_attempts=2)
    run_outbox(retry_delay_seconds=0, max_attempts=2)
    run_outbox(retry_delay_seconds=0, max_attempts=2)

    assert [m.rcpt_tos for m in smtp.messages()] == [["ok@customer.example"]]
    entry, email = outbox_row(email_id), email_row(email_id)
    assert entry.state == OutboxState.completed and entry.attempts == 2
    assert "gave up on busy@customer.example after 2 attempts" in email.send_error


def test_an_oauth2_mailbox_sends_with_xoauth2_and_a_refused_token_is_a_clear_error(
    database, dovecot, smtp, monkeypatch
):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch, oauth2=True)
    sent = queue(sender, to=["r@customer.example"], subject="token", body_text="x")

    run_outbox()

    (message,) = smtp.messages()
    assert message.login == sender.address  # logged in with the token, not a password
    assert email_row(sent).send_status == "completed"
    assert len(sent_folder_messages(dovecot, sender)) == 1  # IMAP took the token as well

    monkeypatch.setenv(sender.variable, "an-expired-token")
    refused = queue(sender, to=["r@customer.example"], subject="later", body_text="x")
    state, reports = run_outbox()

    assert state.is_failed() and len(smtp.messages()) == 1
    email = email_row(refused)
    assert email.send_status == "error"
    assert f"login as {sender.address!r} refused; check the password or token" in email.send_error


def test_lines_starting_with_a_dot_arrive_whole(database, dovecot, smtp, monkeypatch):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    # A lone "." ends DATA: unstuffed, the server would cut the message there.
    body = "Agenda:\n.\n.hidden file\n..two dots\nend\n"
    email_id = queue(sender, to=["r@customer.example"], subject="dots", body_text=body)

    run_outbox()

    (message,) = smtp.messages()
    assert message.data == file_store().get(email_row(email_id).raw_key)
    assert parse(message.data).get_content() == body


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "Hello\r\nBcc: victim@evil.example"},
        {"subject": "Hello\nX-Injected: yes"},
        {"to": ["x@customer.example\r\nBcc: victim@evil.example"]},
        {"to": ["Mary\r\nBcc: victim@evil.example <mary@customer.example>"]},
        {"cc": ["a@customer.example,\nb@customer.example"]},
    ],
    ids=["subject-crlf", "subject-lf", "address", "display-name", "cc"],
)
def test_header_injection_is_rejected_and_nothing_is_sent(
    database, dovecot, smtp, monkeypatch, fields
):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    email = {"to": ["x@customer.example"], "subject": "Hello", "body_text": "Hi"} | fields

    with pytest.raises(HeaderInjectionError, match="line break"):
        queue(sender, **email)
    run_outbox()

    assert smtp.messages() == []
    with Session(get_engine()) as session:
        assert session.scalar(select(func.count()).select_from(Email)) == 0


def test_header_injection_from_the_cli_is_one_clear_line(database, dovecot, smtp, monkeypatch):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    result = runner.invoke(
        app,
        [
            "send",
            "--from",
            sender.address,
            "--user",
            sender.owner,
            "--to",
            "x@customer.example",
            "--subject",
            "Hi\r\nBcc: victim@evil.example",
            "--body",
            "Hi",
        ],
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "Subject contains a line break" in result.output
    assert smtp.messages() == []


def test_no_send_rights_on_a_shared_mailbox_is_refused_clearly(
    database, dovecot, smtp, monkeypatch
):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch, owner="alice")
    bob, carol = user_id("bob"), user_id("carol")
    user_id("dave")
    with session_scope() as session:
        box = mailbox_id(sender.address)
        role = Role(name=f"sales-{uuid.uuid4().hex[:6]}")
        session.add(role)
        session.flush()
        session.add(UserRole(user_id=carol, role_id=role.id))
        # bob may read the mailbox but not send; carol's role may send; dave has nothing.
        session.add(MailboxAccess(mailbox_id=box, user_id=bob, can_access_emails=True))
        session.add(MailboxAccess(mailbox_id=box, role_id=role.id, can_send=True))
    email = {"to": ["x@customer.example"], "subject": "Hi", "body_text": "Hi"}

    for refused in ("bob", "dave"):
        with pytest.raises(SendPermissionError, match=f"user '{refused}' may not send from"):
            queue(sender, user=refused, **email)
    queue(sender, user="carol", **email)
    cli = runner.invoke(
        app,
        ["send", "--from", sender.address, "--user", "bob", "--to", "x@customer.example"]
        + ["--subject", "Hi", "--body", "Hi"],
    )

    assert cli.exit_code == 1 and "Traceback" not in cli.output
    assert f"user 'bob' may not send from {sender.address}" in cli.output
    run_outbox()
    assert len(smtp.messages()) == 1  # carol's


def test_reply_threads_and_automatic_mail_is_marked_auto_submitted(
    database, dovecot, smtp, monkeypatch
):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    original = queue(sender, to=["mary@customer.example"], subject="Quote", body_text="Q")
    parent = email_row(original)
    first_reply = queue(
        sender, process=True, reply_to_email_id=original, body_text="Thanks, we got it."
    )
    second_reply = queue(sender, reply_to_email_id=first_reply, body_text="And more.")

    run_outbox()

    by_id = {m.message_id: parse(m.data) for m in smtp.messages()}
    reply = by_id[email_row(first_reply).message_id]
    assert reply["Subject"] == "Re: Quote"
    assert reply["To"].addresses[0].addr_spec == sender.address  # the parent's From
    assert reply["In-Reply-To"] == parent.message_id
    assert reply["References"] == parent.message_id
    assert reply["Auto-Submitted"] == "auto-generated"
    again = by_id[email_row(second_reply).message_id]
    assert again["Subject"] == "Re: Quote"
    assert again["References"].split() == [parent.message_id, reply["Message-ID"]]
    assert again["Auto-Submitted"] is None
    assert outbox_row(first_reply).auto_submitted


def test_attachment_over_max_file_size_is_refused(database, dovecot, smtp, monkeypatch, tmp_path):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    with session_scope() as session:
        session.add(SystemSetting(key="MaxFileSize", value=str(100 * 1024)))
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (100 * 1024 + 1))

    with pytest.raises(AttachmentTooLargeError, match=r"big.bin is 100 KB; the limit .* 100 KB"):
        queue(
            sender,
            to=["x@customer.example"],
            subject="a",
            body_text="a",
            attachments=[NewAttachment.from_path(big)],
        )
    cli = runner.invoke(
        app,
        [
            "send",
            "--from",
            sender.address,
            "--user",
            sender.owner,
            "--to",
            "x@customer.example",
            "--subject",
            "a",
            "--body",
            "a",
            "--attach",
            str(big),
        ],
    )
    assert cli.exit_code == 1 and "MaxFileSize" in cli.output and "Traceback" not in cli.output
    with pytest.raises(OutboxError, match="cid:missing.png"):
        queue(
            sender, to=["x@customer.example"], subject="a", body_html='<img src="cid:missing.png">'
        )


def test_cli_send_queues_prints_the_id_and_outbox_send_delivers(
    database, dovecot, smtp, monkeypatch, tmp_path
):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    page = tmp_path / "offer.html"
    page.write_text('<h1>Offer</h1><p>See <a href="https://northwind.example/o">it</a></p>')
    (tmp_path / "terms.txt").write_text("terms")
    queued = runner.invoke(
        app,
        [
            "send",
            "--from",
            sender.address,
            "--user",
            sender.owner,
            "--to",
            "x@customer.example",
            "--subject",
            "Offer",
            "--html-file",
            str(page),
            "--attach",
            str(tmp_path / "terms.txt"),
        ],
    )
    assert queued.exit_code == 0, queued.output
    email_id = uuid.UUID(queued.output.strip())
    assert email_row(email_id).send_status == "queued"

    sent = runner.invoke(app, ["outbox", "send"])

    assert sent.exit_code == 0, sent.output
    assert f"{sender.address}: 1 sent" in sent.output
    (received,) = smtp.messages()
    message = parse(received.data)
    assert message.get_body(("plain",)).get_content() == (
        "Offer\n\nSee it (https://northwind.example/o)\n"
    )
    assert [a.get_filename() for a in message.iter_attachments()] == ["terms.txt"]


def add_invoice(number: str) -> uuid.UUID:
    with session_scope() as session:
        invoice = Invoice(number=number)
        session.add(invoice)
        session.flush()
        return invoice.id


def test_outgoing_emails_run_through_the_binding_rules(database, dovecot, smtp, monkeypatch):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    invoice_id = add_invoice("Inv-53")
    email_id = queue(sender, to=["x@customer.example"], subject="Your Inv-53", body_text="Hi")

    run_outbox()

    email = email_row(email_id)
    assert email.send_status == "completed"
    assert email.invoice_id == invoice_id
    assert email.processed_at is not None


def _json(output: str):  # type: ignore[no-untyped-def]
    import json

    return json.loads(output)


def test_mailbox_with_sending_disabled_refuses_new_mail_and_keeps_its_queue(
    database, dovecot, smtp, monkeypatch
):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    email_id = queue(sender, to=["x@customer.example"], subject="a", body_text="a")
    _sending(sender.address, enabled=False)

    with pytest.raises(OutboxError, match="sending is disabled"):
        queue(sender, to=["x@customer.example"], subject="b", body_text="b")
    state, reports = run_outbox()

    assert reports[0]["skipped"] == "sending is disabled for this mailbox"
    assert smtp.messages() == [] and email_row(email_id).send_status == "queued"
    _sending(sender.address, enabled=True)
    run_outbox()
    assert len(smtp.messages()) == 1


def _sending(address: str, enabled: bool) -> None:
    from models import Mailbox

    with session_scope() as session:
        mailbox = session.scalar(select(Mailbox).where(Mailbox.address == address))
        mailbox.sending_enabled = enabled
        session.add(mailbox)


def test_sent_copy_that_cannot_be_made_waits_for_the_next_run(database, dovecot, smtp, monkeypatch):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    _imap_port(sender.address, _closed_port())
    email_id = queue(sender, to=["x@customer.example"], subject="a", body_text="a")

    state, reports = run_outbox()

    assert email_row(email_id).send_status == "completed"  # sending does not depend on IMAP
    entry = outbox_row(email_id)
    assert entry.sent_copy_pending and "connection refused" in entry.sent_copy_error
    assert "Sent copy not made" in reports[0]["sent_copy_error"]
    _imap_port(sender.address, dovecot.port)
    run_outbox()
    assert len(sent_folder_messages(dovecot, sender)) == 1
    assert not outbox_row(email_id).sent_copy_pending
    assert len(smtp.messages()) == 1


def _imap_port(address: str, port: int) -> None:
    from models import EmailProvider, Mailbox

    with session_scope() as session:
        mailbox = session.scalar(select(Mailbox).where(Mailbox.address == address))
        provider = session.get(EmailProvider, mailbox.provider_id)
        provider.imap_port = port
        session.add(provider)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_provider_that_files_sent_mail_itself_gets_no_second_copy(
    database, dovecot, smtp, monkeypatch
):
    # Gmail and Outlook.com put what goes through their SMTP into Sent themselves.
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch, files_sent_mail=True)
    invoice_id = add_invoice("Inv-53")
    email_id = queue(sender, to=["x@customer.example"], subject="Your Inv-53", body_text="Hi")

    state, reports = run_outbox()

    assert state.is_completed() and len(smtp.messages()) == 1
    assert sent_folder_messages(dovecot, sender) == []
    assert reports[0]["sent_copies"] == 0
    entry = outbox_row(email_id)
    assert not entry.sent_copy_pending and entry.sent_copy_error is None
    assert email_row(email_id).invoice_id == invoice_id  # the binding rules still run
