"""Reading and writing providers and mailboxes (the operator's configuration)."""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlmodel import Session

from models import (
    EmailProvider,
    FirstSyncPeriod,
    LoginFormat,
    Mailbox,
    ProviderDomain,
    Security,
    User,
)
from models.providers import AuthKind
from tasks.credentials import resolve_credential
from tasks.errors import ConfigError
from tasks.imap import ImapSettings
from tasks.storing import MailboxRef


@dataclass(frozen=True)
class MailboxJob:
    """A mailbox as a sync needs it: where, who, what; the secret is resolved only on connect."""

    id: uuid.UUID
    address: str
    owner_id: uuid.UUID | None
    host: str
    port: int
    security: str
    login: str
    credential_ref: str
    auth: str
    tls_insecure: bool
    folders: list[str] | None
    first_sync_period: str

    @property
    def ref(self) -> MailboxRef:
        return MailboxRef(self.id, self.address, self.owner_id)

    def first_sync_since(self, today: date | None = None) -> date | None:
        reach = FirstSyncPeriod(self.first_sync_period).as_timedelta()
        if reach is None:
            return None
        return (today or datetime.now(UTC).date()) - reach

    def imap_settings(self) -> ImapSettings:
        return ImapSettings(
            address=self.address,
            host=self.host,
            port=self.port,
            security=self.security,
            login=self.login,
            secret=resolve_credential(self.credential_ref, self.address),
            auth=self.auth,
            tls_insecure=self.tls_insecure,
        )


def parse_host_port(value: str, option: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{option} must be HOST:PORT, got {value!r}")
    return host, int(port)


def add_provider(
    session: Session,
    name: str,
    imap: str,
    imap_security: Security,
    smtp: str | None,
    smtp_security: Security,
    smtp_timeout: int,
    login_format: LoginFormat,
    domains: list[str],
    auth: AuthKind = AuthKind.basic,
    files_sent_mail: bool = False,
) -> EmailProvider:
    if session.scalar(select(EmailProvider).where(EmailProvider.name == name)):
        raise ConfigError(f"provider {name!r} exists already")
    imap_host, imap_port = parse_host_port(imap, "--imap")
    smtp_host, smtp_port = parse_host_port(smtp, "--smtp") if smtp else ("", 0)
    provider = EmailProvider(
        name=name,
        imap_host=imap_host,
        imap_port=imap_port,
        imap_security=imap_security,
        smtp_host=smtp_host,
        smtp_port=smtp_port,
        smtp_security=smtp_security,
        smtp_timeout=smtp_timeout,
        login_format=login_format,
        auth=auth,
        files_sent_mail=files_sent_mail,
    )
    for domain in domains:
        domain = domain.lower().lstrip("@")
        taken = session.get(ProviderDomain, domain)
        if taken is not None:
            raise ConfigError(f"domain {domain} already belongs to another provider")
        provider.domains.append(ProviderDomain(domain=domain))
    session.add(provider)
    session.flush()
    return provider


def remove_provider(session: Session, name: str) -> None:
    provider = _provider_named(session, name)
    in_use = session.scalar(
        select(func.count()).select_from(Mailbox).where(Mailbox.provider_id == provider.id)
    )
    if in_use:
        raise ConfigError(
            f"provider {name!r} still has {in_use} mailbox(es); remove or move them first"
        )
    session.delete(provider)


def _provider_named(session: Session, name: str) -> EmailProvider:
    provider = session.scalar(select(EmailProvider).where(EmailProvider.name == name))
    if provider is None:
        raise ConfigError(f"no provider named {name!r} (see `inboxflow provider list`)")
    return provider


def detect_provider(session: Session, address: str) -> EmailProvider:
    domain = address.rpartition("@")[2].lower()
    row = session.get(ProviderDomain, domain)
    if row is None:
        raise ConfigError(
            f"no provider serves the domain {domain!r}; pass --provider or add the domain "
            "with `inboxflow provider add ... --domain`"
        )
    return session.get(EmailProvider, row.provider_id)  # type: ignore[return-value]


def derive_login(provider: EmailProvider, address: str, login: str | None) -> str:
    if login:
        return login
    if provider.login_format == LoginFormat.manual:
        raise ConfigError(f"provider {provider.name!r} uses manual logins: pass --login")
    if provider.login_format == LoginFormat.username:
        return address.partition("@")[0]
    return address


def add_mailbox(
    session: Session,
    address: str,
    credential_ref: str,
    provider_name: str | None,
    login: str | None,
    folders: list[str] | None,
    first_sync: FirstSyncPeriod,
    owner: str | None,
    tls_insecure: bool,
) -> Mailbox:
    address = address.strip().lower()
    if "@" not in address:
        raise ConfigError(f"{address!r} is not an email address")
    if session.scalar(select(Mailbox).where(Mailbox.address == address)):
        raise ConfigError(f"mailbox {address} exists already")
    provider = (
        _provider_named(session, provider_name)
        if provider_name
        else detect_provider(session, address)
    )
    mailbox = Mailbox(
        address=address,
        provider_id=provider.id,
        login=derive_login(provider, address, login),
        credential_ref=credential_ref,
        owner_id=_user_named(session, owner).id if owner else None,
        folders=folders,
        first_sync_period=first_sync,
        tls_insecure=tls_insecure,
    )
    session.add(mailbox)
    session.flush()
    return mailbox


def _user_named(session: Session, name: str) -> User:
    """The user with this name, created on first mention (users come from the CRM later)."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name)
        session.add(user)
        session.flush()
    return user


def load_jobs(session: Session, address: str | None) -> list[MailboxJob]:
    query = select(Mailbox, EmailProvider).join(
        EmailProvider, Mailbox.provider_id == EmailProvider.id
    )
    if address:
        query = query.where(Mailbox.address == address.lower())
    else:
        query = query.where(Mailbox.download_enabled.is_(True))
    rows = session.execute(query.order_by(Mailbox.address)).all()
    if address and not rows:
        raise ConfigError(f"no mailbox {address} (see `inboxflow mailbox list`)")
    return [
        MailboxJob(
            id=mailbox.id,
            address=mailbox.address,
            owner_id=mailbox.owner_id,
            host=provider.imap_host,
            port=provider.imap_port,
            security=str(provider.imap_security),
            login=mailbox.login,
            credential_ref=mailbox.credential_ref,
            auth=str(provider.auth),
            tls_insecure=mailbox.tls_insecure,
            folders=mailbox.folders,
            first_sync_period=str(mailbox.first_sync_period),
        )
        for mailbox, provider in rows
    ]


def mailbox_ref(session: Session, address: str) -> MailboxRef:
    mailbox = session.scalar(select(Mailbox).where(Mailbox.address == address.lower()))
    if mailbox is None:
        raise ConfigError(f"no mailbox {address} (see `inboxflow mailbox list`)")
    return MailboxRef(mailbox.id, mailbox.address, mailbox.owner_id)
