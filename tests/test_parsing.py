"""MIME parsing: odd charsets, broken structure, attachments, file names (SPEC 3)."""

from email.message import EmailMessage
from pathlib import Path

import pytest

from tasks.filestore import FileStore
from tasks.parsing import ParserPool, parse_message, sanitize_file_name
from tests.support.messages import make_message

MB = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "files")


def test_encoded_headers_and_addresses_are_decoded(store):
    raw = (
        b"From: =?utf-8?b?SsO8cmdlbiBNw7xsbGVy?= <Juergen@Example.DE>\r\n"
        b"To: =?iso-8859-1?q?Ren=E9?= <rene@example.fr>, plain@example.com\r\n"
        b"Cc: =?koi8-r?b?8NLJ18XU?= <ivan@example.ru>\r\n"
        b"Subject: =?iso-2022-jp?b?GyRCJTUlXSE8JUgbKEI=?= Inv-53\r\n"
        b"Message-ID: <a@b>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n\r\nhi\r\n"
    )
    parsed = parse_message(raw, store, MB)
    assert parsed.from_name == "Jürgen Müller"
    assert parsed.from_address == "juergen@example.de"
    assert parsed.to == "René <rene@example.fr>, plain@example.com"
    assert parsed.to_addresses == ["rene@example.fr", "plain@example.com"]
    assert parsed.cc == "Привет <ivan@example.ru>"
    assert parsed.subject == "サポート Inv-53"
    assert parsed.sent_at.isoformat() == "2026-11-23T09:00:00+00:00"
    assert parsed.problems == []


@pytest.mark.parametrize(
    ("charset", "text"),
    [("iso-8859-1", "Grüße"), ("windows-1251", "Привет"), ("utf-8", "日本語"), ("koi8-r", "Да")],
)
def test_bodies_in_declared_charsets_are_decoded(store, charset, text):
    raw = (
        f"Message-ID: <c@x>\r\nContent-Type: text/plain; charset={charset}\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + text.encode(charset)
    assert parse_message(raw, store, MB).body_text == text


def test_unknown_charset_is_decoded_best_effort_and_reported(store):
    raw = b"Message-ID: <d@x>\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\nqapla\xff"
    parsed = parse_message(raw, store, MB)
    assert parsed.body_text.startswith("qapla")
    assert any("x-klingon" in p for p in parsed.problems)


def test_missing_message_id_gets_a_stable_content_derived_id(store):
    raw = b"Subject: no id\r\n\r\nbody"
    first, second = parse_message(raw, store, MB), parse_message(raw, store, MB)
    assert first.message_id_missing
    assert first.message_id == second.message_id
    assert first.message_id.endswith("@message-id.invalid>")


def test_html_inline_image_and_attachments(store):
    message = EmailMessage()
    message["Message-ID"] = "<e@x>"
    message.set_content("plain version")
    message.add_alternative('<p>html <img src="cid:logo@x"></p>', subtype="html")
    html = message.get_payload()[1]
    html.add_related(b"\x89PNG fake", maintype="image", subtype="png", cid="<logo@x>")
    message.add_attachment(b"a,b\r\n1,2\r\n", maintype="text", subtype="csv", filename="data.csv")
    parsed = parse_message(message.as_bytes(), store, MB)
    assert parsed.body_text.strip() == "plain version"
    assert "cid:logo@x" in parsed.body_html
    by_name = {a.file_name: a for a in parsed.attachments}
    inline = next(a for a in parsed.attachments if a.content_id == "logo@x")
    assert inline.is_inline and inline.mime_type == "image/png"
    assert store.get(inline.checksum) == b"\x89PNG fake"
    assert store.get(by_name["data.csv"].checksum) == b"a,b\r\n1,2\r\n"


def test_attachment_over_max_file_size_is_recorded_as_skipped(store):
    message = EmailMessage()
    message["Message-ID"] = "<f@x>"
    message.set_content("see attached")
    message.add_attachment(b"x" * 5000, maintype="application", subtype="zip", filename="big.zip")
    parsed = parse_message(message.as_bytes(), store, max_file_size=4000)
    (attachment,) = parsed.attachments
    assert attachment.file_name == "big.zip" and attachment.size == 5000
    assert not attachment.stored and attachment.checksum is None
    assert "MaxFileSize" in attachment.skip_reason
    # The content is not lost: the raw message keeps it.
    assert b"big.zip" in store.get(parsed.raw_key)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\report.pdf", "report.pdf"),
        ("a\x00b\r\nc.txt", "a_b c.txt"),  # header folding becomes a space
        ("=?utf-8?q?R=C3=A9sum=C3=A9.pdf?=", "Résumé.pdf"),
        ("", "attachment-3.pdf"),
        ("...", "attachment-3.pdf"),
    ],
)
def test_file_names_are_sanitised(name, expected):
    assert sanitize_file_name(name, "application/pdf", 2) == expected


def test_attached_message_counts_as_one_attachment(store):
    inner = EmailMessage()
    inner["Subject"] = "original"
    inner.set_content("inner body")
    outer = EmailMessage()
    outer["Message-ID"] = "<g@x>"
    outer.set_content("forwarding")
    outer.add_attachment(inner)
    parsed = parse_message(outer.as_bytes(), store, MB)
    assert parsed.body_text.strip() == "forwarding"
    (attachment,) = parsed.attachments
    assert attachment.mime_type == "message/rfc822"
    assert b"inner body" in store.get(attachment.checksum)


def test_parser_pool_returns_the_same_results_in_order(store):
    raws = [make_message(i).raw for i in range(ParserPool.MIN_BATCH_FOR_WORKERS + 50)]
    with ParserPool(store, MB, workers=2) as pool:
        in_workers = pool.submit(raws)()
    in_process = [parse_message(raw, store, MB) for raw in raws]
    # Workers keep raw bytes in pack files, so only the keys differ.
    for worker_email, raw in zip(in_workers, raws, strict=True):
        assert store.get(worker_email.raw_key) == raw
        worker_email.raw_key = ""
    for email in in_process:
        email.raw_key = ""
    assert in_workers == in_process
