"""inboxflow's errors: each says what happened and how to fix it.

    InboxflowError
    ├── ConfigError              bad input from the operator (unknown provider, bad option)
    ├── CredentialError          a credential reference cannot be resolved
    ├── MailboxConnectionError   the mail server cannot be reached or refuses us
    │   └── MailboxLoginError    wrong user name or password, or a rejected token
    ├── MailboxBusyError         another run is syncing the same mailbox
    ├── EmailImportError         a file or folder to import cannot be read
    ├── OutboxError              an outgoing email cannot be queued or changed (tasks/outbox.py)
    │   ├── SendPermissionError  the user may not send from that mailbox
    │   ├── HeaderInjectionError a subject, name or address holds CR/LF
    │   ├── AttachmentTooLargeError  an attachment is over MaxFileSize
    │   └── TemplateError        a template is broken, or its source record does not match
    └── SmtpError                the SMTP server did not take an email (tasks/smtp.py)
        ├── SmtpTemporaryError   4xx, connection refused, timeout: tried again later
        ├── SmtpPermanentError   5xx, refused login, TLS failure: not tried again
        └── SmtpUncertainError   the connection broke after the message was handed over

Library errors (imapclient, ssl, socket) are translated into these in tasks/imap.py,
smtplib's in tasks/smtp.py.
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


class OutboxError(InboxflowError):
    """An outgoing email cannot be queued, or the outbox refuses what was asked of it."""


class SendPermissionError(OutboxError):
    """The user is neither the mailbox's owner nor shares it with "send emails"."""


class HeaderInjectionError(OutboxError):
    """A header value (subject, name, address) holds a line break that would start a new header."""


class AttachmentTooLargeError(OutboxError):
    """An attachment is larger than the MaxFileSize setting allows."""


class TemplateError(OutboxError):
    """A template does not render, or fills its macros from another kind of record than given."""


class SmtpError(InboxflowError):
    """The SMTP server did not take an email; ``reply`` is the server's own words."""

    def __init__(self, message: str, reply: str = "") -> None:
        super().__init__(message)
        self.reply = reply


class SmtpTemporaryError(SmtpError):
    """A 4xx reply, a refused connection or a timeout before the message was handed over."""


class SmtpPermanentError(SmtpError):
    """A 5xx reply, a refused login or a failed TLS handshake: trying again will not help."""


class SmtpUncertainError(SmtpError):
    """The connection broke after the message was handed over: it may have been delivered."""
