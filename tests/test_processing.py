"""Initial processing (SPEC 4) on a real database: who an email is about, rules, threads, done?"""

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session
from typer.testing import CliRunner

from inboxflow.cli import app
from models import (
    Account,
    AccountEmail,
    Contact,
    ContactEmail,
    Email,
    FirstSyncPeriod,
    Invoice,
    LoginFormat,
    Order,
    Security,
    User,
    get_engine,
    session_scope,
)
from tasks.mailboxes import add_mailbox, add_provider, mailbox_ref
from tasks.parsing import parse_message
from tasks.processing import needs_processing
from tasks.storing import IncomingEmail, MailboxRef, store_emails
from tasks.sync import file_store

pytestmark = pytest.mark.usefixtures("prefect_api")
runner = CliRunner()
ADDRESS = "sales@northwind.example"
MARY = "Mary Jones <mary.jones@adventure-works.example>"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


# helpers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crm:
    adventure: uuid.UUID  # account, address info@adventure-works.example
    contoso: uuid.UUID  # account, address accounts-payable@contoso.example
    mary: uuid.UUID  # customer contact of Adventure Works, two addresses
    olivia: uuid.UUID  # customer contact of Contoso
    nancy: uuid.UUID  # contact of the employee Nancy Davolio
    inv53: uuid.UUID
    ord12: uuid.UUID


@pytest.fixture
def mailbox(database: str) -> MailboxRef:
    with session_scope() as session:
        add_provider(
            session,
            "northwind",
            "imap.northwind.example:993",
            Security.ssl,
            None,
            Security.ssl,
            40,
            LoginFormat.email,
            ["northwind.example"],
        )
        add_mailbox(
            session,
            ADDRESS,
            "env:NW_PASSWORD",
            "northwind",
            None,
            None,
            FirstSyncPeriod.all,
            "Nancy Davolio",
            False,
        )
        return mailbox_ref(session, ADDRESS)


@pytest.fixture
def crm(mailbox: MailboxRef) -> Crm:
    with session_scope() as session:
        adventure = account(session, "Adventure Works", "info@adventure-works.example")
        contoso = account(session, "Contoso", "accounts-payable@contoso.example")
        northwind = account(session, "Northwind Tools", "info@northwind.example")
        mary = contact(
            session,
            "Mary Jones",
            adventure,
            "mary.jones@adventure-works.example",
            "mary.jones@example.com",
        )
        olivia = contact(session, "Olivia Chen", contoso, "olivia.chen@contoso.example")
        nancy = contact(session, "Nancy Davolio", northwind, "nancy.davolio@northwind.example")
        employee = session.scalar(select(User).where(User.name == "Nancy Davolio"))
        employee.contact_id = nancy  # type: ignore[union-attr]
        inv53, ord12 = Invoice(number="Inv-53", account_id=adventure), Order(number="Ord-12")
        session.add_all([inv53, ord12])
        session.flush()
        return Crm(adventure, contoso, mary, olivia, nancy, inv53.id, ord12.id)


def account(session: Session, name: str, *addresses: str) -> uuid.UUID:
    record = Account(name=name, emails=[AccountEmail(address=a) for a in addresses])
    session.add(record)
    session.flush()
    return record.id


def contact(session: Session, name: str, account_id: uuid.UUID, *addresses: str) -> uuid.UUID:
    record = Contact(
        name=name, account_id=account_id, emails=[ContactEmail(address=a) for a in addresses]
    )
    session.add(record)
    session.flush()
    return record.id


_counter = iter(range(1, 10**6))


def message(
    subject: str = "Hello",
    sender: str = MARY,
    to: str = "Northwind Sales <sales@northwind.example>",
    cc: str | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    headers: dict[str, str] | None = None,
    body: str = "Hello,\nplease see the subject.\n",
) -> bytes:
    n = next(_counter)
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Date"] = format_datetime(START + timedelta(minutes=n))
    msg["Message-ID"] = message_id or f"<m{n}.{uuid.uuid4().hex[:8]}@test.example>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def store(mailbox: MailboxRef, *raws: bytes) -> list[uuid.UUID]:
    """Store messages through the ingest path (parsing, storing), unprocessed."""
    files = file_store()
    incoming = [IncomingEmail(parse_message(raw, files, 10**7), "INBOX") for raw in raws]
    with Session(get_engine(), expire_on_commit=False) as session:
        return store_emails(session, mailbox, incoming).stored_ids


def process(**parameters: object) -> dict:
    """Run the initial-processing flow; its summary."""
    from flows.initial_processing import initial_processing

    state = initial_processing(**parameters, return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def get(email_id: uuid.UUID) -> Email:
    with Session(get_engine()) as session:
        return session.get(Email, email_id)  # type: ignore[return-value]


def snapshot() -> list[dict]:
    with Session(get_engine()) as session:
        table = Email.__table__  # type: ignore[attr-defined]
        return [dict(row._mapping) for row in session.execute(select(table).order_by(table.c.id))]


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


# 1. who an email is about ---------------------------------------------------------------------


def test_from_matching_a_contact_sets_contact_and_account(crm: Crm, mailbox: MailboxRef) -> None:
    # Mary's second address, written in capitals: matching ignores case.
    (email_id,) = store(mailbox, message(sender="Mary Jones <Mary.Jones@Example.COM>"))

    process()

    email = get(email_id)
    assert (email.contact_id, email.account_id) == (crm.mary, crm.adventure)
    assert email.owner_id is not None and email.processed_at is not None


def test_unknown_sender_cc_customer_binds_that_contact(crm: Crm, mailbox: MailboxRef) -> None:
    (email_id,) = store(
        mailbox,
        message(
            sender="Someone <someone@unknown.example>",
            to="sales@northwind.example",
            cc="Nancy <nancy.davolio@northwind.example>, Olivia <olivia.chen@contoso.example>",
        ),
    )

    process()

    email = get(email_id)
    assert (email.contact_id, email.account_id) == (crm.olivia, crm.contoso)


def test_recipient_matching_only_an_employee_binds_nothing(crm: Crm, mailbox: MailboxRef) -> None:
    (email_id,) = store(
        mailbox,
        message(sender="Someone <someone@unknown.example>", to="nancy.davolio@northwind.example"),
    )

    process()

    email = get(email_id)
    assert (email.contact_id, email.account_id) == (None, None)
    assert email.needs_processing


def test_account_address_sets_account_only(crm: Crm, mailbox: MailboxRef) -> None:
    (email_id,) = store(mailbox, message(sender="AP <accounts-payable@contoso.example>"))

    process()

    email = get(email_id)
    assert (email.contact_id, email.account_id) == (None, crm.contoso)


def test_outgoing_email_binds_the_customer_it_was_sent_to(crm: Crm, mailbox: MailboxRef) -> None:
    (email_id,) = store(mailbox, message(sender=f"Sales <{ADDRESS}>", to=MARY))

    process()

    email = get(email_id)
    assert str(email.direction) == "outgoing"
    assert (email.contact_id, email.account_id) == (crm.mary, crm.adventure)


# 2. binding rules ---------------------------------------------------------------------------------


def test_invoice_number_in_subject_binds_the_invoice_and_clears_needs_processing(
    crm: Crm, mailbox: MailboxRef
) -> None:
    known, unknown = store(
        mailbox,
        message(subject="Additional information for Inv-53"),
        message(subject="Additional information for Inv-54"),
    )

    summary = process()

    bound, not_bound = get(known), get(unknown)
    assert bound.invoice_id == crm.inv53
    assert bound.needs_processing is False
    assert bound.bound_by_rule == "Invoice number in the subject"
    assert not_bound.invoice_id is None
    assert not_bound.needs_processing is True and not_bound.bound_by_rule is None
    assert summary["bound_by_rules"] == 1 and summary["need_processing"] == 1


def test_rules_bind_outgoing_emails_too_and_several_records_at_once(
    crm: Crm, mailbox: MailboxRef
) -> None:
    (email_id,) = store(
        mailbox,
        message(subject="Re: Inv-99, Inv-53 and Ord-12", sender=f"Sales <{ADDRESS}>", to=MARY),
    )

    process()

    email = get(email_id)
    assert (email.invoice_id, email.order_id) == (crm.inv53, crm.ord12)
    assert not email.needs_processing


def test_number_only_in_the_body_is_not_bound_by_a_subject_rule(
    crm: Crm, mailbox: MailboxRef
) -> None:
    (email_id,) = store(mailbox, message(subject="A question", body="About Inv-53 ..."))

    process()

    assert get(email_id).invoice_id is None


def test_a_rule_file_with_a_broken_rule_still_applies_the_good_one(
    crm: Crm, mailbox: MailboxRef, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "mixed.yaml").write_text(
        "rules:\n"
        "  - name: Broken\n"
        "    pattern: '(Inv-\\d+'\n"
        "    target: Invoice.Number\n"
        "  - name: Orders\n"
        "    pattern: '\\bOrd-\\d+\\b'\n"
        "    target: Order.Number\n"
    )
    (email_id,) = store(mailbox, message(subject="Where is Ord-12? And Inv-53?"))

    summary = process(rules_dir=str(rules))

    (problem,) = summary["rule_problems"]
    assert "mixed.yaml:3:" in problem and "Broken" in problem and "missing )" in problem
    email = get(email_id)
    assert (email.order_id, email.invoice_id) == (crm.ord12, None)
    assert email.bound_by_rule == "Orders"


def test_the_binding_rule_table_mirrors_the_rules_a_run_loaded(
    crm: Crm, mailbox: MailboxRef, tmp_path: Path
) -> None:
    # SPEC 2: BindingRule rows are loaded from rules/; Email.bound_by_rule names one of them.
    rules = tmp_path / "rules"
    rules.mkdir()
    rule_file = rules / "numbers.yaml"
    rule_file.write_text(
        "rules:\n"
        "  - name: Orders\n"
        "    pattern: '\\bOrd-\\d+\\b'\n"
        "    target: Order.Number\n"
        "  - name: Invoices in the body\n"
        "    pattern: '\\bInv-\\d+\\b'\n"
        "    column: Body\n"
        "    target: Invoice.Number\n"
        "    enabled: false\n"
    )
    (email_id,) = store(mailbox, message(subject="Where is Ord-12?"))

    process(rules_dir=str(rules))

    assert get(email_id).bound_by_rule == "Orders"
    assert rule_rows() == {
        "Orders": ("\\bOrd-\\d+\\b", "subject", "Order", "number", True, f"{rule_file}:2"),
        "Invoices in the body": (
            "\\bInv-\\d+\\b",
            "body",
            "Invoice",
            "number",
            False,
            f"{rule_file}:5",
        ),
    }

    # The analyst edits the file: a changed rule is updated, a removed one goes.
    rule_file.write_text(
        "rules:\n  - name: Orders\n    pattern: 'Ord-\\d{2}'\n    target: Order.Number\n"
    )
    process(rules_dir=str(rules))

    assert rule_rows() == {
        "Orders": ("Ord-\\d{2}", "subject", "Order", "number", True, f"{rule_file}:2")
    }


def rule_rows() -> dict[str, tuple]:
    from models import BindingRule

    with Session(get_engine()) as session:
        return {
            rule.name: (
                rule.pattern,
                rule.column,
                rule.target_object,
                rule.target_column,
                rule.enabled,
                rule.source_file,
            )
            for rule in session.scalars(select(BindingRule))
        }


def test_catastrophic_pattern_on_a_long_subject_finishes_in_bounded_time(
    crm: Crm, mailbox: MailboxRef, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "evil.yaml").write_text(
        "rules:\n  - name: Evil\n    pattern: '(a+)+$'\n    target: Order.Number\n"
    )
    store(mailbox, *(message(subject="a" * 30_000 + "!") for _ in range(20)))

    started = time.perf_counter()
    summary = process(rules_dir=str(rules))

    # Python's re needs longer than the age of the universe for one of these subjects.
    assert time.perf_counter() - started < 10
    assert summary["emails"] == 20 and summary["bound_by_rules"] == 0


# 3. threads ------------------------------------------------------------------------------------


def test_reply_joins_the_thread_and_inherits_its_connection_fields(
    crm: Crm, mailbox: MailboxRef
) -> None:
    (original,) = store(
        mailbox, message(subject="Additional information for Inv-53", message_id="<orig@x>")
    )
    process()
    (reply,) = store(
        mailbox,
        message(
            subject="Re: Additional information",
            sender=f"Sales <{ADDRESS}>",
            to="Someone <someone@unknown.example>",
            in_reply_to="<orig@x>",
            references=["<orig@x>"],
        ),
    )

    process()

    first, answer = get(original), get(reply)
    assert first.thread_id == original
    assert answer.thread_id == original
    assert answer.invoice_id == crm.inv53
    assert answer.bound_by_rule is None  # inherited, not bound by a rule itself


def test_a_thread_in_one_batch_and_by_references_only(crm: Crm, mailbox: MailboxRef) -> None:
    a, b, c = store(
        mailbox,
        message(subject="Ord-12 question", message_id="<a@x>"),
        message(subject="Re: question", in_reply_to="<a@x>", message_id="<b@x>"),
        message(subject="Re: Re: question", references=["<a@x>", "<b@x>"]),
    )

    process()

    assert {get(a).thread_id, get(b).thread_id, get(c).thread_id} == {a}
    assert get(c).order_id == crm.ord12


def test_hundreds_of_references_cost_bounded_work(crm: Crm, mailbox: MailboxRef) -> None:
    (root,) = store(mailbox, message(subject="Start", message_id="<root@x>"))
    references = ["<root@x>", *(f"<gone-{i}@x>" for i in range(500))]
    (reply,) = store(mailbox, message(subject="Re: Start", references=references))

    process()

    assert get(reply).thread_id == root


def test_a_reply_stored_before_its_parent_joins_the_thread_when_the_parent_arrives(
    crm: Crm, mailbox: MailboxRef
) -> None:
    (reply,) = store(mailbox, message(subject="Re: late", in_reply_to="<late-parent@x>"))
    process()
    assert get(reply).thread_id == reply
    (parent,) = store(mailbox, message(subject="late", message_id="<late-parent@x>"))

    process()

    assert get(parent).thread_id == parent
    assert get(reply).thread_id == parent


def test_a_reply_naming_its_parent_only_in_references_joins_it_when_it_arrives(
    crm: Crm, mailbox: MailboxRef
) -> None:
    # Some clients send References without In-Reply-To; the last reference is the parent.
    (reply,) = store(mailbox, message(subject="Re: late", references=["<root@x>", "<late-refs@x>"]))
    process()
    assert get(reply).thread_id == reply
    (parent,) = store(mailbox, message(subject="late", message_id="<late-refs@x>"))

    process()

    assert get(reply).thread_id == parent


def test_a_reply_stored_before_its_parent_inherits_the_parents_links_when_it_arrives(
    crm: Crm, mailbox: MailboxRef
) -> None:
    (reply,) = store(
        mailbox, message(subject="Re: late", message_id="<r1@x>", in_reply_to="<late-inv@x>")
    )
    (reply_to_reply,) = store(
        mailbox,
        message(
            subject="Re: Re: late", in_reply_to="<r1@x>", references=["<late-inv@x>", "<r1@x>"]
        ),
    )
    process()
    assert get(reply).invoice_id is None and get(reply).needs_processing
    (parent,) = store(mailbox, message(subject="About Inv-53", message_id="<late-inv@x>"))

    process()

    assert get(parent).invoice_id == crm.inv53
    for early in (reply, reply_to_reply):
        # Mary is a known contact: with an invoice inherited, nobody has to look at it.
        assert (get(early).thread_id, get(early).invoice_id) == (parent, crm.inv53)
        assert not get(early).needs_processing


# 4. auto-replies and bounces -------------------------------------------------------------------

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"Auto-Submitted": "auto-replied"}, "auto-reply"),
        ({"Auto-Submitted": "auto-generated"}, "auto-generated"),
        ({"Auto-Submitted": "no"}, None),
        ({"Precedence": "auto_reply"}, "auto-reply"),
        ({"Precedence": "bulk"}, "bulk"),
        ({"Precedence": "junk"}, "bulk"),
        ({"X-Auto-Response-Suppress": "OOF, AutoReply"}, "auto-generated"),
        ({}, None),
    ],
)
def test_machine_written_mail_is_flagged_at_ingest(headers: dict, kind: str | None) -> None:
    parsed = parse_message(message(headers=headers), file_store(), 10**7)
    assert parsed.auto_kind == kind


@pytest.mark.parametrize(
    ("sample", "kind"),
    [
        ("04-out-of-office-auto-reply.eml", "auto-reply"),
        ("15-bounce-delivery-status.eml", "bounce"),
        ("01-price-enquiry.eml", None),
    ],
)
def test_sample_auto_reply_and_bounce_are_flagged(sample: str, kind: str | None) -> None:
    raw = (SAMPLES / "mailbox" / sample).read_bytes()
    assert parse_message(raw, file_store(), 10**7).auto_kind == kind


# 5. needs processing, idempotence, marking ---------------------------------------------------


@pytest.mark.parametrize(
    ("links", "by_hand", "rule", "expected"),
    [
        ({}, [], None, True),
        ({"contact_id": 1}, [], None, True),
        ({"contact_id": 1, "lead_id": 1}, [], None, False),
        ({"account_id": 1, "opportunity_id": 1}, [], None, False),
        ({"invoice_id": 1}, [], None, True),  # no contact or account
        ({"contact_id": 1, "case_id": 1}, [], None, True),  # a Case filled automatically
        ({"contact_id": 1, "case_id": 1}, ["case_id"], None, False),  # a Case linked by hand
        ({"contact_id": 1}, ["contact_id"], None, False),  # a Contact linked by hand
        ({}, [], "Invoice number", False),  # bound by a rule
    ],
)
def test_needs_processing_rule(
    links: dict, by_hand: list, rule: str | None, expected: bool
) -> None:
    assert needs_processing(links, by_hand, rule) is expected


def test_processing_twice_changes_nothing(crm: Crm, mailbox: MailboxRef) -> None:
    store(
        mailbox,
        message(subject="Inv-53", message_id="<p1@x>"),
        message(subject="Re: Inv-53", in_reply_to="<p1@x>", sender=f"Sales <{ADDRESS}>", to=MARY),
        message(subject="Hello", sender="x@unknown.example"),
        message(subject="Out of office", headers={"Auto-Submitted": "auto-replied"}),
    )
    first = process()
    after_first = snapshot()

    again = process()
    everything_again = process(all_emails=True)

    assert first["emails"] == 4 and first["changed"] == 4
    assert again["emails"] == 0
    assert everything_again["emails"] == 4 and everything_again["changed"] == 0
    assert snapshot() == after_first


def test_reference_data_loaded_later_binds_with_process_all(mailbox: MailboxRef) -> None:
    (email_id,) = store(mailbox, message(subject="Inv-53"))
    process()
    assert get(email_id).contact_id is None
    with session_scope() as session:
        adventure = account(session, "Adventure Works")
        mary = contact(session, "Mary Jones", adventure, "mary.jones@adventure-works.example")
        session.add(Invoice(number="Inv-53"))

    process(all_emails=True)

    assert (get(email_id).contact_id, get(email_id).invoice_id is not None) == (mary, True)


def test_mark_processed_thread_clears_the_whole_thread(crm: Crm, mailbox: MailboxRef) -> None:
    ids = store(
        mailbox,
        message(subject="Question", message_id="<t1@x>"),
        message(subject="Re: Question", in_reply_to="<t1@x>", message_id="<t2@x>"),
        message(subject="Re: Re: Question", in_reply_to="<t2@x>"),
        message(subject="Another matter"),
    )
    process()
    assert all(get(i).needs_processing for i in ids)

    output = cli("emails", "mark-processed", str(ids[1]), "--thread")

    assert "3 email(s) in its thread marked processed" in output
    assert [get(i).needs_processing for i in ids] == [False, False, False, True]


def test_mark_processed_one_email_and_a_processing_run_keep_it_processed(
    crm: Crm, mailbox: MailboxRef
) -> None:
    (email_id,) = store(mailbox, message(subject="Nothing to bind"))
    cli("emails", "mark-processed", str(email_id))

    process()

    assert get(email_id).needs_processing is False


def test_list_filters(crm: Crm, mailbox: MailboxRef) -> None:
    bound, open_, outgoing = store(
        mailbox,
        message(subject="Inv-53 paid"),
        message(subject="Just a question"),
        message(subject="Our offer", sender=f"Sales <{ADDRESS}>", to=MARY),
    )
    process()

    def subjects(*flags: str) -> set[str]:
        return {e["subject"] for e in json.loads(cli("emails", "list", "--json", *flags))}

    assert subjects("--processed") == {"Inv-53 paid"}
    assert subjects("--unprocessed") == {"Just a question", "Our offer"}
    assert subjects("--outbound") == {"Our offer"}
    (row,) = json.loads(cli("emails", "list", "--json", "--processed"))
    assert row["linked to"] == "Mary Jones / Adventure Works / Invoice Inv-53"


# the whole story, through the CLI ----------------------------------------------------------------


def test_process_emails_command_reports_what_it_did(crm: Crm, mailbox: MailboxRef) -> None:
    store(mailbox, message(subject="Inv-53"), message(subject="?", sender="x@unknown.example"))

    output = cli("process-emails")

    assert "2 emails processed (2 changed)" in output
    assert "1 bound by rules" in output and "1 still need processing" in output
    assert "0 emails processed" in cli("process-emails")


def test_sample_mailbox_binds_as_the_samples_readme_says(mailbox: MailboxRef) -> None:
    for record_type, name in [
        ("Account", "accounts"),
        ("Contact", "contacts"),
        ("User", "users"),
        ("Invoice", "invoices"),
        ("Order", "orders"),
        ("Contract", "contracts"),
    ]:
        cli("records", "import", record_type, str(SAMPLES / "reference" / f"{name}.csv"))

    output = cli("import", str(SAMPLES / "mailbox"), "--mailbox", ADDRESS)

    assert "20 messages read: 20 stored" in output
    rows = json.loads(cli("emails", "list", "--json", "--limit", "0"))

    def row(start: str) -> dict:
        (found,) = [r for r in rows if r["subject"].startswith(start)]
        return found

    assert row("Price enquiry")["linked to"] == "Mary Jones / Adventure Works"
    assert row("Re: Price enquiry")["contact"] == "Mary Jones"  # outgoing: bound by To
    assert row("Out of office")["auto"] == "auto-reply"
    assert row("Re: Price enquiry")["thread_id"] == row("Price enquiry")["thread_id"]
    assert row("Out of office")["thread_id"] == row("Price enquiry")["thread_id"]
    # 06 goes to Hélène with Nancy (an employee) in Cc: bound to Hélène.
    support = [r for r in rows if "perceuse" in r["subject"]]
    assert {r["contact"] for r in support} == {"Hélène Dupont"}
    assert len({r["thread_id"] for r in support}) == 1
    assert row("Demo request")["linked to"] == ""
    assert row("Delivery date for Ord-12")["records"] == ["Order Ord-12"]
    assert row("Renewal of contract")["records"] == ["Contract CTR-2024-001"]
    assert row("Question about Inv-54")["linked to"] == "Contoso Manufacturing"
    assert row("Question about Inv-54")["needs_processing"] is True
    assert row("Undelivered Mail")["auto"] == "bounce"
    assert row("Additional information")["records"] == ["Invoice Inv-53"]
    assert row("Re: Additional information")["records"] == ["Invoice Inv-53"]
    assert row("Re: Additional")["thread_id"] == row("Additional information")["thread_id"]
    # Numbers only in a body (Inv-55 in 07, Ord-13 in 09, Ord-12 in 16) are not bound.
    assert all(r["records"] == [] for r in support)
    assert row("WG: Beschädigte Kartons")["records"] == []
    processed = {r["subject"] for r in rows if not r["needs_processing"]}
    assert len(processed) == 4, processed
