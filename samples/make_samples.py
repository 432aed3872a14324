#!/usr/bin/env python3
"""Generate the Northwind Tools sample mailbox and its reference data.

Writes ``samples/mailbox/NN-*.eml`` (the mail that ``inboxflow demo`` imports into
``sales@northwind.example``) and ``samples/reference/*.csv`` (the contacts,
accounts, users and records those emails are about). Standard library only and
deterministic: fixed dates, fixed MIME boundaries, no randomness, so running it
again reproduces the same bytes.

    python samples/make_samples.py            # (re)write the files
    python samples/make_samples.py --check    # parse and verify what is on disk

Every message is assembled by hand (not with ``email.message.EmailMessage``) so
each one looks like the mail client it imitates: its own header style, charset,
transfer encoding and MIME structure. Only reserved example domains are used.
"""

from __future__ import annotations

import argparse
import base64
import csv
import email
import email.message
import email.policy
import io
import quopri
import struct
import sys
import textwrap
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime, formataddr, getaddresses
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
MAILBOX_DIR = HERE / "mailbox"
REFERENCE_DIR = HERE / "reference"
README = HERE / "README.md"

MAILBOX = "sales@northwind.example"
MAX_SAMPLE_SIZE = 20_000
MIME_PREAMBLE = "This is a multi-part message in MIME format."

Header = tuple[str, str]
TRACE_HEADERS = ("Return-Path", "Delivered-To", "Received")

# --------------------------------------------------------------------------------------
# Reference data (written to samples/reference/*.csv). Several addresses of one contact
# or account are separated by ";".
# --------------------------------------------------------------------------------------

ACCOUNTS: list[tuple[str, str, str]] = [  # name, domain, email
    ("Northwind Tools", "northwind.example", "info@northwind.example"),
    ("Adventure Works", "adventure-works.example", "info@adventure-works.example"),
    ("Fabrikam GmbH", "fabrikam.example", "einkauf@fabrikam.example"),
    ("Atelier Dupont SARL", "atelier-dupont.example", "contact@atelier-dupont.example"),
    ("Sakura Kogyo K.K.", "sakura-kogyo.example", "info@sakura-kogyo.example"),
    ("Volga Stroy LLC", "volga-stroy.example", "office@volga-stroy.example"),
    (
        "Contoso Manufacturing",
        "contoso.example",
        "accounts-payable@contoso.example;info@contoso.example",
    ),
]

CONTACTS: list[tuple[str, str, str]] = [  # name, email, account
    (
        "Mary Jones",
        "mary.jones@adventure-works.example;mary.jones@example.com",
        "Adventure Works",
    ),
    ("Jürgen Müller", "juergen.mueller@fabrikam.example", "Fabrikam GmbH"),
    (
        "Sabine Köhler",
        "sabine.koehler@fabrikam.example;s.koehler@fabrikam.example",
        "Fabrikam GmbH",
    ),
    ("Hélène Dupont", "helene.dupont@atelier-dupont.example", "Atelier Dupont SARL"),
    ("François Martin", "francois.martin@atelier-dupont.example", "Atelier Dupont SARL"),
    ("田中 太郎", "tanaka.taro@sakura-kogyo.example", "Sakura Kogyo K.K."),
    ("Иван Петров", "ivan.petrov@volga-stroy.example", "Volga Stroy LLC"),
    ("Olivia Chen", "olivia.chen@contoso.example", "Contoso Manufacturing"),
    ("Daniel Brooks", "daniel.brooks@contoso.example", "Contoso Manufacturing"),
    # An employee of Northwind: this contact is linked to the user Nancy Davolio.
    ("Nancy Davolio", "nancy.davolio@northwind.example", "Northwind Tools"),
]

USERS: list[tuple[str, str, str]] = [  # name, email, contact (a contact name, or empty)
    ("Nancy Davolio", "nancy.davolio@northwind.example", "Nancy Davolio"),
    ("Janet Leverling", "janet.leverling@northwind.example", ""),
    ("Andrew Fuller", "andrew.fuller@northwind.example", ""),
]

INVOICES: list[tuple[str, str, str]] = [  # number, account, amount (EUR); no Inv-54
    ("Inv-51", "Contoso Manufacturing", "12480.00"),
    ("Inv-52", "Fabrikam GmbH", "3150.50"),
    ("Inv-53", "Adventure Works", "8725.00"),
    ("Inv-55", "Atelier Dupont SARL", "990.00"),
]

ORDERS: list[tuple[str, str]] = [  # number, account
    ("Ord-11", "Contoso Manufacturing"),
    ("Ord-12", "Fabrikam GmbH"),
    ("Ord-13", "Sakura Kogyo K.K."),
]

CONTRACTS: list[tuple[str, str]] = [  # number (CTR-YYYY-NNN), account
    ("CTR-2024-001", "Contoso Manufacturing"),
    ("CTR-2025-007", "Adventure Works"),
]

REFERENCE_TABLES: dict[str, tuple[Sequence[str], Sequence[Sequence[str]]]] = {
    "accounts.csv": (("name", "domain", "email"), ACCOUNTS),
    "contacts.csv": (("name", "email", "account"), CONTACTS),
    "users.csv": (("name", "email", "contact"), USERS),
    "invoices.csv": (("number", "account", "amount"), INVOICES),
    "orders.csv": (("number", "account"), ORDERS),
    "contracts.csv": (("number", "account"), CONTRACTS),
}

# --------------------------------------------------------------------------------------
# Small generated binaries: a PNG and a PDF that real viewers open.
# --------------------------------------------------------------------------------------

Pixel = Callable[[int, int], tuple[int, int, int]]


def make_png(width: int, height: int, pixel: Pixel) -> bytes:
    """An 8-bit RGB PNG; ``pixel(x, y)`` gives each pixel's colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(
        b"\x00" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def logo_pixel(x: int, y: int) -> tuple[int, int, int]:
    """Contoso's e-mail signature logo: a navy bar with an orange square and white stripes."""
    if 3 <= x < 17 and 3 <= y < 17:
        return (242, 140, 40)
    if x >= 21 and y in (6, 7, 12, 13):
        return (255, 255, 255)
    return (16, 42, 92)


def photo_pixel(x: int, y: int) -> tuple[int, int, int]:
    """A 'thermal photo' of a drill housing: a hot spot fading to a cool background."""
    distance = abs(x - 26) + abs(y - 14)
    heat = max(0, 255 - distance * 9)
    return (heat, max(0, heat - 120) // 2, 255 - heat)


def damage_pixel(x: int, y: int) -> tuple[int, int, int]:
    """A 'photo' of a dented cardboard box: brown with a dark diagonal crease."""
    if abs(x - y) <= 1:
        return (70, 45, 20)
    return (181, 140, 90) if (x // 8 + y // 8) % 2 else (196, 154, 104)


def make_pdf(title: str, lines: Sequence[str], created: datetime) -> bytes:
    """A one-page PDF 1.4 with Helvetica text lines and a correct cross-reference table."""

    def pdf_string(text: str) -> str:
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return f"({escaped})"

    text_ops = ["BT", "/F1 16 Tf", "72 770 Td", "20 TL", f"{pdf_string(title)} Tj", "/F1 11 Tf"]
    for line in lines:
        text_ops.append(f"T* {pdf_string(line)} Tj")
    text_ops.append("ET")
    stream = "\n".join(text_ops).encode("latin-1")
    stamp = created.astimezone(UTC).strftime("D:%Y%m%d%H%M%SZ")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]"
        b" /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        (
            f"<< /Title {pdf_string(title)} /Producer (Northwind Tools sample generator)"
            f" /CreationDate ({stamp}) >>"
        ).encode("latin-1"),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\n" % (
        len(objects) + 1,
        len(objects),
    )
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def make_csv(rows: Sequence[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


# --------------------------------------------------------------------------------------
# MIME assembly. Bodies use LF while being built; a message is written with CRLF.
# --------------------------------------------------------------------------------------


@dataclass
class Part:
    headers: list[Header]
    body: bytes  # transfer-encoded, LF line endings


def fixed_zone(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


def at(when: str, utc_offset: int) -> datetime:
    """A local time ``YYYY-MM-DD HH:MM:SS`` at a fixed UTC offset (in hours)."""
    return datetime.strptime(when, "%Y-%m-%d %H:%M:%S").replace(tzinfo=fixed_zone(utc_offset))


def bremen_time(moment: datetime) -> datetime:
    """Northwind's local time (CEST until 25 October 2026 01:00 UTC, then CET)."""
    utc = moment.astimezone(UTC)
    summer = utc < datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
    return utc.astimezone(fixed_zone(2 if summer else 1))


def date_header(moment: datetime) -> str:
    return format_datetime(moment)


def encoded_words(text: str, charset: str = "utf-8", mode: str = "B") -> str:
    """RFC 2047 encoded words of at most 75 characters, folded; ASCII text is left alone."""
    if text.isascii():
        return text

    def word(chunk: str) -> str:
        data = chunk.encode(charset)
        if mode == "B":
            payload = base64.b64encode(data).decode("ascii")
        else:
            payload = "".join(
                "_"
                if byte == 0x20
                else chr(byte)
                if byte < 0x80 and (chr(byte).isalnum() or chr(byte) in "!*+-/")
                else f"={byte:02X}"
                for byte in data
            )
        return f"=?{charset}?{mode}?{payload}?="

    words: list[str] = []
    chunk = ""
    for char in text:
        if chunk and len(word(chunk + char)) > 75:
            words.append(word(chunk))
            chunk = char
        else:
            chunk += char
    words.append(word(chunk))
    return "\n ".join(words)


def person(name: str, address: str, charset: str = "utf-8", mode: str = "B") -> str:
    """A mailbox for From/To/Cc: RFC 2047 encoded display name when it is not ASCII."""
    if name.isascii():
        return formataddr((name, address))
    return f"{encoded_words(name, charset, mode)} <{address}>"


def transfer_encode(data: bytes, encoding: str) -> bytes:
    if encoding in ("7bit", "8bit"):
        return data
    if encoding == "quoted-printable":
        return quopri.encodestring(data)
    if encoding == "base64":
        return base64.encodebytes(data)
    raise ValueError(f"unknown transfer encoding {encoding}")


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def text_part(
    content: str,
    *,
    subtype: str = "plain",
    charset: str = "utf-8",
    encoding: str = "7bit",
    params: str = "",
    data: bytes | None = None,
) -> Part:
    """A text part; ``data`` gives the raw bytes when they differ from ``content.encode``."""
    raw = content.encode(charset) if data is None else data
    return Part(
        [
            ("Content-Type", f'text/{subtype}; charset="{charset}"{params}'),
            ("Content-Transfer-Encoding", encoding),
        ],
        transfer_encode(raw, encoding),
    )


def file_part(
    data: bytes,
    mime_type: str,
    file_name: str,
    *,
    inline: bool = False,
    content_id: str | None = None,
    name_style: str = "plain",
    description: str | None = None,
) -> Part:
    """A base64 attachment; ``name_style`` plain, rfc2231 (Thunderbird) or rfc2047 (Outlook)."""
    if name_style == "rfc2231":
        encoded = "utf-8''" + quote(file_name, safe="")
        name_param, file_param = f"name*={encoded}", f"filename*={encoded}"
    elif name_style == "rfc2047":
        encoded = encoded_words(file_name).replace("\n ", "")
        name_param, file_param = f'name="{encoded}"', f'filename="{encoded}"'
    else:
        name_param, file_param = f'name="{file_name}"', f'filename="{file_name}"'
    disposition = "inline" if inline else "attachment"
    headers: list[Header] = [("Content-Type", f"{mime_type};\n\t{name_param}")]
    if description:
        headers.append(("Content-Description", description))
    headers.append(("Content-Disposition", f"{disposition};\n\t{file_param}"))
    if content_id:
        headers.append(("Content-ID", f"<{content_id}>"))
    headers.append(("Content-Transfer-Encoding", "base64"))
    return Part(headers, transfer_encode(data, "base64"))


def multipart(
    subtype: str,
    boundary: str,
    parts: Sequence[Part],
    params: str = "",
    preamble: str = MIME_PREAMBLE,
) -> Part:
    out = bytearray()
    if preamble:
        out += preamble.encode("ascii") + b"\n"
    for part in parts:
        if out:  # the line break before a delimiter belongs to the delimiter
            out += b"\n"
        out += f"--{boundary}\n".encode("ascii")
        out += render_headers(part.headers) + b"\n\n" + part.body.rstrip(b"\n")
    out += f"\n--{boundary}--\n".encode("ascii")
    content_type = f'multipart/{subtype};{params}\n\tboundary="{boundary}"'
    return Part([("Content-Type", content_type)], bytes(out))


def render_headers(headers: Sequence[Header]) -> bytes:
    lines = []
    for name, value in headers:
        if not value.isascii():
            raise ValueError(f"header {name} is not ASCII: {value!r}")
        lines.append(f"{name}: {value}")
    return "\n".join(lines).encode("ascii")


def assemble(
    headers: Sequence[Header],
    part: Part,
    *,
    mime_version: str = "1.0",
    content_headers_first: bool = False,
) -> bytes:
    """A whole message (LF line endings): the given headers, MIME-Version, then the part's."""
    version: list[Header] = [("MIME-Version", mime_version)]
    if content_headers_first:  # Apple Mail's order, behind the trace headers the MTA added
        trace = 0
        while trace < len(headers) and headers[trace][0] in TRACE_HEADERS:
            trace += 1
        head = [*headers[:trace], *part.headers, *headers[trace:], *version]
    else:
        head = [*headers, *version, *part.headers]
    body = part.body if part.body.endswith(b"\n") else part.body + b"\n"
    return render_headers(head) + b"\n\n" + body


def crlf(message: bytes) -> bytes:
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def incoming(
    sender: str, helo: str, ip: str, queue_id: str, sent: datetime, headers: list[Header]
) -> list[Header]:
    """``headers`` behind the trace headers Northwind's Postfix adds to incoming mail."""
    arrived = bremen_time(sent + timedelta(seconds=3))
    trace = [
        ("Return-Path", f"<{sender}>"),
        ("Delivered-To", MAILBOX),
        (
            "Received",
            f"from {helo} ({helo} [{ip}])\n\tby mx.northwind.example (Postfix) with ESMTPS"
            f" id {queue_id}\n\tfor <{MAILBOX}>; {date_header(arrived)}",
        ),
    ]
    return trace + headers


def quoted(text: str) -> str:
    """``text`` as the quoted original of a reply."""
    return "\n".join(f"> {line}" if line else ">" for line in text.rstrip("\n").split("\n"))


# --------------------------------------------------------------------------------------
# The people writing to sales@northwind.example
# --------------------------------------------------------------------------------------

SALES = formataddr(("Northwind Tools Sales", MAILBOX))
MARY = formataddr(("Mary Jones", "mary.jones@adventure-works.example"))
MARY_PRIVATE = formataddr(("Mary Jones", "mary.jones@example.com"))
JUERGEN = person("Jürgen Müller", "juergen.mueller@fabrikam.example", "iso-8859-1", "Q")
SABINE = person("Sabine Köhler", "sabine.koehler@fabrikam.example")
HELENE = person("Hélène Dupont", "helene.dupont@atelier-dupont.example", mode="Q")
FRANCOIS = person("François Martin", "francois.martin@atelier-dupont.example", mode="Q")
TANAKA = person("田中 太郎", "tanaka.taro@sakura-kogyo.example")
IVAN = person("Иван Петров", "ivan.petrov@volga-stroy.example", "windows-1251")
OLIVIA = formataddr(("Olivia Chen", "olivia.chen@contoso.example"))
DANIEL = formataddr(("Daniel Brooks", "daniel.brooks@contoso.example"))
CONTOSO_AP = formataddr(("Contoso Accounts Payable", "accounts-payable@contoso.example"))
NANCY = formataddr(("Nancy Davolio", "nancy.davolio@northwind.example"))
PETER = formataddr(("Peter Novak", "peter.novak@novak-engineering.example"))

NORTHWIND_SIGNATURE = """\
Northwind Tools GmbH | Am Speicher 5 | 28217 Bremen | Germany
sales@northwind.example | +49 421 5550 100"""

# --------------------------------------------------------------------------------------
# The samples, in date order
# --------------------------------------------------------------------------------------

MID = {
    "01": "<CAJm5Yq1x8ZbP0wR7uT3kL2vN9sQ@mail.adventure-works.example>",
    "02": "<000b01dd3a1f$4c2e8f10$e48bad30$@fabrikam.example>",
    "03": "<20260930094005.Q2026118.ndavolio@northwind.example>",
    "04": "<auto.20260930094009.mjones@adventure-works.example>",
    "05": "<5b9f2d1e-8c4a-4f7e-9a61-2f0c3e7d8a15@atelier-dupont.example>",
    "06": "<20261005120512.case-drill.jleverling@northwind.example>",
    "07": "<9c1e7a44-2b3d-4c8e-b0f5-6d2a9e4f1c37@atelier-dupont.example>",
    "08": "<CAH3n8Rf2ZqT7pL0xW5mK9vB4dYg@mail.novak-engineering.example>",
    "09": "<20261013101540.7F3A2C@sakura-kogyo.example>",
    "10": "<BN8PR04MB6321A7C9F2E1D4B5@contoso.example>",
    "11": "<001a01dd4082$9e3f1c20$daa35460$@fabrikam.example>",
    "12": "<1793088729.418205@volga-stroy.example>",
    "13": "<BN8PR04MB6321C2D8E5F3A1B9@contoso.example>",
    "14": "<BN8PR04MB7710F1E2A3B4C5D6@contoso.example>",
    "15": "<20261106091231.7C2F01A0042@mx.northwind.example>",
    "16": "<002c01dd50d4$1b7e8a40$527b9ec0$@fabrikam.example>",
    # 17 has no Message-ID on purpose
    "18": "<E4A1B2C3-D4E5-4F60-8172-93A4B5C6D7E8@example.com>",
    "19": "<20261119090322.inv53.ndavolio@northwind.example>",
    "20": "<webmail.20261122130237.fm@atelier-dupont.example>",
}

OUTLOOK = "Microsoft Outlook 16.0"
THUNDERBIRD = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:128.0) Thunderbird/128.3.0"


def sample_01() -> bytes:
    sent = at("2026-09-28 09:14:27", -7)
    body = dedent(
        """
        Hello,

        we are equipping our new assembly site in Tacoma and would like a price
        for 200 cordless drills CD-18 Pro, each with two 4 Ah batteries and the
        FC-2 fast charger.

        Could you also quote the volume price for 500 units and tell us the
        delivery time to Tacoma, WA?

        Best regards,
        Mary Jones
        Purchasing Manager
        Adventure Works
        +1 206 555 0142
        """
    )
    headers = incoming(
        "mary.jones@adventure-works.example",
        "mail.adventure-works.example",
        "198.51.100.23",
        "4Bq2mT0xYzA1",
        sent,
        [
            ("Date", date_header(sent)),
            ("From", MARY),
            ("To", SALES),
            ("Subject", "Price enquiry: 200 cordless drills CD-18 Pro"),
            ("Message-ID", MID["01"]),
        ],
    )
    return assemble(headers, text_part(body, params="; format=flowed"))


def sample_02() -> bytes:
    sent = at("2026-09-29 10:02:11", 2)
    body = dedent(
        """
        Sehr geehrte Damen und Herren,

        für unsere drei Werkstätten in München, Nürnberg und Würzburg bitten wir
        um ein Angebot über:

          - 30 Drehmomentschlüssel DS-200 (20-200 Nm)
          - 30 Kalibrierzertifikate nach DIN EN ISO 6789
          - 10 Steckschlüsselsätze ½ Zoll, 24-teilig

        Bitte nennen Sie uns auch die Lieferzeit und Ihre Zahlungsbedingungen.
        Gerne können Sie uns das Angebot als PDF schicken.

        Mit freundlichen Grüßen

        Jürgen Müller
        Leiter Einkauf
        Fabrikam GmbH · Industriestraße 12 · 80939 München
        Tel. +49 89 5550 1234
        """
    )
    subject = "Angebotsanfrage: Drehmomentschlüssel für unsere Werkstätten"
    headers = incoming(
        "juergen.mueller@fabrikam.example",
        "mail.fabrikam.example",
        "203.0.113.17",
        "4Bq9Lk2PcD7F",
        sent,
        [
            ("From", JUERGEN),
            ("To", formataddr(("Northwind Tools Vertrieb", MAILBOX))),
            ("Subject", encoded_words(subject, "iso-8859-1", "Q")),
            ("Date", date_header(sent)),
            ("Message-ID", MID["02"]),
            ("X-Mailer", OUTLOOK),
            ("Thread-Index", "AdsqHz8QkF3nP0L7Tq2WcR5yZbXa1w=="),
            ("Content-Language", "de"),
        ],
    )
    return assemble(headers, text_part(body, charset="iso-8859-1", encoding="8bit"))


QUOTE_BODY = dedent(
    """
    Dear Ms Jones,

    thank you for your enquiry. Please find attached our quote Q-2026-118:

      200 x CD-18 Pro kit (2 x 4 Ah battery, FC-2)   EUR 189.00 each
      from 500 units                                 EUR 171.00 each
      delivery to Tacoma, WA                         3-4 weeks after order

    The quote is valid until 31 October 2026. If you would like to see the
    drills first, we can send two demo kits to Tacoma free of charge.

    Kind regards,
    Nancy Davolio
    Sales Representative
    """
)


def sample_03() -> bytes:
    sent = at("2026-09-30 11:40:05", 2)
    original = sample_01().split(b"\n\n", 1)[1].decode("utf-8")
    body = (
        QUOTE_BODY
        + NORTHWIND_SIGNATURE
        + "\n\nOn Mon, 28 Sep 2026 at 18:14, Mary Jones wrote:\n"
        + quoted(original)
        + "\n"
    )
    pdf = make_pdf(
        "Northwind Tools - Quote Q-2026-118",
        [
            "Customer: Adventure Works, Tacoma WA (Mary Jones)",
            "Date: 30 September 2026    Valid until: 31 October 2026",
            "",
            "200 x CD-18 Pro cordless drill kit ........ EUR 189.00 each",
            "Volume price from 500 units ............... EUR 171.00 each",
            "Delivery: 3-4 weeks after order, DAP Tacoma, WA",
            "Payment: 30 days net",
            "",
            "Northwind Tools GmbH, Am Speicher 5, 28217 Bremen, Germany",
        ],
        sent,
    )
    headers: list[Header] = [
        ("Message-ID", MID["03"]),
        ("Date", date_header(sent)),
        ("From", SALES),
        ("To", MARY),
        ("Subject", "Re: Price enquiry: 200 cordless drills CD-18 Pro"),
        ("In-Reply-To", MID["01"]),
        ("References", MID["01"]),
        ("User-Agent", THUNDERBIRD),
        ("Content-Language", "en-GB"),
    ]
    part = multipart(
        "mixed",
        "------------2A7F1C9D3B4E5A6F7081",
        [text_part(body), file_part(pdf, "application/pdf", "Quote-Q-2026-118.pdf")],
    )
    return assemble(headers, part)


def sample_04() -> bytes:
    sent = at("2026-09-30 02:40:09", -7)
    body = dedent(
        """
        Thank you for your message.

        I am out of the office until Monday, 5 October, with limited access to
        email. For urgent purchasing matters please call our purchasing desk at
        +1 206 555 0100.

        Mary Jones
        Adventure Works
        """
    )
    headers = incoming(
        "",
        "mail.adventure-works.example",
        "198.51.100.23",
        "4BqLw7Gh1KmN",
        sent,
        [
            ("Date", date_header(sent)),
            ("From", MARY),
            ("To", SALES),
            ("Subject", "Out of office: Re: Price enquiry: 200 cordless drills CD-18 Pro"),
            ("Message-ID", MID["04"]),
            ("In-Reply-To", MID["03"]),
            ("References", f"{MID['01']}\n {MID['03']}"),
            ("Auto-Submitted", "auto-replied"),
            ("X-Autoreply", "yes"),
            ("X-Auto-Response-Suppress", "All"),
            ("Precedence", "auto_reply"),
        ],
    )
    return assemble(headers, text_part(body))


HELENE_PROBLEM = dedent(
    """
    Bonjour,

    depuis la semaine dernière, une de nos perceuses CD-18 Pro (achetée en juin)
    chauffe très fort après cinq minutes d'utilisation et s'arrête toute seule.
    Le boîtier près de la batterie devient brûlant : voir la photo ci-jointe.

    Pourriez-vous nous dire s'il s'agit d'un défaut couvert par la garantie et
    comment procéder pour le retour ?

    Merci d'avance et bonne journée,

    Hélène Dupont
    Atelier Dupont SARL – Menuiserie & Ébénisterie
    12 rue des Artisans, 69003 Lyon
    """
)
HELENE_SUBJECT = "Problème : la perceuse CD-18 Pro surchauffe"


def sample_05() -> bytes:
    sent = at("2026-10-05 08:47:33", 2)
    headers = incoming(
        "helene.dupont@atelier-dupont.example",
        "smtp.atelier-dupont.example",
        "192.0.2.61",
        "4Bs1Rr6VwXq2",
        sent,
        [
            ("Message-ID", MID["05"]),
            ("Date", date_header(sent)),
            ("User-Agent", THUNDERBIRD),
            ("Content-Language", "fr"),
            ("To", SALES),
            ("From", HELENE),
            ("Subject", encoded_words(HELENE_SUBJECT, mode="Q")),
        ],
    )
    photo = make_png(40, 30, photo_pixel)
    part = multipart(
        "mixed",
        "------------0F4C8B2E6A1D9357C0B2",
        [
            text_part(HELENE_PROBLEM, encoding="quoted-printable", params="; format=flowed"),
            file_part(photo, "image/png", "photo-perceuse-boîtier.png", name_style="rfc2231"),
        ],
    )
    return assemble(headers, part)


SUPPORT_REPLY = dedent(
    """
    Bonjour Madame Dupont,

    thank you for the report and the photo. Overheating of the housing next to
    the battery is covered by the warranty. To open the return, please send us
    the serial number of the drill (on the label under the battery slot, format
    NW-CD18-nnnnnn) and the invoice or order number.

    Best regards / Cordialement,
    Janet Leverling
    Technical Support, Northwind Tools
    """
)


def sample_06() -> bytes:
    sent = at("2026-10-05 14:05:12", 2)
    body = (
        SUPPORT_REPLY
        + NORTHWIND_SIGNATURE
        + "\n\nOn 05.10.2026 08:47, Hélène Dupont wrote:\n"
        + quoted(HELENE_PROBLEM)
        + "\n"
    )
    headers: list[Header] = [
        ("Message-ID", MID["06"]),
        ("Date", date_header(sent)),
        ("From", SALES),
        ("To", HELENE),
        ("Cc", NANCY),
        ("Subject", "Re: " + encoded_words(HELENE_SUBJECT, mode="Q")),
        ("In-Reply-To", MID["05"]),
        ("References", MID["05"]),
        ("User-Agent", THUNDERBIRD),
        ("Content-Language", "en-GB"),
    ]
    return assemble(headers, text_part(body, encoding="quoted-printable"))


def sample_07() -> bytes:
    sent = at("2026-10-06 09:31:02", 2)
    body = (
        dedent(
            """
        Bonjour Madame Leverling,

        voici le numéro de série : NW-CD18-004711. La perceuse figure sur votre
        facture Inv-55 du 12 juin.

        Je vous renverrai la perceuse dès réception de l'étiquette de retour.

        Cordialement,
        Hélène Dupont

        Le 05/10/2026 à 14:05, Northwind Tools Sales a écrit :
        """
        )
        + quoted(SUPPORT_REPLY)
        + "\n"
    )
    headers = incoming(
        "helene.dupont@atelier-dupont.example",
        "smtp.atelier-dupont.example",
        "192.0.2.61",
        "4Bsm0Tn3HbV8",
        sent,
        [
            ("Message-ID", MID["07"]),
            ("Date", date_header(sent)),
            ("User-Agent", THUNDERBIRD),
            ("Subject", "Re: " + encoded_words(HELENE_SUBJECT, mode="Q")),
            ("Content-Language", "fr"),
            ("To", SALES),
            ("Cc", NANCY),
            ("References", f"{MID['05']}\n {MID['06']}"),
            ("From", HELENE),
            ("In-Reply-To", MID["06"]),
        ],
    )
    return assemble(headers, text_part(body, encoding="quoted-printable", params="; format=flowed"))


def sample_08() -> bytes:
    sent = at("2026-10-09 16:22:48", 2)
    body = dedent(
        """
        Hello,

        I run a small maintenance company with 14 technicians in Brno and found
        your ToolTrack RFID tool management on your website.

        Would it be possible to arrange an online demo in the next two weeks?
        We would also need a rough price for 20 tool cases with RFID tags and
        the software licence for one site.

        Thank you,
        Peter Novak
        Novak Engineering s.r.o.
        +420 555 123 456
        """
    )
    headers = incoming(
        "peter.novak@novak-engineering.example",
        "mail.novak-engineering.example",
        "203.0.113.88",
        "4BtDf5Zs8QpL",
        sent,
        [
            ("Date", date_header(sent)),
            ("Message-ID", MID["08"]),
            ("Subject", "Demo request: ToolTrack RFID tool management"),
            ("From", PETER),
            ("To", MAILBOX),
        ],
    )
    alternative = multipart(
        "alternative",
        "000000000000a1b2c3d4e5f60718",
        [
            text_part(body),
            text_part(
                '<div dir="ltr">'
                + "".join(
                    f"<div>{line}</div>" if line else "<div><br></div>"
                    for line in body.rstrip("\n").split("\n")
                )
                + "</div>\n",
                subtype="html",
            ),
        ],
    )
    return assemble(headers, alternative)


def sample_09() -> bytes:
    sent = at("2026-10-13 10:15:40", 9)
    body = dedent(
        """
        ノースウィンド・ツールズ　営業部　御中

        いつもお世話になっております。
        さくら工業の田中です。

        先月購入したトルクレンチ DS-200（注文番号 Ord-13）の
        保証期間について質問があります。
        保証は購入日から1年間でしょうか、それとも2年間でしょうか。
        また、校正サービスは日本国内でも受けられますか。

        よろしくお願いいたします。

        Dear Northwind Tools sales team,
        a question about the warranty of the DS-200 torque wrenches we bought
        last month (order Ord-13): is the warranty one or two years from the
        purchase date, and is the calibration service available in Japan?

        田中 太郎 (Taro Tanaka)
        さくら工業株式会社　品質保証部
        Sakura Kogyo K.K., Quality Assurance
        """
    )
    headers = incoming(
        "tanaka.taro@sakura-kogyo.example",
        "mx1.sakura-kogyo.example",
        "198.51.100.140",
        "4BvKq9Wd2RtS",
        sent,
        [
            ("Date", date_header(sent)),
            ("From", TANAKA),
            ("To", SALES),
            ("Subject", encoded_words("保証期間についての質問（DS-200 トルクレンチ）")),
            ("Message-ID", MID["09"]),
            ("X-Mailer", "Becky! ver. 2.81.04"),
        ],
    )
    return assemble(headers, text_part(body, charset="UTF-8", encoding="base64"))


OLIVIA_TEXT = dedent(
    """
    Hello Northwind Tools team,

    Contoso Manufacturing would like to receive a quotation for:

      ID-20    Impact driver 20 V, brushless    50
      BAT-4AH  Battery 4 Ah                     100

    Delivery to our plant in Chicago, IL by 30 November 2026. Please quote at
    the prices of our framework agreement.

    Kind regards,
    Olivia Chen
    Senior Buyer – Contoso Manufacturing
    +1 312 555 0177
    """
)

OLIVIA_HTML = dedent(
    """
    <html>
    <head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>
    <body style="font-family: Calibri, Arial, sans-serif; font-size: 11pt;">
    <p>Hello Northwind Tools team,</p>
    <p>Contoso Manufacturing would like to receive a quotation for:</p>
    <table border="1" cellpadding="4" cellspacing="0" style="border-collapse: collapse;">
    <tr><th>Item</th><th>Description</th><th>Qty</th></tr>
    <tr><td>ID-20</td><td>Impact driver 20&nbsp;V, brushless</td><td>50</td></tr>
    <tr><td>BAT-4AH</td><td>Battery 4&nbsp;Ah</td><td>100</td></tr>
    </table>
    <p>Delivery to our plant in Chicago, IL by <b>30 November 2026</b>. Please quote at
    the prices of our framework agreement.</p>
    <p>Kind regards,<br>
    <b>Olivia Chen</b><br>
    Senior Buyer – Contoso Manufacturing<br>
    +1 312 555 0177</p>
    <p><img src="cid:contoso-logo.3f9a@contoso.example" alt="Contoso Manufacturing"
     width="64" height="20"></p>
    </body>
    </html>
    """
)


def sample_10() -> bytes:
    sent = at("2026-10-16 10:03:19", -5)
    headers = incoming(
        "olivia.chen@contoso.example",
        "mail-bn8pr04.outbound.contoso.example",
        "192.0.2.200",
        "4BwPz3Kc6NyD",
        sent,
        [
            ("From", OLIVIA),
            ("To", SALES),
            ("Subject", "RFQ: 50 impact drivers ID-20 for Contoso Manufacturing"),
            ("Thread-Topic", "RFQ: 50 impact drivers ID-20 for Contoso Manufacturing"),
            ("Thread-Index", "AdtAq1Xk9Zc2bN7oR0y3Lw5TmQe8Fg=="),
            ("Date", date_header(sent)),
            ("Message-ID", MID["10"]),
            ("Accept-Language", "en-US"),
            ("Content-Language", "en-US"),
            ("X-MS-Has-Attach", "yes"),
        ],
    )
    logo = make_png(64, 20, logo_pixel)
    alternative = multipart(
        "alternative",
        "_000_BN8PR04MB6321A7C9F2E1D4B5contosoexample_",
        [
            text_part(OLIVIA_TEXT, encoding="quoted-printable"),
            text_part(OLIVIA_HTML, subtype="html", encoding="quoted-printable"),
        ],
    )
    related = multipart(
        "related",
        "_004_BN8PR04MB6321A7C9F2E1D4B5contosoexample_",
        [
            alternative,
            file_part(
                logo,
                "image/png",
                "contoso-logo.png",
                inline=True,
                content_id="contoso-logo.3f9a@contoso.example",
                description="contoso-logo.png",
            ),
        ],
        params='\n\ttype="multipart/alternative";',
    )
    return assemble(headers, related)


def sample_11() -> bytes:
    sent = at("2026-10-20 13:27:05", 2)
    body = dedent(
        """
        Hello,

        could you please confirm the delivery date for our order Ord-12
        (12 workbenches WB-1500)? Our warehouse in Nürnberg is closed on 2 and
        3 November for stocktaking, so we cannot accept deliveries on those days.

        Thank you and kind regards,
        Sabine Köhler
        Logistik / Wareneingang
        Fabrikam GmbH
        """
    )
    headers = incoming(
        "sabine.koehler@fabrikam.example",
        "mail.fabrikam.example",
        "203.0.113.17",
        "4BxHc1Mv7TgW",
        sent,
        [
            ("From", SABINE),
            ("To", SALES),
            ("Subject", "Delivery date for Ord-12"),
            ("Date", date_header(sent)),
            ("Message-ID", MID["11"]),
            ("X-Mailer", OUTLOOK),
            ("Thread-Index", "AdtAgp4/HCBd2qNUYNqjVGBSD1Oolw=="),
            ("Content-Language", "en-gb"),
        ],
    )
    return assemble(headers, text_part(body, encoding="8bit"))


def sample_12() -> bytes:
    sent = at("2026-10-27 11:12:09", 3)
    body = dedent(
        """
        Здравствуйте!

        Мы купили у вас 10 комплектов CD-18 Pro. Одно зарядное устройство FC-2
        перестало заряжать аккумуляторы: индикатор мигает красным.
        Что нам делать? Можно ли заменить устройство по гарантии?

        С уважением,
        Иван Петров
        ООО «Волга Строй», отдел снабжения
        Казань, тел. +7 843 555-01-23
        """
    )
    headers = incoming(
        "ivan.petrov@volga-stroy.example",
        "mail.volga-stroy.example",
        "198.51.100.77",
        "4ByTm8Fq0XsE",
        sent,
        [
            ("Date", date_header(sent)),
            ("From", IVAN),
            ("X-Mailer", "The Bat! (v10.5.2) Professional"),
            ("Reply-To", IVAN),
            ("Message-ID", MID["12"]),
            ("To", SALES),
            (
                "Subject",
                encoded_words("Не работает зарядное устройство FC-2", "windows-1251"),
            ),
        ],
    )
    return assemble(headers, text_part(body, charset="windows-1251", encoding="8bit"))


def sample_13() -> bytes:
    sent = at("2026-10-30 15:41:27", -5)
    body = dedent(
        """
        Hi Nancy,

        attached is the signed renewal form for our framework contract
        CTR-2024-001 (new term 1 January 2027 to 31 December 2027, same price
        list plus 3 %).

        Please countersign and send it back to me by 20 November, so that our
        purchase orders for January can reference the renewed contract.

        Thanks,
        Daniel Brooks
        Procurement Director, Contoso Manufacturing
        +1 312 555 0110
        """
    )
    pdf = make_pdf(
        "Renewal of framework contract CTR-2024-001",
        [
            "Parties: Northwind Tools GmbH, Bremen - Contoso Manufacturing, Chicago IL",
            "Renewed term: 1 January 2027 - 31 December 2027",
            "Prices: price list 2026 plus 3 %",
            "Payment: 30 days net; delivery DAP Chicago, IL",
            "",
            "Signed for Contoso Manufacturing: Daniel Brooks, 30 October 2026",
            "Signed for Northwind Tools: ______________________",
        ],
        sent,
    )
    headers = incoming(
        "daniel.brooks@contoso.example",
        "mail-bn8pr04.outbound.contoso.example",
        "192.0.2.200",
        "4BzWx2Ld5PbR",
        sent,
        [
            ("From", DANIEL),
            ("To", SALES),
            ("Cc", NANCY),
            ("Subject", "Renewal of contract CTR-2024-001"),
            ("Thread-Topic", "Renewal of contract CTR-2024-001"),
            ("Date", date_header(sent)),
            ("Message-ID", MID["13"]),
            ("Content-Language", "en-US"),
            ("X-MS-Has-Attach", "yes"),
        ],
    )
    part = multipart(
        "mixed",
        "_002_BN8PR04MB6321C2D8E5F3A1B9contosoexample_",
        [
            text_part(body, charset="us-ascii"),
            file_part(pdf, "application/pdf", "CTR-2024-001-renewal-signed.pdf"),
        ],
    )
    return assemble(headers, part)


def sample_14() -> bytes:
    sent = at("2026-11-03 09:05:50", -6)
    body = dedent(
        """
        Dear Sir or Madam,

        we received your invoice Inv-54 dated 28 October 2026 but cannot match
        it to any of our purchase orders. Could you please send us a copy of the
        invoice together with the purchase order number, or a credit note if it
        was issued in error?

        Kind regards,
        Accounts Payable
        Contoso Manufacturing
        """
    )
    headers = incoming(
        "accounts-payable@contoso.example",
        "mail-bn8pr04.outbound.contoso.example",
        "192.0.2.200",
        "4C0Aa7Nf3GhJ",
        sent,
        [
            ("From", CONTOSO_AP),
            ("To", SALES),
            ("Subject", "Question about Inv-54 - no purchase order found"),
            ("Date", date_header(sent)),
            ("Message-ID", MID["14"]),
            ("Content-Language", "en-US"),
        ],
    )
    return assemble(headers, text_part(body, charset="us-ascii"))


def sample_15() -> bytes:
    sent = at("2026-11-06 10:12:31", 1)
    bounced_id = "<20261106091229.Q2026131.ndavolio@northwind.example>"
    notice = dedent(
        """
        This is the mail system at host mx.northwind.example.

        I'm sorry to have to inform you that your message could not
        be delivered to one or more recipients. It's attached below.

        For further assistance, please send mail to postmaster.

        If you do so, please include this problem report. You can
        delete your own text from the attached returned message.

                           The mail system

        <j.smith@contoso.example>: host mail.contoso.example[203.0.113.40] said:
            550 5.1.1 <j.smith@contoso.example>: Recipient address rejected: User
            unknown in virtual mailbox table (in reply to RCPT TO command)
        """
    )
    status = dedent(
        """
        Reporting-MTA: dns; mx.northwind.example
        X-Postfix-Queue-ID: 7C2F01A0042
        X-Postfix-Sender: rfc822; sales@northwind.example
        Arrival-Date: Fri,  6 Nov 2026 10:12:29 +0100

        Final-Recipient: rfc822; j.smith@contoso.example
        Original-Recipient: rfc822;j.smith@contoso.example
        Action: failed
        Status: 5.1.1
        Remote-MTA: dns; mail.contoso.example
        Diagnostic-Code: smtp; 550 5.1.1 <j.smith@contoso.example>: Recipient address
            rejected: User unknown in virtual mailbox table
        """
    )
    original_headers = dedent(
        f"""
        Return-Path: <sales@northwind.example>
        Received: from [10.0.4.23] (unknown [192.0.2.10])
        \tby mx.northwind.example (Postfix) with ESMTPSA id 7C2F01A0042
        \tfor <j.smith@contoso.example>; Fri,  6 Nov 2026 10:12:29 +0100 (CET)
        Message-ID: {bounced_id}
        Date: Fri, 6 Nov 2026 10:12:22 +0100
        From: Northwind Tools Sales <sales@northwind.example>
        To: John Smith <j.smith@contoso.example>
        Subject: Your quote Q-2026-131 for workbench spare parts
        MIME-Version: 1.0
        Content-Type: text/plain; charset=UTF-8; format=flowed
        Content-Transfer-Encoding: 7bit
        """
    )
    boundary = "7C2F01A0042.1793956351/mx.northwind.example"
    report = multipart(
        "report",
        boundary,
        [
            Part(
                [
                    ("Content-Description", "Notification"),
                    ("Content-Type", "text/plain; charset=us-ascii"),
                ],
                notice.encode("ascii"),
            ),
            Part(
                [
                    ("Content-Description", "Delivery report"),
                    ("Content-Type", "message/delivery-status"),
                ],
                status.encode("ascii"),
            ),
            Part(
                [
                    ("Content-Description", "Undelivered Message Headers"),
                    ("Content-Type", "text/rfc822-headers"),
                ],
                original_headers.encode("ascii"),
            ),
        ],
        params=" report-type=delivery-status;",
        preamble="This is a MIME-encapsulated message.",
    )
    headers: list[Header] = [
        ("Return-Path", "<>"),
        ("Delivered-To", MAILBOX),
        (
            "Received",
            f"by mx.northwind.example (Postfix)\n\tid 7D1A41A0043; {date_header(sent)} (CET)",
        ),
        ("Date", date_header(sent) + " (CET)"),
        ("From", formataddr(("Mail Delivery System", "MAILER-DAEMON@mx.northwind.example"))),
        ("Subject", "Undelivered Mail Returned to Sender"),
        ("To", MAILBOX),
        ("Auto-Submitted", "auto-replied"),
        ("Message-Id", MID["15"]),
    ]
    return assemble(headers, report)


def sample_16() -> bytes:
    sent = at("2026-11-10 08:19:54", 1)
    inner_sent = at("2026-11-09 07:31:12", 1)
    inner_body = dedent(
        """
        Hallo Sabine,

        bei der heutigen Lieferung von Northwind Tools (Lieferschein zu Ord-12)
        waren zwei Kartons eingedrückt. Die Werkbänke WB-1500 darin haben Kratzer,
        bei einer ist ein Bein verbogen. Ich habe die Ware unter Vorbehalt
        angenommen und auf dem Lieferschein vermerkt.

        Gruß
        Mehmet Yılmaz
        Wareneingang Nürnberg
        """
    )
    inner = assemble(
        [
            ("From", person("Wareneingang Nürnberg", "wareneingang@fabrikam.example")),
            ("To", SABINE),
            ("Subject", encoded_words("Beschädigte Kartons bei Wareneingang")),
            ("Date", date_header(inner_sent)),
            ("Message-ID", "<wareneingang.20261109.073112@fabrikam.example>"),
            ("X-Mailer", OUTLOOK),
            ("Content-Language", "de"),
        ],
        text_part(inner_body, encoding="quoted-printable"),
    )
    body = dedent(
        """
        Hallo Frau Leverling,

        leider ist unsere Bestellung Ord-12 beschädigt angekommen, siehe die
        weitergeleitete Meldung unseres Wareneingangs und das Foto im Anhang.
        Bitte schicken Sie uns Ersatz für die zwei Werkbänke oder eine Gutschrift.

        Mit freundlichen Grüßen
        Sabine Köhler
        Logistik / Wareneingang
        Fabrikam GmbH
        """
    )
    photo = make_png(32, 24, damage_pixel)
    headers = incoming(
        "sabine.koehler@fabrikam.example",
        "mail.fabrikam.example",
        "203.0.113.17",
        "4C1Bv6Xn9JkP",
        sent,
        [
            ("From", SABINE),
            ("To", SALES),
            ("Subject", "WG: " + encoded_words("Beschädigte Kartons bei Wareneingang")),
            ("Date", date_header(sent)),
            ("Message-ID", MID["16"]),
            ("X-Mailer", OUTLOOK),
            ("Thread-Index", "AdtS1BuAikBSe57AkM0bt6D0nGUx+g=="),
            ("Content-Language", "de"),
        ],
    )
    part = multipart(
        "mixed",
        "----=_NextPart_000_002D_01DD50D4.1B7E8A40",
        [
            text_part(body, encoding="quoted-printable"),
            file_part(photo, "image/png", "Schäden_Karton_3.png", name_style="rfc2047"),
            Part(
                [
                    ("Content-Type", "message/rfc822"),
                    ("Content-Disposition", "attachment"),
                ],
                inner,
            ),
        ],
    )
    return assemble(headers, part)


def sample_17() -> bytes:
    # Written by an old ERP mail module that adds no Message-ID (malformed on purpose).
    sent = at("2026-11-13 17:45:10", 1)
    body = dedent(
        """
        Guten Tag,

        gibt es für den Drehmomentschlüssel DS-200 eine Ersatzteilliste mit
        Artikelnummern? Wir möchten Ratschenköpfe und Griffschalen für unsere
        Werkstätten auf Lager legen.

        Mit freundlichen Grüßen
        Jürgen Müller
        Fabrikam GmbH
        """
    )
    headers = incoming(
        "juergen.mueller@fabrikam.example",
        "erp.fabrikam.example",
        "203.0.113.19",
        "4C2Ck4Yp1LmQ",
        sent,
        [
            ("Date", date_header(sent)),
            ("From", JUERGEN),
            ("To", MAILBOX),
            ("Subject", "Frage zur Ersatzteilliste DS-200"),
            ("X-Mailer", "Fabrikam ERP Mailer 2.3"),
        ],
    )
    return assemble(headers, text_part(body, encoding="quoted-printable"))


def sample_18() -> bytes:
    sent = at("2026-11-18 07:58:44", -8)
    body = dedent(
        """
        Hello,

        as requested by your accounting team, here is the additional information
        for invoice Inv-53: please add our purchase order number PO-AW-88231 to
        the invoice. The cost-centre allocation of the line items is attached.

        Thanks,
        Mary

        Sent from my iPhone
        """
    )
    line_items = make_csv(
        [
            ["line", "item", "description", "quantity", "unit_price", "cost_centre"],
            ["1", "CD-18 Pro", "Cordless drill kit", "40", "189.00", "CC-4100"],
            ["2", "BAT-4AH", "Battery 4 Ah", "20", "58.25", "CC-4100"],
        ]
    )
    headers = incoming(
        "mary.jones@example.com",
        "mail.example.com",
        "198.51.100.5",
        "4C3Dm2Zr7NsT",
        sent,
        [
            ("From", MARY_PRIVATE),
            ("Date", date_header(sent)),
            ("Subject", "Additional information for Inv-53"),
            ("Message-Id", MID["18"]),
            ("To", SALES),
            ("X-Mailer", "iPhone Mail (22B91)"),
        ],
    )
    part = multipart(
        "mixed",
        "Apple-Mail-7E1F2A3B-4C5D-4E6F-8091-A2B3C4D5E6F7",
        preamble="",
        parts=[
            text_part(body, encoding="quoted-printable"),
            file_part(line_items, "text/csv", "Inv-53-line-items.csv"),
        ],
    )
    return assemble(headers, part, mime_version="1.0 (1.0)", content_headers_first=True)


def sample_19() -> bytes:
    sent = at("2026-11-19 10:03:22", 1)
    body = (
        dedent(
            """
        Dear Ms Jones,

        thank you. We have added your purchase order number PO-AW-88231 to
        invoice Inv-53; the corrected invoice will reach your accounts payable
        team by post and email this week. The amount (EUR 8,725.00) and the due
        date are unchanged.

        Kind regards,
        Nancy Davolio
        Sales Representative
        """
        )
        + NORTHWIND_SIGNATURE
        + "\n"
    )
    headers: list[Header] = [
        ("Message-ID", MID["19"]),
        ("Date", date_header(sent)),
        ("From", SALES),
        ("To", MARY_PRIVATE),
        ("Subject", "Re: Additional information for Inv-53"),
        ("In-Reply-To", MID["18"]),
        ("References", MID["18"]),
        ("User-Agent", THUNDERBIRD),
        ("Content-Language", "en-GB"),
    ]
    return assemble(headers, text_part(body, params="; format=flowed"))


def sample_20() -> bytes:
    # An old webmail declares a charset nobody knows; the bytes are really UTF-8.
    sent = at("2026-11-22 14:02:37", 1)
    body = dedent(
        """
        Bonjour,

        pourriez-vous m'envoyer le catalogue 2027 en PDF et me confirmer les
        délais de livraison des forets HSS pour décembre ? Nous préparons nos
        commandes de fin d'année.

        Merci beaucoup,
        François Martin
        Atelier Dupont SARL
        """
    )
    headers = incoming(
        "francois.martin@atelier-dupont.example",
        "webmail.atelier-dupont.example",
        "192.0.2.62",
        "4C4Ew8Bt3QvU",
        sent,
        [
            ("From", FRANCOIS),
            ("To", MAILBOX),
            ("Subject", encoded_words("Catalogue 2027 et délais de livraison", mode="Q")),
            ("Date", date_header(sent)),
            ("Message-ID", MID["20"]),
            ("X-Mailer", "WebMail Lite 0.9"),
        ],
    )
    return assemble(
        headers, text_part(body, charset="x-unknown", encoding="8bit", data=body.encode())
    )


SAMPLES: dict[str, Callable[[], bytes]] = {
    "01-price-enquiry.eml": sample_01,
    "02-quote-request-iso-8859-1.eml": sample_02,
    "03-quote-sent-outgoing.eml": sample_03,
    "04-out-of-office-auto-reply.eml": sample_04,
    "05-support-problem-utf8-qp.eml": sample_05,
    "06-support-reply-outgoing.eml": sample_06,
    "07-support-reply-in-thread.eml": sample_07,
    "08-demo-request-unknown-sender.eml": sample_08,
    "09-warranty-question-japanese.eml": sample_09,
    "10-rfq-html-inline-image.eml": sample_10,
    "11-order-ord-12-delivery-date.eml": sample_11,
    "12-support-windows-1251.eml": sample_12,
    "13-contract-ctr-2024-001-renewal.eml": sample_13,
    "14-invoice-inv-54-unknown.eml": sample_14,
    "15-bounce-delivery-status.eml": sample_15,
    "16-forwarded-damaged-delivery.eml": sample_16,
    "17-missing-message-id.eml": sample_17,
    "18-invoice-inv-53-additional-info.eml": sample_18,
    "19-invoice-inv-53-reply-outgoing.eml": sample_19,
    "20-unknown-charset.eml": sample_20,
}

# --------------------------------------------------------------------------------------
# Writing and checking
# --------------------------------------------------------------------------------------


def write_all() -> None:
    MAILBOX_DIR.mkdir(parents=True, exist_ok=True)
    for stale in MAILBOX_DIR.glob("*.eml"):
        if stale.name not in SAMPLES:
            stale.unlink()
    for name, build in SAMPLES.items():
        (MAILBOX_DIR / name).write_bytes(crlf(build()))
    REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
    for name, (header, rows) in REFERENCE_TABLES.items():
        with (REFERENCE_DIR / name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
    print(
        f"wrote {len(SAMPLES)} messages to {MAILBOX_DIR} and "
        f"{len(REFERENCE_TABLES)} tables to {REFERENCE_DIR}"
    )


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)

    def expect(self, ok: bool, message: str) -> None:
        if not ok:
            self.problems.append(message)


def check_png(data: bytes) -> bool:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    position, idat = 8, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunk = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        if zlib.crc32(kind + chunk) & 0xFFFFFFFF != crc:
            return False
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        if kind == b"IDAT":
            idat += chunk
        position += 12 + length
    return len(zlib.decompress(idat)) == height * (1 + 3 * width)


def check_pdf(data: bytes) -> bool:
    if not data.startswith(b"%PDF-1.") or not data.rstrip().endswith(b"%%EOF"):
        return False
    start = int(data.rsplit(b"startxref", 1)[1].split()[0])
    if not data[start:].startswith(b"xref"):
        return False
    lines = data[start:].split(b"\n")
    count = int(lines[1].split()[1])
    for number in range(1, count):
        offset = int(lines[2 + number][:10])
        if not data[offset:].startswith(b"%d 0 obj" % number):
            return False
    return True


def leaf_parts(message: email.message.Message) -> list[email.message.Message]:
    """The non-multipart parts; an attached message or delivery report counts as one."""
    if message.get_content_maintype() != "multipart":
        return [message]
    return [leaf for sub in message.get_payload() for leaf in leaf_parts(sub)]


def mailbox_addresses(value: str) -> list[str]:
    return [address.lower() for _, address in getaddresses([value]) if address]


def known_addresses() -> dict[str, str]:
    known: dict[str, str] = {}
    for name, emails, _account in CONTACTS:
        for address in emails.split(";"):
            known[address] = f"contact {name}"
    for name, _domain, emails in ACCOUNTS:
        for address in emails.split(";"):
            known[address] = f"account {name}"
    return known


# The only senders that are neither a contact nor an account (nor the mailbox itself).
EXPECTED_UNKNOWN = {"peter.novak@novak-engineering.example", "mailer-daemon@mx.northwind.example"}


def check_all() -> int:
    report = Report()
    known = known_addresses()
    files = sorted(MAILBOX_DIR.glob("*.eml"))
    report.expect([f.name for f in files] == sorted(SAMPLES), "mailbox/ differs from SAMPLES")
    readme = README.read_text(encoding="utf-8") if README.exists() else ""
    message_ids: dict[str, str] = {}
    replies: list[tuple[str, list[str]]] = []
    unknown_senders: set[str] = set()
    for path in files:
        raw = path.read_bytes()
        name = path.name
        report.expect(len(raw) < MAX_SAMPLE_SIZE, f"{name}: {len(raw)} bytes")
        report.expect(raw == crlf(SAMPLES[name]()), f"{name}: not what the generator writes")
        report.expect(f"`{name}`" in readme, f"{name}: not described in README.md")
        with path.open("rb") as handle:
            message = email.message_from_binary_file(handle, policy=email.policy.default)
        subject = str(message["subject"])
        sender = mailbox_addresses(str(message["from"]))[0]
        report.expect(message["date"].datetime.year == 2026, f"{name}: bad Date")
        message_id = message["message-id"]
        if message_id is None:
            report.expect(name.startswith("17-"), f"{name}: no Message-ID")
        else:
            report.expect(str(message_id) not in message_ids, f"{name}: duplicate Message-ID")
            message_ids[str(message_id)] = name
        if message["in-reply-to"]:
            refs = str(message["references"] or "").split() + [str(message["in-reply-to"])]
            replies.append((name, refs))
        attachments = []
        for part in leaf_parts(message):
            mime = part.get_content_type()
            if mime == "message/delivery-status":
                blocks = part.get_payload()
                actions = [str(block["action"]) for block in blocks[1:]]
                report.expect(actions == ["failed"], f"{name}: delivery status {actions}")
                attachments.append(mime)
                continue
            if part.get_content_maintype() == "text" and not part.is_attachment():
                try:
                    text = part.get_content()
                except LookupError:  # 20: unknown charset, expected
                    report.expect(name.startswith("20-"), f"{name}: unknown charset")
                    text = part.get_payload(decode=True).decode("utf-8")
                report.expect("\ufffd" not in text and bool(text.strip()), f"{name}: {mime}")
                continue
            content = part.get_content()
            file_name = part.get_filename() or ""
            attachments.append(f"{mime} {file_name}".strip())
            if mime == "image/png":
                report.expect(check_png(content), f"{name}: bad PNG {file_name}")
            elif mime == "application/pdf":
                report.expect(check_pdf(content), f"{name}: bad PDF {file_name}")
            elif mime == "text/csv":
                rows = list(csv.reader(io.StringIO(content)))
                total = sum(float(row[3]) * float(row[4]) for row in rows[1:])
                amount = {number: amount for number, _, amount in INVOICES}["Inv-53"]
                report.expect(f"{total:.2f}" == amount, f"{name}: CSV total {total}")
            elif mime == "message/rfc822":
                report.expect(bool(content["subject"]), f"{name}: empty forwarded message")
        if sender == MAILBOX:
            who = "outgoing"
        elif sender in known:
            who = known[sender]
        else:
            who = f"unknown {sender}"
            unknown_senders.add(sender)
        print(f"{name:40} {len(raw):6} B  {who:32} {subject[:48]}")
        for attachment in attachments:
            print(f"{'':40} {'':8}  + {attachment}")
    report.expect(unknown_senders == EXPECTED_UNKNOWN, f"unknown senders {unknown_senders}")
    for name, refs in replies:
        report.expect(all(ref in message_ids for ref in refs), f"{name}: dangling reference")
    numbers = {row[0] for table in (INVOICES, ORDERS, CONTRACTS) for row in table}
    report.expect("Inv-53" in numbers and "Inv-54" not in numbers, "Inv-53/Inv-54 mix-up")
    linked = {contact for _, _, contact in USERS if contact}
    report.expect(linked <= {c[0] for c in CONTACTS}, "users.csv names an unknown contact")
    for problem in report.problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    print("all samples check out" if not report.problems else f"{len(report.problems)} problems")
    return 1 if report.problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="verify the files on disk")
    args = parser.parse_args(argv)
    if args.check:
        return check_all()
    write_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
