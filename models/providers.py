"""Email providers: how to reach a mail service over IMAP and SMTP."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlmodel import Field, Relationship, SQLModel

from models.base import created_field, id_field


class Security(StrEnum):
    ssl = "ssl"
    starttls = "starttls"
    none = "none"


class LoginFormat(StrEnum):
    email = "email"  # the full address
    username = "username"  # the part before "@"
    manual = "manual"  # given per mailbox


class AuthKind(StrEnum):
    basic = "basic"
    oauth2 = "oauth2"


class EmailProvider(SQLModel, table=True):
    __tablename__ = "email_provider"

    id: uuid.UUID = id_field()
    name: str = Field(unique=True, index=True)
    imap_host: str
    imap_port: int = 993
    imap_security: Security = Field(default=Security.ssl, sa_type=String)
    smtp_host: str = ""
    smtp_port: int = 465
    smtp_security: Security = Field(default=Security.ssl, sa_type=String)
    smtp_timeout: int = 40
    # Its SMTP server files what it sends in the Sent folder itself (Gmail, Outlook.com):
    # inboxflow then appends no copy of its own, which would be a second one.
    files_sent_mail: bool = False
    login_format: LoginFormat = Field(default=LoginFormat.email, sa_type=String)
    auth: AuthKind = Field(default=AuthKind.basic, sa_type=String)
    oauth_client_id: str | None = None
    # A credential reference (env:VAR or secret:BLOCK), never the secret itself.
    oauth_client_secret_ref: str | None = None
    oauth_token_url: str | None = None
    created_at: datetime = created_field()

    domains: list["ProviderDomain"] = Relationship(
        back_populates="provider", sa_relationship_kwargs={"cascade": "all, delete-orphan"}
    )


class ProviderDomain(SQLModel, table=True):
    """A mail domain whose addresses are served by a provider (used to detect it)."""

    __tablename__ = "provider_domain"

    domain: str = Field(primary_key=True)
    provider_id: uuid.UUID = Field(foreign_key="email_provider.id", index=True)

    provider: EmailProvider = Relationship(back_populates="domains")
