"""SQLModel tables of inboxflow and the database session.

Importing this package registers every table on ``SQLModel.metadata``.
"""

from models.crm import Account, AccountEmail, Contact, ContactEmail, Role, User, UserRole
from models.db import data_dir, database_url, get_engine, init_db, session_scope
from models.emails import Attachment, Email, EmailBody, SendStatus
from models.mailboxes import FirstSyncPeriod, Mailbox, MailboxAccess, SyncState
from models.outbox import OutboxEntry as OutboxEntry  # registers the outbox table
from models.processes import ProcessStart
from models.providers import EmailProvider, LoginFormat, ProviderDomain, Security
from models.records import RECORD_TYPES, Case, Contract, Invoice, Lead, Opportunity, Order
from models.settings import (
    DEFAULT_SETTINGS,
    BindingRule,
    EmailTemplate,
    SystemSetting,
    get_setting,
)

__all__ = [
    "Account",
    "AccountEmail",
    "Attachment",
    "BindingRule",
    "Case",
    "Contact",
    "ContactEmail",
    "Contract",
    "DEFAULT_SETTINGS",
    "Email",
    "EmailBody",
    "EmailProvider",
    "EmailTemplate",
    "FirstSyncPeriod",
    "Invoice",
    "Lead",
    "LoginFormat",
    "Mailbox",
    "MailboxAccess",
    "Opportunity",
    "Order",
    "ProcessStart",
    "ProviderDomain",
    "RECORD_TYPES",
    "Role",
    "Security",
    "SendStatus",
    "SyncState",
    "SystemSetting",
    "User",
    "UserRole",
    "data_dir",
    "database_url",
    "get_engine",
    "get_setting",
    "init_db",
    "session_scope",
]
