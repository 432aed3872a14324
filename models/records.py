"""The business records that emails bind to and processes create."""

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import created_field, id_field
from models.crm import Account, Contact


class Lead(SQLModel, table=True):
    id: uuid.UUID = id_field()
    name: str = ""
    contact_id: uuid.UUID | None = Field(default=None, foreign_key="contact.id")
    account_id: uuid.UUID | None = Field(default=None, foreign_key="account.id")
    source: str = ""
    status: str = "new"
    notes: str = ""
    created_at: datetime = created_field()


class Case(SQLModel, table=True):
    id: uuid.UUID = id_field()
    number: str = Field(unique=True, index=True)
    subject: str = ""
    contact_id: uuid.UUID | None = Field(default=None, foreign_key="contact.id")
    account_id: uuid.UUID | None = Field(default=None, foreign_key="account.id")
    status: str = "new"
    created_at: datetime = created_field()


class Opportunity(SQLModel, table=True):
    id: uuid.UUID = id_field()
    name: str = ""
    contact_id: uuid.UUID | None = Field(default=None, foreign_key="contact.id")
    account_id: uuid.UUID | None = Field(default=None, foreign_key="account.id")
    stage: str = "new"
    created_at: datetime = created_field()


class Invoice(SQLModel, table=True):
    id: uuid.UUID = id_field()
    number: str = Field(unique=True, index=True)  # e.g. Inv-53
    account_id: uuid.UUID | None = Field(default=None, foreign_key="account.id")
    amount: float | None = None
    created_at: datetime = created_field()


class Order(SQLModel, table=True):
    id: uuid.UUID = id_field()
    number: str = Field(unique=True, index=True)  # e.g. Ord-12
    account_id: uuid.UUID | None = Field(default=None, foreign_key="account.id")
    created_at: datetime = created_field()


class Contract(SQLModel, table=True):
    id: uuid.UUID = id_field()
    number: str = Field(unique=True, index=True)
    account_id: uuid.UUID | None = Field(default=None, foreign_key="account.id")
    created_at: datetime = created_field()


# Connection fields of an email, by record type name: extend both together.
RECORD_TYPES: dict[str, type[SQLModel]] = {
    "Lead": Lead,
    "Case": Case,
    "Opportunity": Opportunity,
    "Invoice": Invoice,
    "Order": Order,
    "Contract": Contract,
}

# Everything an email links to: its people and its records, by type name.
LINKED_TYPES: dict[str, type[SQLModel]] = {"Contact": Contact, "Account": Account, **RECORD_TYPES}
