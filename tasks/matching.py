"""Who an email is about: its sender or recipients matched to contacts and accounts (SPEC 4.1-2).

1. From against the email addresses of contacts and accounts;
2. no match: To, Cc and Bcc, in that order.

Contacts linked to a user (employees) are never chosen, in either step: an
employee's own address says nothing about which customer an email concerns (a
colleague in Cc, an outgoing email from one's own mailbox), so matching goes on
to the other addresses. A contact beats an account address; a contact brings its
account along.

Addresses are stored lower-case (contact_email, account_email and the parsed
email alike), so an indexed ``IN`` compares them case-insensitively. Work per
batch: one query per 900 distinct addresses and table, whatever the number of
contacts. Lookups run on the session's connection (Core): for these small
queries the ORM layer would cost more than the database.
"""

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlmodel import Session

from models import AccountEmail, Contact, ContactEmail, User

CHUNK = 900  # bound parameters per IN query (SQLite allows 32766, PostgreSQL 65535)


@dataclass(frozen=True)
class Party:
    """The contact and/or account an email is about."""

    contact_id: uuid.UUID | None
    account_id: uuid.UUID | None


@dataclass
class AddressBook:
    """What a set of addresses belongs to: customer contacts (with their account) and accounts."""

    contacts: dict[str, Party] = field(default_factory=dict)
    accounts: dict[str, uuid.UUID] = field(default_factory=dict)

    def party(self, address: str) -> Party | None:
        """The contact with this address, or else the account with it."""
        contact = self.contacts.get(address)
        if contact is not None:
            if contact.account_id is None and address in self.accounts:
                return Party(contact.contact_id, self.accounts[address])
            return contact
        account = self.accounts.get(address)
        return Party(None, account) if account is not None else None


def match_parties(
    session: Session, senders: Sequence[str], recipients_of: Callable[[int], Sequence[str]]
) -> list[Party | None]:
    """For each email, the party it is about (From first, then To/Cc/Bcc), or None.

    ``recipients_of(i)`` gives email i's To, Cc and Bcc addresses; it is only asked
    for emails whose sender matched nothing.
    """
    employees = employee_contact_ids(session)
    book = look_up(session, {s for s in senders if s}, employees)
    found: list[Party | None] = [book.party(s) if s else None for s in senders]
    unmatched = {i: recipients_of(i) for i, party in enumerate(found) if party is None}
    wanted = {a for addresses in unmatched.values() for a in addresses if a}
    if wanted:
        book = look_up(session, wanted, employees)
        for i, addresses in unmatched.items():
            found[i] = first_party(book, addresses)
    return found


def first_party(book: AddressBook, addresses: Iterable[str]) -> Party | None:
    """The first recipient that is a contact; failing that, the first that is an account."""
    addresses = list(addresses)
    for address in addresses:
        if address in book.contacts:
            return book.party(address)
    for address in addresses:
        if address in book.accounts:
            return book.party(address)
    return None


def employee_contact_ids(session: Session) -> set[uuid.UUID]:
    return set(session.scalars(select(User.contact_id).where(User.contact_id.is_not(None))))


def look_up(session: Session, addresses: set[str], employees: set[uuid.UUID]) -> AddressBook:
    """Contacts (not employees) and accounts owning these addresses, in indexed IN queries."""
    book = AddressBook()
    ordered = sorted(addresses)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        # Oldest first, so that an address two contacts share always picks the same one.
        contacts = session.connection().execute(
            select(ContactEmail.address, Contact.id, Contact.account_id)
            .join(Contact, Contact.id == ContactEmail.contact_id)
            .where(ContactEmail.address.in_(chunk))
            .order_by(Contact.created_at, Contact.id)
        )
        for address, contact_id, account_id in contacts:
            if contact_id not in employees:
                book.contacts.setdefault(address, Party(contact_id, account_id))
        accounts = session.connection().execute(
            select(AccountEmail.address, AccountEmail.account_id)
            .where(AccountEmail.address.in_(chunk))
            .order_by(AccountEmail.account_id)
        )
        for address, account_id in accounts:
            book.accounts.setdefault(address, account_id)
    return book
