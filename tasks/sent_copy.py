"""The mailbox's Sent folder over IMAP: where sent copies go, and where a lost send is looked up.

After the SMTP server takes an email, its exact bytes are appended to the Sent
folder (with a Bcc header added back, as mail clients keep it in their own copy).
After a crash, an email left in "sending" is looked up there by its Message-ID:
some providers file every submitted message in Sent themselves.
"""

import re
from dataclasses import dataclass

import imapclient
from imapclient.exceptions import IMAPClientError
from imapclient.imapclient import SEEN, SENT

from tasks.errors import MailboxConnectionError

_APPENDUID = re.compile(rb"\[APPENDUID (\d+) ([0-9:,]+)\]")
# Conventional names, for servers that do not flag their Sent folder (RFC 6154).
SENT_NAMES = ("Sent", "Sent Items", "Sent Messages", "INBOX.Sent", "INBOX/Sent")
APPEND_BATCH = 200


@dataclass(frozen=True)
class Appended:
    """Where the copies landed: the folder, its UIDVALIDITY and one UID per copy (if known)."""

    folder: str
    uidvalidity: int | None
    uids: list[int | None]


def sent_folder(client: imapclient.IMAPClient) -> str:
    """The Sent folder: flagged \\Sent, else by a usual name, else a new "Sent"."""
    try:
        flagged = [name for flags, _sep, name in client.list_folders() if SENT in flags]
        if flagged:
            return flagged[0]
        existing = {name for _flags, _sep, name in client.list_folders()}
        for name in SENT_NAMES:
            if name in existing:
                return name
        client.create_folder("Sent")
        client.subscribe_folder("Sent")
        return "Sent"
    except IMAPClientError as exc:
        raise MailboxConnectionError(f"cannot find or create the Sent folder ({exc})") from exc


def find_by_message_id(
    client: imapclient.IMAPClient, folder: str, message_ids: list[str]
) -> set[str]:
    """Which of these Message-IDs the folder holds (read-only: nothing is marked)."""
    if not message_ids:
        return set()
    client.select_folder(folder, readonly=True)
    found: set[str] = set()
    for message_id in message_ids:
        # HEADER search is a substring match; our ids are random, so a hit is the email.
        if client.search(["HEADER", "Message-ID", message_id]):
            found.add(message_id)
    client.close_folder()
    return found


def with_bcc(raw: bytes, bcc: str) -> bytes:
    """The sender's own copy: the Bcc recipients stay visible to them (never on the wire)."""
    if not bcc:
        return raw
    return f"Bcc: {bcc}\r\n".encode() + raw


def append_copies(client: imapclient.IMAPClient, folder: str, messages: list[bytes]) -> Appended:
    """Append messages as read (\\Seen) in few round trips (MULTIAPPEND when offered)."""
    uidvalidity: int | None = None
    uids: list[int | None] = []
    multi = client.has_capability("MULTIAPPEND")
    for start in range(0, len(messages), APPEND_BATCH if multi else 1):
        chunk = messages[start : start + (APPEND_BATCH if multi else 1)]
        items = [{"msg": raw, "flags": (SEEN,)} for raw in chunk]
        try:
            if multi:
                response = client.multiappend(folder, items)
                if isinstance(response, tuple):  # imaplib's (typ, data) on some versions
                    typ, data = response
                    if typ != "OK":
                        raise MailboxConnectionError(f"APPEND to {folder} refused: {data!r}")
                    response = b" ".join(d for d in data if isinstance(d, bytes))
            else:
                response = client.append(folder, chunk[0], flags=(SEEN,))
        except IMAPClientError as exc:
            raise MailboxConnectionError(f"APPEND to {folder} failed ({exc})") from exc
        validity, chunk_uids = _appended(response, len(chunk))
        uidvalidity = validity or uidvalidity
        uids.extend(chunk_uids)
    return Appended(folder, uidvalidity, uids)


def _appended(response: object, count: int) -> tuple[int | None, list[int | None]]:
    """UIDVALIDITY and UIDs from an [APPENDUID v uids] response (RFC 4315), if present."""
    text = response if isinstance(response, bytes) else str(response).encode()
    match = _APPENDUID.search(text)
    if match is None:
        return None, [None] * count
    uids: list[int] = []
    for piece in match.group(2).split(b","):
        low, _, high = piece.partition(b":")
        uids.extend(range(int(low), int(high or low) + 1))
    if len(uids) != count:
        return int(match.group(1)), [None] * count
    return int(match.group(1)), list(uids)
