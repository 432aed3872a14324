"""inboxflow's errors: each says what happened and how to fix it.

    InboxflowError
    ├── ConfigError              bad input from the operator (unknown provider, bad option)
    ├── CredentialError          a credential reference cannot be resolved
    ├── MailboxConnectionError   the mail server cannot be reached or refuses us
    │   └── MailboxLoginError    wrong user name or password, or a rejected token
    ├── MailboxBusyError         another run is syncing the same mailbox
    └── EmailImportError         a file or folder to import cannot be read

Library errors (imapclient, ssl, socket) are translated into these in tasks/imap.py.
"""


class InboxflowError(Exception):
    """Base of every error inboxflow reports to a user as one clear line."""


class ConfigError(InboxflowError):
    """The operator asked for something that does not fit the configuration."""


class CredentialError(InboxflowError):
    """A mailbox's credential reference names no environment variable or Secret block."""


class MailboxConnectionError(InboxflowError):
    """The IMAP server of a mailbox could not be reached, or the TLS handshake failed."""


class MailboxLoginError(MailboxConnectionError):
    """The IMAP server rejected the mailbox's login (wrong password or token)."""


class MailboxBusyError(InboxflowError):
    """Another run holds the mailbox's sync lock; one mailbox is never synced twice at once."""


class EmailImportError(InboxflowError):
    """A file or folder given to import is missing or in no format we read."""
