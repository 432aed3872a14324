"""Reference data from CSV, links by hand, records from emails, `rules test` (SPEC 4)."""

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session
from typer.testing import CliRunner, Result

from inboxflow.cli import app
from models import Account, Contact, ContactEmail, Email, Invoice, Opportunity, User, get_engine
from tests.test_processing import (  # noqa: F401  (fixtures)
    ADDRESS,
    MARY,
    SAMPLES,
    Crm,
    crm,
    get,
    mailbox,
    message,
    process,
    store,
)

pytestmark = pytest.mark.usefixtures("prefect_api")
runner = CliRunner()
REFERENCE = SAMPLES / "reference"


def run(*args: str) -> Result:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def count(model: type) -> int:
    with Session(get_engine()) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# records import --------------------------------------------------------------------------------


def import_samples() -> list[str]:
    return [
        ok("records", "import", kind, str(REFERENCE / f"{name}.csv"))
        for kind, name in [
            ("Account", "accounts"),
            ("contacts", "contacts"),
            ("User", "users"),
            ("Invoice", "invoices"),
            ("Order", "orders"),
            ("Contract", "contracts"),
        ]
    ]


def test_records_import_loads_the_sample_reference_data_and_again_changes_nothing(
    database: str,
) -> None:
    first = import_samples()
    second = import_samples()

    assert first[0].strip() == "Account: 7 created, 0 updated, 0 unchanged"
    assert first[1].strip() == "Contact: 10 created, 0 updated, 0 unchanged"
    assert all(
        line.endswith(" 0 created, 0 updated, " + line.split()[-2] + " unchanged\n")
        for line in second
    )
    with Session(get_engine()) as session:
        mary = session.scalar(select(Contact).where(Contact.name == "Mary Jones"))
        addresses = {e.address for e in mary.emails}  # type: ignore[union-attr]
        assert addresses == {"mary.jones@adventure-works.example", "mary.jones@example.com"}
        nancy = session.scalar(select(User).where(User.name == "Nancy Davolio"))
        assert nancy.contact_id is not None  # type: ignore[union-attr]
        contoso = session.scalar(select(Account).where(Account.name == "Contoso Manufacturing"))
        assert contoso.domain == "contoso.example"  # type: ignore[union-attr]
        inv53 = session.scalar(select(Invoice).where(Invoice.number == "Inv-53"))
        assert inv53.amount == 8725.0  # type: ignore[union-attr]


def test_records_import_with_a_bad_row_imports_nothing_and_names_file_and_line(
    database: str, tmp_path: Path
) -> None:
    ok("records", "import", "Account", str(REFERENCE / "accounts.csv"))
    path = tmp_path / "people.csv"
    path.write_text(
        "name,email,account\n"
        "Ann Lee,ann@lee.example,Adventure Works\n"
        "Bob Ray,bob@ray.example,No Such Account\n"
        "Cy Doe,not-an-address,\n"
    )

    result = run("records", "import", "Contact", str(path))

    assert result.exit_code == 1
    assert "people.csv: 2 problem(s), nothing imported" in result.stderr
    assert "people.csv:3: Account 'No Such Account' not found" in result.stderr
    assert "people.csv:4: not an email address: not-an-address" in result.stderr
    assert count(Contact) == 0


def test_records_import_rejects_unknown_columns_and_types(database: str, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("number,customer\nInv-1,x\n")

    wrong_column = run("records", "import", "Invoice", str(path))
    wrong_type = run("records", "import", "Ticket", str(path))

    assert wrong_column.exit_code == 1 and "unknown: customer" in wrong_column.stderr
    assert wrong_type.exit_code == 1 and "unknown record type 'Ticket'" in wrong_type.stderr


# links by hand ------------------------------------------------------------------------------------


def test_link_by_number_counts_as_processed(crm: Crm, mailbox) -> None:  # noqa: F811
    (email_id,) = store(mailbox, message(subject="A question"))
    process()
    assert get(email_id).needs_processing

    output = ok("emails", "link", str(email_id), "--invoice", "Inv-53")

    assert "linked to Invoice Inv-53 (processed)" in output
    email = get(email_id)
    assert email.invoice_id == crm.inv53 and email.needs_processing is False
    assert email.linked_by_user == ["invoice_id"]


def test_a_case_linked_by_hand_counts_one_filled_automatically_does_not(
    crm: Crm,  # noqa: F811
    mailbox,  # noqa: F811
) -> None:
    by_hand, automatic = store(mailbox, message(subject="one"), message(subject="two"))
    process()
    ok("emails", "create-record", str(by_hand), "Case")
    with Session(get_engine()) as session:
        case_id = session.get(Email, by_hand).case_id  # type: ignore[union-attr]
        # What a process does: it sets the field, no person involved.
        session.get(Email, automatic).case_id = case_id  # type: ignore[union-attr]
        session.commit()

    process(all_emails=True)

    assert get(by_hand).needs_processing is False
    assert get(automatic).needs_processing is True


def test_link_contact_by_address_brings_its_account(crm: Crm, mailbox) -> None:  # noqa: F811
    (email_id,) = store(mailbox, message(sender="x@unknown.example"))

    ok("emails", "link", str(email_id), "--contact", "olivia.chen@contoso.example")

    email = get(email_id)
    assert (email.contact_id, email.account_id) == (crm.olivia, crm.contoso)


def test_link_errors_are_one_clear_line(crm: Crm, mailbox) -> None:  # noqa: F811
    (email_id,) = store(mailbox, message())

    unknown = run("emails", "link", str(email_id), "--invoice", "Inv-54")
    bad_id = run("emails", "link", "not-a-uuid", "--invoice", "Inv-53")
    missing = run("emails", "link", str(uuid.uuid4()), "--invoice", "Inv-53")
    nothing = run("emails", "link", str(email_id))

    assert (
        unknown.exit_code == 1 and "no Invoice 'Inv-54' (give its id or number)" in unknown.stderr
    )
    assert bad_id.exit_code == 1 and "is not an email id" in bad_id.stderr
    assert missing.exit_code == 1 and "not found" in missing.stderr
    assert nothing.exit_code == 1 and "name at least one record" in nothing.stderr


# records from emails ------------------------------------------------------------------------------


def test_create_contact_from_an_unknown_sender_and_refuse_a_duplicate(
    crm: Crm,  # noqa: F811
    mailbox,  # noqa: F811
) -> None:
    first, second = store(
        mailbox,
        message(sender="Peter Novak <Peter.Novak@novak.example>"),
        message(sender="P. Novak <peter.novak@novak.example>"),
    )
    process()

    created = ok("emails", "create-contact", str(first))
    refused = run("emails", "create-contact", str(second))
    known = run("emails", "create-contact", str(store(mailbox, message(sender=MARY))[0]))

    assert "contact Peter Novak" in created
    email = get(first)
    with Session(get_engine()) as session:
        contact = session.get(Contact, email.contact_id)
        assert contact.name == "Peter Novak"  # type: ignore[union-attr]
        assert [e.address for e in contact.emails] == ["peter.novak@novak.example"]  # type: ignore[union-attr]
    assert refused.exit_code == 1
    assert f"peter.novak@novak.example already belongs to contact Peter Novak ({contact.id})" in (
        refused.stderr
    )
    assert "already belongs to contact Mary Jones" in known.stderr
    # The next email from that address is bound by processing.
    (later,) = store(mailbox, message(sender="peter.novak@novak.example"))
    process()
    assert get(later).contact_id == contact.id


def test_create_contact_refuses_an_outgoing_email(crm: Crm, mailbox) -> None:  # noqa: F811
    (email_id,) = store(mailbox, message(sender=ADDRESS, to="someone@unknown.example"))

    result = run("emails", "create-contact", str(email_id))

    assert result.exit_code == 1 and "outgoing" in result.stderr
    assert count(ContactEmail) == 4  # the crm fixture's


def test_create_opportunity_from_an_email_has_its_customer(crm: Crm, mailbox) -> None:  # noqa: F811
    bound, unknown = store(
        mailbox,
        message(subject="We would like 200 drills"),
        message(subject="Hi", sender="x@unknown.example"),
    )
    process()

    output = ok("emails", "create-record", str(bound), "Opportunity")
    refused = run("emails", "create-record", str(unknown), "Opportunity")

    assert "Opportunity We would like 200 drills" in output
    email = get(bound)
    with Session(get_engine()) as session:
        opportunity = session.get(Opportunity, email.opportunity_id)
    assert (opportunity.contact_id, opportunity.account_id) == (crm.mary, crm.adventure)  # type: ignore[union-attr]
    assert email.needs_processing is False
    assert refused.exit_code == 1 and "no contact or account" in refused.stderr


def test_create_numbered_record_needs_a_new_number(crm: Crm, mailbox) -> None:  # noqa: F811
    (email_id,) = store(mailbox, message(subject="Order please"))
    process()

    without = run("emails", "create-record", str(email_id), "Order")
    taken = run("emails", "create-record", str(email_id), "Invoice", "--number", "Inv-53")
    created = ok("emails", "create-record", str(email_id), "Order", "--number", "Ord-77")

    assert without.exit_code == 1 and "--number" in without.stderr
    assert taken.exit_code == 1 and "Invoice Inv-53 exists already" in taken.stderr
    assert "Order Ord-77" in created and get(email_id).order_id is not None


# rules test: a dry run ----------------------------------------------------------------------------


def test_rules_test_shows_what_a_rule_would_bind_and_changes_nothing(
    crm: Crm,  # noqa: F811
    mailbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    store(
        mailbox,
        message(subject="About Inv-53"),
        message(subject="About Inv-54"),
        message(subject="Again Inv-53"),
        message(subject="Nothing"),
    )
    rule_file = tmp_path / "invoices.yaml"
    rule_file.write_text(
        "rules:\n  - name: Inv\n    pattern: 'Inv-\\d+'\n    target: Invoice.Number\n"
        "    enabled: false\n"
    )
    with Session(get_engine()) as session:
        before = session.scalars(select(Email.invoice_id)).all()

    listed = json.loads(ok("rules", "test", str(rule_file), "--json"))
    limited = ok("rules", "test", str(rule_file), "--limit", "1")

    assert sorted(row["subject"] for row in listed) == ["About Inv-53", "Again Inv-53"]
    assert {row["outcome"] for row in listed} == {"would bind"}
    assert {row["value"] for row in listed} == {"Inv-53"}
    assert "nothing changed" in limited
    assert limited.count("Inv-53") == 2  # one row: subject and value
    with Session(get_engine()) as session:
        assert session.scalars(select(Email.invoice_id)).all() == before
        assert session.scalar(select(func.count()).where(Email.processed_at.is_not(None))) == 0
