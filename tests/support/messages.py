"""Realistic test messages, built deterministically from a number."""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

WORDS = (
    "invoice order delivery price quote support ticket contract renewal meeting schedule "
    "shipment warranty replacement discount update account access thanks"
).split(" ")


@dataclass(frozen=True)
class Sample:
    index: int
    message_id: str
    subject: str
    from_address: str
    attachment: bytes | None
    raw: bytes


def attachment_bytes(index: int, size: int) -> bytes:
    seed = hashlib.sha256(str(index).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def make_message(
    index: int,
    *,
    body_size: int = 6000,
    attachment_every: int = 5,
    sent: datetime | None = None,
    domain: str = "customer.example",
) -> Sample:
    """A message of about body_size bytes; every n-th carries a small PDF-like attachment."""
    words = " ".join(WORDS[(index + i) % len(WORDS)] for i in range(body_size // 7))
    message = EmailMessage()
    subject = f"Message {index}: {WORDS[index % len(WORDS)]} Inv-{index} — Grüße"
    sender = f"sender{index % 97}@{domain}"
    message["Subject"] = subject
    message["From"] = f"Sénder {index % 97} <{sender}>"
    message["To"] = "Sales <sales@northwind.example>"
    message["Cc"] = f"copy{index % 13}@{domain}"
    message["Date"] = format_datetime(
        sent or datetime(2026, 11, 20, 9, 0, tzinfo=UTC) + timedelta(seconds=index)
    )
    message_id = f"<msg-{index}@{domain}>"
    message["Message-ID"] = message_id
    message.set_content(words[:body_size])
    attachment = None
    if attachment_every and index % attachment_every == 0:
        attachment = attachment_bytes(index, 2048)
        message.add_attachment(
            attachment, maintype="application", subtype="pdf", filename=f"report-{index}.pdf"
        )
    raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    return Sample(index, message_id, subject, sender, attachment, raw)
