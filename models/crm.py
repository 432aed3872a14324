"""People and organisations: contacts, accounts, users and roles."""

import uuid
from datetime import datetime

from sqlmodel import Field, Relationship, SQLModel

from models.base import created_field, id_field


class Account(SQLModel, table=True):
    id: uuid.UUID = id_field()
    name: str = Field(index=True)
    domain: str | None = Field(default=None, index=True)
    created_at: datetime = created_field()

    emails: list["AccountEmail"] = Relationship(
        back_populates="account", sa_relationship_kwargs={"cascade": "all, delete-orphan"}
    )


class AccountEmail(SQLModel, table=True):
    """A communication option of an account: one email address (stored lower-case)."""

    __tablename__ = "account_email"

    id: uuid.UUID = id_field()
    account_id: uuid.UUID = Field(foreign_key="account.id", index=True)
    address: str = Field(index=True)

    account: Account = Relationship(back_populates="emails")


class Contact(SQLModel, table=True):
    id: uuid.UUID = id_field()
    name: str = Field(index=True)
    account_id: uuid.UUID | None = Field(default=None, foreign_key="account.id")
    created_at: datetime = created_field()

    emails: list["ContactEmail"] = Relationship(
        back_populates="contact", sa_relationship_kwargs={"cascade": "all, delete-orphan"}
    )


class ContactEmail(SQLModel, table=True):
    """A communication option of a contact: one email address (stored lower-case)."""

    __tablename__ = "contact_email"

    id: uuid.UUID = id_field()
    contact_id: uuid.UUID = Field(foreign_key="contact.id", index=True)
    address: str = Field(index=True)

    contact: Contact = Relationship(back_populates="emails")


class User(SQLModel, table=True):
    """An employee who works in inboxflow; may be linked to their own Contact."""

    id: uuid.UUID = id_field()
    name: str = Field(unique=True, index=True)
    email: str | None = None
    contact_id: uuid.UUID | None = Field(default=None, foreign_key="contact.id")
    created_at: datetime = created_field()


class Role(SQLModel, table=True):
    id: uuid.UUID = id_field()
    name: str = Field(unique=True, index=True)


class UserRole(SQLModel, table=True):
    __tablename__ = "user_role"

    user_id: uuid.UUID = Field(foreign_key="user.id", primary_key=True)
    role_id: uuid.UUID = Field(foreign_key="role.id", primary_key=True)
