"""MIME parsing of raw messages into the fields inboxflow stores.

Parsing sets the pace of a sync (SPEC 3): ``email.policy.default`` parses and
decodes ~550 msg/s here, the ``compat32`` policy with explicit decoding of the
fields we keep ~5,000 msg/s. So ingest uses the standard library's parser with
``compat32`` and decodes headers (RFC 2047/2231), addresses and bodies itself,
and large batches are parsed in worker processes (``ParserPool``).

Nothing here raises on bad input: a message that cannot be fully understood is
stored best effort, its raw bytes kept, and what went wrong listed in
``problems``. Stdlib only, so worker processes start fast.
"""

import codecs
import functools
import hashlib
import mimetypes
import multiprocessing
import os
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

from tasks.auto_replies import auto_kind
from tasks.filestore import FileStore

MESSAGE_ID_TOKEN = re.compile(r"<[^<>\s]+>")
SURROGATE = re.compile("[\udc80-\udcff]")
UNSAFE_FILE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


@dataclass
class ParsedAttachment:
    file_name: str
    mime_type: str
    size: int
    content_id: str | None = None
    is_inline: bool = False
    checksum: str | None = None
    stored: bool = True
    skip_reason: str | None = None


@dataclass
class ParsedEmail:
    raw_key: str
    raw_size: int
    message_id: str = ""
    message_id_missing: bool = False
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    from_name: str = ""
    from_address: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    to_addresses: list[str] = field(default_factory=list)
    cc_addresses: list[str] = field(default_factory=list)
    bcc_addresses: list[str] = field(default_factory=list)
    subject: str = ""
    body_text: str = ""
    body_html: str = ""
    sent_at: datetime | None = None
    attachments: list[ParsedAttachment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Machine-written mail (tasks/auto_replies.py): bounce, auto-reply, ...; None for a person's.
    auto_kind: str | None = None


def parse_message(
    raw: bytes, store: FileStore, max_file_size: int, raw_key: str | None = None
) -> ParsedEmail:
    """Parse one raw message and store its attachments; raw_key says where its raw bytes are
    (stored here, content-addressed, when not given)."""
    parsed = ParsedEmail(raw_key=raw_key or store.put(raw), raw_size=len(raw))
    try:
        message = BytesParser(policy=compat32).parsebytes(raw)
    except Exception as exc:  # the stdlib parser is lenient; this is a last resort
        parsed.problems.append(f"unparseable message: {exc}")
        _fill_missing_message_id(parsed, raw)
        return parsed
    for step in (_read_headers, _read_parts):
        try:
            step(message, parsed, store, max_file_size)
        except Exception as exc:
            parsed.problems.append(f"{step.__name__.strip('_').replace('_', ' ')}: {exc!r}")
    parsed.problems.extend(sorted({type(d).__name__ for d in _all_defects(message)}))
    if not parsed.message_id:
        _fill_missing_message_id(parsed, raw)
    return parsed


def parse_many(raws: list[bytes], store_root: str, max_file_size: int) -> list[ParsedEmail]:
    """Parse a chunk of messages (the unit of work of a parse worker process).

    The chunk's raw bytes go into one pack file: one file write per chunk, not per message.
    """
    store = FileStore(store_root)
    keys = store.put_pack(raws)
    return [
        parse_message(raw, store, max_file_size, key) for raw, key in zip(raws, keys, strict=True)
    ]


class ParserPool:
    """Parses batches in worker processes, so parsing overlaps the download (both cores).

    Small batches are parsed in-process: starting workers costs more than it saves.
    Workers are forked, not spawned: a spawned worker would re-import the CLI and
    Prefect (over a second each); the forked child only runs stdlib parsing code.
    """

    MIN_BATCH_FOR_WORKERS = 200

    def __init__(self, store: FileStore, max_file_size: int, workers: int | None = None) -> None:
        self.store = store
        self.max_file_size = max_file_size
        # One core stays with the sync process (IMAP responses, database writes).
        self.workers = workers or max(1, (os.cpu_count() or 1) - 1)
        self._executor: ProcessPoolExecutor | None = None

    def submit(self, raws: list[bytes]) -> Callable[[], list[ParsedEmail]]:
        """Start parsing; the returned callable waits for the parsed emails, in order."""
        if len(raws) < self.MIN_BATCH_FOR_WORKERS or (os.cpu_count() or 1) < 2:
            parsed = parse_many(raws, str(self.store.root), self.max_file_size)
            return lambda: parsed
        executor = self._start()
        size = -(-len(raws) // self.workers)
        futures = [
            executor.submit(
                parse_many, raws[i : i + size], str(self.store.root), self.max_file_size
            )
            for i in range(0, len(raws), size)
        ]
        return lambda: [email for future in futures for email in future.result()]

    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            context = multiprocessing.get_context("fork")
            self._executor = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None

    def __enter__(self) -> "ParserPool":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _fill_missing_message_id(parsed: ParsedEmail, raw: bytes) -> None:
    # A stable stand-in derived from the content: the same message read again
    # (re-sync, re-import) gets the same id and so is not stored twice.
    parsed.message_id = f"<{hashlib.sha256(raw).hexdigest()}@message-id.invalid>"
    parsed.message_id_missing = True
    parsed.problems.append("no Message-ID header")


def _read_headers(message: Message, parsed: ParsedEmail, *_: object) -> None:
    ids = MESSAGE_ID_TOKEN.findall(_raw_header(message, "message-id"))
    parsed.message_id = ids[0] if ids else _raw_header(message, "message-id").strip()[:900]
    in_reply_to = MESSAGE_ID_TOKEN.findall(_raw_header(message, "in-reply-to"))
    parsed.in_reply_to = in_reply_to[0] if in_reply_to else None
    parsed.references = MESSAGE_ID_TOKEN.findall(_raw_header(message, "references"))
    parsed.subject = decode_text(_raw_header(message, "subject"))
    senders = _addresses(message, "from")
    if senders:
        parsed.from_name, parsed.from_address = senders[0]
    for name in ("to", "cc", "bcc"):
        addresses = _addresses(message, name)
        setattr(parsed, name, ", ".join(_format_address(n, a) for n, a in addresses))
        setattr(parsed, f"{name}_addresses", [a for _, a in addresses if a])
    parsed.auto_kind = auto_kind(message, parsed.from_address)
    date = _raw_header(message, "date")
    if date:
        try:
            sent = parsedate_to_datetime(date)
            # A date without a zone (or -0000) is taken as UTC.
            parsed.sent_at = (
                sent.replace(tzinfo=UTC) if sent.tzinfo is None else sent.astimezone(UTC)
            )
        except (TypeError, ValueError, IndexError, OverflowError):
            parsed.problems.append(f"unreadable Date header: {date[:80]!r}")


def _read_parts(
    message: Message, parsed: ParsedEmail, store: FileStore, max_file_size: int
) -> None:
    for part in _leaf_parts(message):
        mime_type = part.get_content_type()
        disposition = part.get_content_disposition()
        file_name = part.get_filename()
        is_body_candidate = (
            mime_type in ("text/plain", "text/html")
            and disposition != "attachment"
            and not file_name
        )
        if is_body_candidate:
            text = _decode_body(part, parsed)
            if mime_type == "text/plain" and not parsed.body_text:
                parsed.body_text = text
                continue
            if mime_type == "text/html" and not parsed.body_html:
                parsed.body_html = text
                continue
        parsed.attachments.append(
            _store_attachment(part, parsed, store, max_file_size, len(parsed.attachments))
        )


def _leaf_parts(message: Message) -> list[Message]:
    """Non-multipart parts in order; an attached message counts as one part, not its insides."""
    if message.is_multipart() and message.get_content_maintype() == "multipart":
        return [leaf for sub in message.get_payload() for leaf in _leaf_parts(sub)]
    return [message]


def _store_attachment(
    part: Message, parsed: ParsedEmail, store: FileStore, max_file_size: int, index: int
) -> ParsedAttachment:
    mime_type = part.get_content_type()
    content = _part_bytes(part)
    content_id = _raw_header(part, "content-id").strip().strip("<>") or None
    attachment = ParsedAttachment(
        file_name=sanitize_file_name(part.get_filename(), mime_type, index),
        mime_type=mime_type,
        size=len(content),
        content_id=content_id,
        is_inline=part.get_content_disposition() == "inline"
        or (content_id is not None and part.get_content_disposition() != "attachment"),
    )
    if len(content) > max_file_size:
        attachment.stored = False
        attachment.skip_reason = (
            f"larger than MaxFileSize ({len(content)} > {max_file_size} bytes); "
            "the content stays in the raw message"
        )
        return attachment
    attachment.checksum = store.put(content)
    return attachment


def _part_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    # message/rfc822 and message/delivery-status carry sub-messages, not bytes.
    inner = part.get_payload()
    if isinstance(inner, list):
        return b"".join(m.as_bytes() if isinstance(m, Message) else b"" for m in inner)
    return str(inner or "").encode("utf-8", "surrogateescape")


def _decode_body(part: Message, parsed: ParsedEmail) -> str:
    content = _part_bytes(part)
    charset = part.get_content_charset() or "us-ascii"
    try:
        codecs.lookup(charset)
    except LookupError:
        parsed.problems.append(f"unknown charset {charset!r}, decoded as UTF-8 with replacements")
        charset = "utf-8"
    if charset in ("us-ascii", "ascii"):
        # Undeclared 8-bit text is nearly always UTF-8 (or Latin-1 from old clients).
        charset = "utf-8"
    try:
        return content.decode(charset)
    except UnicodeDecodeError:
        parsed.problems.append(f"body is not valid {charset}, decoded with replacements")
        return content.decode(charset, errors="replace")


def decode_text(value: str) -> str:
    """Decode an RFC 2047 header value to text; never fails."""
    if not value:
        return ""
    value = _undo_surrogates(value)
    if "=?" not in value:  # no encoded word (RFC 2047) to decode: most headers
        return " ".join(value.split())
    try:
        text = str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError, AssertionError):
        text = value
    return " ".join(text.split())


def _undo_surrogates(value: str) -> str:
    # The bytes parser keeps raw 8-bit header bytes as surrogate escapes.
    if value.isascii() or not SURROGATE.search(value):
        return value
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _raw_header(message: Message, name: str) -> str:
    value = message.get(name)
    return "" if value is None else str(value)


def _addresses(message: Message, name: str) -> list[tuple[str, str]]:
    values = tuple(_undo_surrogates(str(v)) for v in message.get_all(name, []))
    return list(_parse_addresses(values))


# The same address headers recur from message to message (the mailbox's own address
# in To, regular correspondents in From and Cc), and parsing one costs more than the
# rest of the headers together.
@functools.lru_cache(maxsize=4096)
def _parse_addresses(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    pairs = getaddresses(list(values))
    return tuple((decode_text(n), a.strip().lower()) for n, a in pairs if n or a)


def _format_address(name: str, address: str) -> str:
    if name and address:
        return f"{name} <{address}>"
    return name or address


def _all_defects(message: Message) -> list[object]:
    defects = list(getattr(message, "defects", []))
    if message.is_multipart():
        for sub in message.get_payload():
            if isinstance(sub, Message):
                defects.extend(_all_defects(sub))
    return defects


def sanitize_file_name(name: str | None, mime_type: str, index: int) -> str:
    """A safe file name: no path, no control characters, a sensible default."""
    decoded = decode_text(name or "")
    base = os.path.basename(decoded.replace("\\", "/"))
    clean = UNSAFE_FILE_NAME.sub("_", base).strip(" .")[:200]
    if clean:
        return clean
    extension = mimetypes.guess_extension(mime_type) or ".bin"
    return f"attachment-{index + 1}{extension}"
