"""IMAP access with imapclient: connect, choose folders, find new UIDs, fetch raw messages.

Library errors become ``MailboxConnectionError``/``MailboxLoginError`` here, each
one line that names the mailbox and the cause.
"""

import os
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from tasks.credentials import ServerLogin
from tasks.errors import MailboxConnectionError, MailboxLoginError


def batch_size() -> int:
    """UIDs per fetch; INBOXFLOW_IMAP_BATCH_SIZE tunes it (smaller for huge messages)."""
    return max(1, int(os.environ.get("INBOXFLOW_IMAP_BATCH_SIZE", "500")))


# A batch also stops growing at this many bytes, so one huge mailbox never fills memory.
BATCH_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ImapSettings(ServerLogin):
    """Everything needed to open one mailbox over IMAP."""


@dataclass(frozen=True)
class FolderPlan:
    """What one folder holds now and which UIDs of it to download."""

    folder: str
    uidvalidity: int
    uidnext: int
    batches: list[list[int]]

    @property
    def message_count(self) -> int:
        return sum(len(b) for b in self.batches)


@dataclass(frozen=True)
class FetchedMessage:
    """What the server says about a message besides its bytes."""

    uid: int
    seen: bool
    internal_date: datetime | None


@contextmanager
def open_mailbox(settings: ImapSettings) -> Iterator[imapclient.IMAPClient]:
    """A logged-in IMAP connection, closed on exit."""
    client = connect(settings)
    try:
        yield client
    finally:
        try:
            client.logout()
        except (IMAPClientError, OSError):
            client.shutdown()


def connect(settings: ImapSettings) -> imapclient.IMAPClient:
    where = f"mailbox {settings.address}: {settings.host}:{settings.port}"
    context = settings.tls_context()
    try:
        client = imapclient.IMAPClient(
            settings.host,
            port=settings.port,
            ssl=settings.security == "ssl",
            ssl_context=context,
            timeout=settings.timeout,
        )
        client.normalise_times = False  # keep time zones; we store UTC
        if settings.security == "starttls":
            client.starttls(context)
    except socket.gaierror as exc:
        raise MailboxConnectionError(f"{where}: cannot resolve host ({exc.strerror})") from exc
    except ssl.SSLError as exc:
        raise MailboxConnectionError(
            f"{where}: TLS handshake failed ({exc.reason or exc}); "
            "is the port plaintext or STARTTLS rather than SSL/TLS?"
        ) from exc
    except TimeoutError as exc:
        raise MailboxConnectionError(f"{where}: no answer within {settings.timeout:g} s") from exc
    except ConnectionRefusedError as exc:
        raise MailboxConnectionError(f"{where}: connection refused") from exc
    except (OSError, IMAPClientError) as exc:
        raise MailboxConnectionError(f"{where}: cannot connect ({exc})") from exc
    try:
        if settings.auth == "oauth2":
            client.oauth2_login(settings.login, settings.secret)
        else:
            client.login(settings.login, settings.secret)
    except LoginError as exc:
        client.shutdown()
        raise MailboxLoginError(
            f"mailbox {settings.address}: login as {settings.login!r} refused "
            f"({_server_text(exc)}); check the password or token"
        ) from exc
    except (OSError, IMAPClientError) as exc:
        client.shutdown()
        raise MailboxConnectionError(f"{where}: login failed ({exc})") from exc
    return client


def _server_text(exc: Exception) -> str:
    text = str(exc)
    return text.removeprefix("b'").removeprefix('b"').rstrip("'\"") or type(exc).__name__


def folders_to_sync(client: imapclient.IMAPClient, chosen: list[str] | None) -> list[str]:
    """Selectable folders: all of them, or exactly the chosen ones (children not implied)."""
    selectable = [
        name
        for flags, _delimiter, name in client.list_folders()
        if b"\\Noselect" not in flags and b"\\NonExistent" not in flags
    ]
    if chosen is None:
        return selectable
    missing = [name for name in chosen if name not in selectable]
    if missing:
        raise MailboxConnectionError(f"no such folder on the server: {', '.join(missing)}")
    return list(chosen)


def plan_folder(
    client: imapclient.IMAPClient,
    folder: str,
    known_uidvalidity: int | None,
    last_uid: int,
    since: date | None,
) -> FolderPlan:
    """Select the folder read-only and list the UIDs to download, in batches.

    The same UIDVALIDITY as last time: only UIDs above the high-water mark.
    A first sync or a changed UIDVALIDITY: everything since the first-sync date.
    """
    status = client.select_folder(folder, readonly=True)
    uidvalidity = int(status[b"UIDVALIDITY"])
    uidnext = int(status.get(b"UIDNEXT", 0))
    if known_uidvalidity == uidvalidity:
        uids = [u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid]
    elif since is not None:
        uids = client.search(["SINCE", since])
    else:
        uids = client.search("ALL")
    uids = sorted(uids)
    return FolderPlan(folder, uidvalidity, uidnext, _batches(client, uids))


def _batches(client: imapclient.IMAPClient, uids: list[int]) -> list[list[int]]:
    """UID batches of at most batch_size() messages and about BATCH_BYTES."""
    batches: list[list[int]] = []
    per_batch = batch_size()
    for start in range(0, len(uids), per_batch):
        chunk = uids[start : start + per_batch]
        sizes = client.fetch(chunk, ["RFC822.SIZE"])
        current: list[int] = []
        current_bytes = 0
        for uid in chunk:
            message_bytes = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
            if current and current_bytes + message_bytes > BATCH_BYTES:
                batches.append(current)
                current, current_bytes = [], 0
            current.append(uid)
            current_bytes += message_bytes
        if current:
            batches.append(current)
    return batches


def fetch_messages(
    client: imapclient.IMAPClient, uids: list[int]
) -> tuple[list[FetchedMessage], list[bytes]]:
    """Raw bytes, \\Seen flag and arrival time; BODY.PEEK leaves messages unread."""
    response = client.fetch(uids, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"])
    fetched: list[FetchedMessage] = []
    raws: list[bytes] = []
    for uid in uids:
        data = response.get(uid)
        if data is None:  # expunged between search and fetch
            continue
        seen = b"\\Seen" in data.get(b"FLAGS", ())
        fetched.append(FetchedMessage(uid, seen, _utc(data.get(b"INTERNALDATE"))))
        raws.append(data.get(b"BODY[]") or b"")
    return fetched, raws


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
