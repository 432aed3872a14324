"""Composing an outgoing message: checked headers, HTML with a plain-text alternative, parts.

Everything a user or a template typed passes ``check_header`` or
``parse_addresses`` before it can reach a header: a CR or LF would end the header
and start another one (``Subject: hi\\r\\nBcc: victim@...``), so it is refused,
never cleaned up.

The message is built with the standard library's ``email`` package:

    multipart/mixed                      (only with attachments)
    ├── multipart/alternative
    │   ├── text/plain
    │   └── multipart/related            (only with inline images)
    │       ├── text/html                <img src="cid:logo.png">
    │       └── image/png                Content-ID: <logo.png>
    └── application/pdf                  attachment
"""

import html
import mimetypes
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from html.parser import HTMLParser

from tasks.errors import HeaderInjectionError, OutboxError
from tasks.parsing import sanitize_file_name

# SMTP line endings; 7bit so that no server needs 8BITMIME (bodies are quoted-printable).
SMTP_POLICY = policy.SMTP.clone(cte_type="7bit")
# Any control character but tab: CR and LF end a header, the others have no business there.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_DOMAIN_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_CID_REFERENCE = re.compile(r"""cid:([^"'\s>)]+)""", re.IGNORECASE)
# References: the parent's chain, trimmed like mail clients do so the header stays short.
MAX_REFERENCES = 20


@dataclass(frozen=True)
class Part:
    """An attachment, or an inline image when it has a content id (referenced as cid:ID)."""

    file_name: str
    content: bytes
    mime_type: str
    content_id: str | None = None

    @property
    def is_inline(self) -> bool:
        return self.content_id is not None


@dataclass(frozen=True)
class NamedAddress:
    """A checked name and address, ready for a header or the SMTP envelope."""

    name: str
    address: str

    def header(self) -> Address:
        local, _, domain = self.address.rpartition("@")
        return Address(display_name=self.name, username=local, domain=domain)

    def display(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclass
class Message:
    """An outgoing message, checked and complete; ``build`` gives its bytes."""

    sender: NamedAddress
    to: list[NamedAddress]
    cc: list[NamedAddress]
    bcc: list[NamedAddress]
    subject: str
    text: str
    html: str | None
    message_id: str
    date: datetime
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    auto_submitted: bool = False
    parts: list[Part] = field(default_factory=list)

    @property
    def envelope_recipients(self) -> list[str]:
        """Every To, Cc and Bcc address once, in order: the RCPT TO list."""
        return list(dict.fromkeys(m.address for m in [*self.to, *self.cc, *self.bcc]))

    def build(self) -> bytes:
        """The message as sent: CRLF line ends, 7-bit, and no Bcc header."""
        message = EmailMessage(policy=SMTP_POLICY)
        message["From"] = self.sender.header()
        if self.to:
            message["To"] = [m.header() for m in self.to]
        if self.cc:
            message["Cc"] = [m.header() for m in self.cc]
        message["Subject"] = self.subject
        message["Date"] = format_datetime(self.date)
        message["Message-ID"] = self.message_id
        if self.in_reply_to:
            message["In-Reply-To"] = self.in_reply_to
        if self.references:
            message["References"] = " ".join(self.references)
        if self.auto_submitted:
            # RFC 3834: tells auto-responders (out of office, ...) not to answer us.
            message["Auto-Submitted"] = "auto-generated"
        message.set_content(self.text, cte="quoted-printable")
        if self.html is not None:
            message.add_alternative(self.html, subtype="html", cte="quoted-printable")
            html_part = message.get_payload()[1]
            for part in self.parts:
                if part.is_inline:
                    maintype, subtype = part.mime_type.split("/", 1)
                    html_part.add_related(
                        part.content,
                        maintype,
                        subtype,
                        cid=f"<{part.content_id}>",
                        filename=part.file_name,
                        disposition="inline",
                    )
        for part in self.parts:
            if not part.is_inline:
                maintype, subtype = part.mime_type.split("/", 1)
                message.add_attachment(part.content, maintype, subtype, filename=part.file_name)
        return message.as_bytes()


def check_header(what: str, value: str) -> str:
    """The value unchanged, or HeaderInjectionError when it holds CR, LF or another control."""
    if _CONTROL.search(value):
        raise HeaderInjectionError(
            f"{what} contains a line break or control character ({value[:60]!r}); "
            "refused, as it could add headers to the email"
        )
    return value


def parse_addresses(what: str, values: list[str]) -> list[NamedAddress]:
    """Addresses as typed ("Bob <bob@x>", "a@x, b@y") → checked mailboxes, in order."""
    found: list[NamedAddress] = []
    for value in values:
        check_header(what, value)
        pairs = getaddresses([value])
        if not pairs or any(not address for _name, address in pairs):
            raise OutboxError(f"{what}: {value!r} is not an email address")
        for name, address in pairs:
            found.append(
                NamedAddress(check_header(what, name.strip()), check_address(what, address))
            )
    return found


def check_address(what: str, address: str) -> str:
    """A bare address fit for a header and RCPT TO; a non-ASCII domain becomes punycode."""
    address = check_header(what, address.strip())
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise OutboxError(f"{what}: {address!r} is not an email address")
    if not _LOCAL_PART.match(local) or local.startswith(".") or ".." in local:
        raise OutboxError(
            f"{what}: {address!r} is not an address we can send to (only plain ASCII before the @)"
        )
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise OutboxError(f"{what}: {address!r} has an invalid domain") from exc
    labels = ascii_domain.rstrip(".").split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise OutboxError(f"{what}: {address!r} has an invalid domain")
    return f"{local}@{ascii_domain.lower()}"


def new_message_id(sender_address: str) -> str:
    """A Message-ID that is ours and unique: a random UUID at the mailbox's domain."""
    return f"<{uuid.uuid4().hex}@{sender_address.rpartition('@')[2]}>"


def reply_references(message_id: str, references: list[str]) -> list[str]:
    """References of a reply: the parent's chain, then the parent (RFC 5322 3.6.4)."""
    chain = [r for r in references if r != message_id] + [message_id]
    return chain[-MAX_REFERENCES:]


def reply_subject(subject: str) -> str:
    return subject if re.match(r"(?i)^\s*re\s*:", subject) else f"Re: {subject}"


def make_part(
    file_name: str, content: bytes, mime_type: str | None, content_id: str | None
) -> Part:
    name = sanitize_file_name(file_name, mime_type or "application/octet-stream", 0)
    guessed = mime_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    if "/" not in guessed:
        raise OutboxError(f"attachment {name}: {guessed!r} is not a MIME type")
    if content_id is not None:
        content_id = check_header(f"content id of {name}", content_id.strip("<> "))
        if not content_id or " " in content_id:
            raise OutboxError(f"attachment {name}: {content_id!r} is not a usable content id")
    return Part(name, content, guessed.lower(), content_id)


def missing_inline_images(html_body: str, parts: list[Part]) -> list[str]:
    """cid: references in the HTML that no inline part provides."""
    provided = {p.content_id for p in parts if p.is_inline}
    return [cid for cid in dict.fromkeys(_CID_REFERENCE.findall(html_body)) if cid not in provided]


def with_signature(text: str, html_body: str | None, signature_html: str) -> tuple[str, str | None]:
    """The bodies with the mailbox signature appended ("-- " is the usual separator)."""
    if not signature_html.strip():
        return text, html_body
    if html_body is None:
        html_body = text_to_html(text)
    text = f"{text.rstrip()}\n\n-- \n{html_to_text(signature_html)}"
    html_body = f'{html_body}\n<div class="signature">-- <br>\n{signature_html}\n</div>\n'
    return text, html_body


def text_to_html(text: str) -> str:
    escaped = html.escape(text.rstrip("\n")).replace("\n", "<br>\n")
    return f"<div>{escaped}</div>\n"


def html_to_text(markup: str) -> str:
    """A readable plain-text rendering of HTML for the text/plain alternative."""
    parser = _TextRenderer()
    parser.feed(markup)
    parser.close()
    return parser.text()


class _TextRenderer(HTMLParser):
    BLOCKS = frozenset(
        "p div br tr li ul ol table h1 h2 h3 h4 h5 h6 blockquote hr pre section article "
        "header footer address".split()
    )
    HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._hidden = 0
        self._pre = 0
        self._links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self._hidden += 1
        elif tag == "pre":
            self._pre += 1
        if tag in self.BLOCKS:
            self._out.append("\n")
        if tag == "li":
            self._out.append("- ")
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self._links.append(href if href.startswith(("http:", "https:")) else None)
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self._out.append(f"[{alt}]")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "hr", "img"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
        elif tag == "a" and self._links:
            href = self._links.pop()
            if href:
                self._out.append(f" ({href})")
        if tag in self.BLOCKS and tag != "br":
            self._out.append("\n")

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        self._out.append(data if self._pre else re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = [line.strip() for line in "".join(self._out).split("\n")]
        text = "\n".join(lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
