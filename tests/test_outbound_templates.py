"""Email templates (SPEC 5): macros from a source record, the sandbox, and template files."""

import uuid
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session
from typer.testing import CliRunner

from inboxflow.cli import app
from models import (
    Account,
    AccountEmail,
    Case,
    Contact,
    ContactEmail,
    EmailTemplate,
    get_engine,
    session_scope,
)
from tasks.errors import HeaderInjectionError, TemplateError
from tasks.templates import DEFAULT_TEMPLATES_DIR, load_template_files
from tests.support.outbound import add_sending_mailbox, email_row, outbox_row, queue, run_outbox

pytestmark = pytest.mark.usefixtures("prefect_api")
runner = CliRunner()


def add_template(name: str, subject: str, body: str, source: str | None) -> None:
    with session_scope() as session:
        session.add(EmailTemplate(name=name, subject=subject, body=body, source_object=source))


def add_customer(name: str, address: str, account_name: str = "Adventure Works") -> uuid.UUID:
    with session_scope() as session:
        account = Account(name=account_name)
        session.add(account)
        session.flush()
        session.add(AccountEmail(account_id=account.id, address=f"info@{account_name[:3]}.example"))
        contact = Contact(name=name, account_id=account.id)
        contact.emails = [ContactEmail(address=address)]
        session.add(contact)
        session.flush()
        return contact.id


def test_template_with_macros_from_a_contact_renders_the_contacts_name(
    database, dovecot, smtp, monkeypatch
):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch, owner="Nancy Davolio")
    mary = add_customer("Mary Jones", "mary.jones@adventure-works.example")
    with session_scope() as session:
        report = load_template_files(session)  # the bundled templates/ folder
    assert "lead-acknowledgement" in report.created and not report.problems

    email_id = queue(sender, template="lead-acknowledgement", source=f"Contact:{mary}")
    run_outbox()

    (received,) = smtp.messages()
    assert received.rcpt_tos == ["mary.jones@adventure-works.example"]  # from the contact
    message = BytesParser(policy=policy.default).parsebytes(received.data)
    assert message["Subject"] == "Thank you for your enquiry, Mary Jones"
    html = message.get_body(("html",)).get_content()
    assert "<p>Dear Mary Jones,</p>" in html
    assert "Nancy Davolio will get back to you" in html  # the sender's name
    assert "your enquiry for Adventure Works" in html  # the contact's account
    text = message.get_body(("plain",)).get_content()
    assert "Dear Mary Jones," in text
    entry = outbox_row(email_id)
    assert (entry.template_name, entry.source_object, entry.source_id) == (
        "lead-acknowledgement",
        "Contact",
        mary,
    )


def test_template_whose_source_does_not_match_the_record_is_refused(
    database, dovecot, smtp, monkeypatch
):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    mary = add_customer("Mary Jones", "mary@customer.example")
    with Session(get_engine()) as session:
        account = session.scalar(select(Account.id))
    add_template("contact-only", "Hi {{ contact.name }}", "<p>Hi</p>", "Contact")
    add_template("any", "Hello", "<p>Hello {{ recipient.name or 'there' }}</p>", None)

    with pytest.raises(TemplateError, match="applies to Contact records, not to Account records"):
        queue(sender, template="contact-only", source=f"Account:{account}")
    with pytest.raises(TemplateError, match="--source Contact:ID"):
        queue(sender, template="contact-only", to=["x@customer.example"])
    with pytest.raises(TemplateError, match="no Contact with id"):
        queue(sender, template="contact-only", source=f"Contact:{uuid.uuid4()}")
    cli = runner.invoke(
        app,
        ["send", "--from", sender.address, "--user", sender.owner, "--template", "contact-only"]
        + ["--source", f"Account:{account}"],
    )
    assert cli.exit_code == 1 and "Traceback" not in cli.output
    assert "applies to Contact records, not to Account records" in cli.output
    # A template without a source applies to any email.
    queue(sender, template="any", to=["x@customer.example"])
    queue(sender, template="contact-only", source=f"contact:{mary}")
    run_outbox()
    assert len(smtp.messages()) == 2


def test_template_macros_are_escaped_strict_and_sandboxed(database, dovecot, smtp, monkeypatch):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    bobby = add_customer("<script>alert(1)</script> Bobby", "bobby@customer.example")
    add_template("hello", "Hello {{ contact.name }}", "<p>Dear {{ contact.name }}</p>", "Contact")
    add_template("typo", "Hi", "<p>{{ contact.nmae }}</p>", "Contact")
    add_template("escape", "Hi", "{{ ''.__class__.__mro__[1].__subclasses__() }}", None)
    add_template("inject", "{{ contact.name }}", "<p>x</p>", "Contact")
    evil = add_customer("Eve\r\nBcc: victim@evil.example", "eve@customer.example")

    email_id = queue(sender, template="hello", source=f"Contact:{bobby}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Bobby" in email_row(email_id).body_html
    assert email_row(email_id).subject == "Hello <script>alert(1)</script> Bobby"
    with pytest.raises(TemplateError, match="has no attribute 'nmae'"):
        queue(sender, template="typo", source=f"Contact:{bobby}")
    with pytest.raises(TemplateError, match="unsafe"):
        queue(sender, template="escape", to=["x@customer.example"])
    with pytest.raises(HeaderInjectionError):
        queue(sender, template="inject", source=f"Contact:{evil}")
    run_outbox()
    assert len(smtp.messages()) == 1


def test_template_files_load_and_broken_ones_are_reported_with_file_and_line(
    database, tmp_path: Path
):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "welcome.html").write_text(
        "---\nsubject: Welcome {{ recipient.name }}\nsource: contact\n---\n<p>Hi</p>\n"
    )
    (folder / "no-header.html").write_text("<p>Hi</p>\n")
    (folder / "bad-key.html").write_text("---\nsubject: x\ncolour: red\n---\n<p>x</p>\n")
    (folder / "bad-source.html").write_text("---\nsubject: x\nsource: Planet\n---\n<p>x</p>\n")
    (folder / "bad-syntax.html").write_text("---\nsubject: x\n---\n<p>ok</p>\n<p>{{ oops </p>\n")

    with session_scope() as session:
        report = load_template_files(session, folder)

    assert report.created == ["welcome"]
    problems = sorted(str(p) for p in report.problems)
    assert any(
        p.endswith("bad-key.html:3: colour: Extra inputs are not permitted") for p in problems
    )
    assert any("bad-source.html:3: source:" in p and "one of Contact" in p for p in problems)
    assert any("bad-syntax.html:5: body:" in p for p in problems)
    assert any("no-header.html:1: must start with a '---' line" in p for p in problems)
    with Session(get_engine()) as session:
        row = session.scalar(select(EmailTemplate).where(EmailTemplate.name == "welcome"))
    assert row is not None and row.source_object == "Contact"

    (folder / "welcome.html").write_text("---\nsubject: Welcome!\n---\n<p>Hello</p>\n")
    cli = runner.invoke(app, ["templates", "load", str(folder)])
    assert cli.exit_code == 1  # problems are reported, the good file still loads
    assert "0 created, 1 updated, 0 unchanged, 4 with problems" in cli.output
    assert "bad-syntax.html:5" in cli.output
    listed = runner.invoke(app, ["templates", "list", "--json"])
    assert '"subject": "Welcome!"' in listed.output


def test_bundled_templates_all_load(database):
    with session_scope() as session:
        report = load_template_files(session, DEFAULT_TEMPLATES_DIR)
    assert not report.problems
    assert sorted(report.created) == ["case-registered", "generic-reply", "lead-acknowledgement"]


def test_case_template_addresses_the_cases_contact(database, dovecot, smtp, monkeypatch):
    sender = add_sending_mailbox(dovecot, smtp, monkeypatch)
    olivia = add_customer("Olivia Chen", "olivia@contoso.example", "Contoso")
    with session_scope() as session:
        load_template_files(session)
        case = Case(number="CS-1001", subject="Broken pump", contact_id=olivia)
        session.add(case)
        session.flush()
        case_id = case.id

    email_id = queue(sender, template="case-registered", source=f"Case:{case_id}")

    email = email_row(email_id)
    assert email.to_addresses == ["olivia@contoso.example"]
    assert email.subject == "Case CS-1001 registered: Broken pump"
    assert "Dear Olivia Chen" in email.body_html
