"""Recognising mail that a machine wrote: auto-replies, bounces, notifications, bulk mail.

Such mail is stored and bound like any other, but flagged (``Email.auto_kind``) so
that automatic processes do not answer an out-of-office note or open a case for a
bounce. Decided at ingest from the headers (the parsed message is at hand there).

    bounce           a delivery-status report (RFC 3464) or mail from MAILER-DAEMON
    auto-reply       RFC 3834 ``Auto-Submitted: auto-replied``, ``Precedence: auto_reply``,
                     ``X-Autoreply`` / ``X-Autorespond``
    auto-generated   other ``Auto-Submitted`` values, Microsoft's ``X-Auto-Response-Suppress``,
                     read receipts (``report-type=disposition-notification``)
    bulk             ``Precedence: bulk``, ``junk`` or ``list``

Stdlib only: it runs inside the parse worker processes.
"""

from email.message import Message

BOUNCE = "bounce"
AUTO_REPLY = "auto-reply"
AUTO_GENERATED = "auto-generated"
BULK = "bulk"

BOUNCE_SENDERS = frozenset({"mailer-daemon", "mail-daemon"})


def auto_kind(message: Message, from_address: str) -> str | None:
    """What kind of machine-written mail this is, or None for mail a person wrote."""
    report_type = _report_type(message)
    if report_type == "delivery-status" or from_address.partition("@")[0] in BOUNCE_SENDERS:
        return BOUNCE
    auto_submitted = _token(message, "auto-submitted")
    precedence = _token(message, "precedence")
    if (
        auto_submitted == "auto-replied"
        or precedence == "auto_reply"
        or _token(message, "x-autoreply") not in ("", "no")
        or message.get("x-autorespond") is not None
    ):
        return AUTO_REPLY
    if (
        auto_submitted not in ("", "no")
        or _token(message, "x-auto-response-suppress") not in ("", "none")
        or report_type == "disposition-notification"
    ):
        return AUTO_GENERATED
    if precedence in ("bulk", "junk", "list"):
        return BULK
    return None


def _token(message: Message, name: str) -> str:
    """A header's first token, lower-cased: ``auto-replied; by=x`` → ``auto-replied``."""
    value = message.get(name)
    if value is None:
        return ""
    return str(value).split(";", 1)[0].strip().lower()


def _report_type(message: Message) -> str:
    if message.get_content_type() != "multipart/report":
        return ""
    return str(message.get_param("report-type", "") or "").strip().lower()
