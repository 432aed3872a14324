"""Mailbox sync against a real Dovecot, on SQLite and PostgreSQL (SPEC 3, issue 2)."""

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from models import (
    Attachment,
    Email,
    FirstSyncPeriod,
    LoginFormat,
    Security,
    get_engine,
    session_scope,
)
from tasks.mailboxes import add_mailbox, add_provider
from tasks.sync import file_store
from tests.support.messages import make_message

pytestmark = pytest.mark.usefixtures("prefect_api")


def new_user(dovecot, password: str = "s3cret") -> tuple[str, str]:
    user = f"u{uuid.uuid4().hex[:10]}@northwind.example"
    dovecot.add_user(user, password)
    return user, password


def register(
    dovecot,
    user: str,
    monkeypatch: pytest.MonkeyPatch,
    password: str = "s3cret",
    *,
    folders: list[str] | None = None,
    first_sync: FirstSyncPeriod = FirstSyncPeriod.all,
    security: Security = Security.none,
    host: str | None = None,
    port: int | None = None,
) -> None:
    """A provider of its own and the mailbox for user; the password sits in an env variable."""
    variable = f"PW_{uuid.uuid4().hex[:8].upper()}"
    monkeypatch.setenv(variable, password)
    with session_scope() as session:
        provider = f"p-{uuid.uuid4().hex[:8]}"
        add_provider(
            session,
            provider,
            f"{host or dovecot.host}:{port or dovecot.port}",
            security,
            None,
            Security.none,
            40,
            LoginFormat.email,
            [],
        )
        add_mailbox(
            session, user, f"env:{variable}", provider, None, folders, first_sync, None, True
        )


def run_sync(address: str | None = None) -> tuple[object, list[dict]]:
    from flows.mailbox_sync import mailbox_sync

    state = mailbox_sync(address, return_state=True)
    return state, state.result(raise_on_failure=False)


def stored(address: str) -> list[Email]:
    with Session(get_engine()) as session:
        from models import Mailbox

        return list(
            session.scalars(
                select(Email).join(Mailbox).where(Mailbox.address == address).order_by(Email.uid)
            )
        )


def count_emails() -> int:
    with Session(get_engine()) as session:
        return session.scalar(select(func.count()).select_from(Email)) or 0


def test_sync_stores_every_message_with_byte_equal_attachments(database, dovecot, monkeypatch):
    user, password = new_user(dovecot)
    samples = [make_message(i) for i in range(2000)]
    dovecot.append(user, password, "INBOX", [s.raw for s in samples])
    register(dovecot, user, monkeypatch)

    state, reports = run_sync(user)

    assert state.is_completed(), reports
    assert reports[0]["stored"] == 2000
    emails = {e.message_id: e for e in stored(user)}
    assert len(emails) == 2000
    store = file_store()
    with Session(get_engine()) as session:
        attachments = {a.email_id: a for a in session.scalars(select(Attachment))}
    for sample in samples:
        email = emails[sample.message_id]
        assert email.subject == sample.subject
        assert email.from_address == sample.from_address
        assert email.folder == "INBOX"
        assert store.get(email.raw_key) == sample.raw
        if sample.attachment is None:
            assert email.attachment_count == 0
            continue
        attachment = attachments[email.id]
        assert attachment.file_name == f"report-{sample.index}.pdf"
        assert attachment.checksum == hashlib.sha256(sample.attachment).hexdigest()
        assert store.get(attachment.checksum) == sample.attachment


def test_second_sync_stores_nothing_then_exactly_the_new_messages(database, dovecot, monkeypatch):
    user, password = new_user(dovecot)
    dovecot.append(user, password, "INBOX", [make_message(i).raw for i in range(300)])
    register(dovecot, user, monkeypatch)
    assert run_sync(user)[1][0]["stored"] == 300

    assert run_sync(user)[1][0]["stored"] == 0

    dovecot.append(user, password, "INBOX", [make_message(i).raw for i in range(300, 350)])
    assert run_sync(user)[1][0]["stored"] == 50
    assert len(stored(user)) == 350


def test_sync_after_uidvalidity_change_creates_no_duplicates(database, dovecot, monkeypatch):
    user, password = new_user(dovecot)
    messages = [make_message(i).raw for i in range(120)]
    dovecot.append(user, password, "Support", messages)
    register(dovecot, user, monkeypatch, folders=["Support"])
    assert run_sync(user)[1][0]["stored"] == 120
    before = {e.message_id: e.uidvalidity for e in stored(user)}

    dovecot.delete_folder(user, password, "Support")
    dovecot.create_folder(user, password, "Support")
    dovecot.append(user, password, "Support", messages + [make_message(500).raw])

    report = run_sync(user)[1][0]
    assert report["stored"] == 1
    after = stored(user)
    assert len(after) == 121
    assert len({e.message_id for e in after}) == 121
    # The old rows now carry the new UIDVALIDITY, so they stay addressable by UID.
    assert all(e.uidvalidity != before.get(e.message_id) for e in after)


def test_chosen_folder_does_not_include_its_children(database, dovecot, monkeypatch):
    user, password = new_user(dovecot)
    dovecot.append(user, password, "Support", [make_message(i).raw for i in range(5)])
    dovecot.append(user, password, "Support/Sub", [make_message(i).raw for i in range(5, 9)])
    dovecot.append(user, password, "INBOX", [make_message(i).raw for i in range(9, 12)])
    register(dovecot, user, monkeypatch, folders=["Support"])

    run_sync(user)

    assert {e.folder for e in stored(user)} == {"Support"}
    assert len(stored(user)) == 5


def test_all_folders_includes_every_folder(database, dovecot, monkeypatch):
    user, password = new_user(dovecot)
    for n, folder in enumerate(["INBOX", "Sent", "Support", "Support/Sub"]):
        dovecot.append(user, password, folder, [make_message(n * 10 + i).raw for i in range(3)])
    register(dovecot, user, monkeypatch)

    run_sync(user)

    assert sorted({e.folder for e in stored(user)}) == ["INBOX", "Sent", "Support", "Support/Sub"]


def test_first_sync_period_skips_older_messages(database, dovecot, monkeypatch):
    user, password = new_user(dovecot)
    now = datetime.now(UTC)
    old = [make_message(i, sent=now - timedelta(days=30)).raw for i in range(4)]
    recent = [make_message(i, sent=now - timedelta(days=2)).raw for i in range(4, 10)]
    dovecot.append(user, password, "INBOX", old, msg_time=now - timedelta(days=30))
    dovecot.append(user, password, "INBOX", recent, msg_time=now - timedelta(days=2))
    register(dovecot, user, monkeypatch, first_sync=FirstSyncPeriod.week)

    run_sync(user)
    assert {e.message_id for e in stored(user)} == {
        f"<msg-{i}@customer.example>" for i in range(4, 10)
    }

    # Later syncs take what arrives, and never go back for what the period left out.
    dovecot.append(user, password, "INBOX", [make_message(11).raw], msg_time=now)
    run_sync(user)
    assert len(stored(user)) == 7


def test_sync_leaves_messages_unread_on_the_server(database, dovecot, monkeypatch):
    user, password = new_user(dovecot)
    dovecot.append(user, password, "INBOX", [make_message(i).raw for i in range(20)])
    dovecot.append(user, password, "INBOX", [make_message(20).raw], flags=[b"\\Seen"])
    register(dovecot, user, monkeypatch)

    run_sync(user)

    seen = dovecot.is_seen(user, password, "INBOX")
    assert sum(seen.values()) == 1
    emails = stored(user)
    assert [e.is_read for e in emails].count(True) == 1


BROKEN = [
    # No Message-ID, a charset nobody knows, 8-bit bytes in headers.
    b"From: =?x-unknown?q?Mr_X?= <x@example.com>\r\nSubject: caf\xe9 \xff\r\n"
    b"Content-Type: text/plain; charset=x-unknown\r\n\r\nbody \xff\xfe\r\n",
    # A multipart with no closing boundary and broken base64.
    b"From: y@example.com\r\nMessage-ID: <broken-1@example.com>\r\nSubject: cut off\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XYZ\r\n\r\n"
    b"--XYZ\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XYZ\r\n"
    b"Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"JVBERi0x!!!notbase64\r\n",
    # Garbage date, no From at all, header without colon.
    b"Message-ID: <broken-2@example.com>\r\nDate: yesterday-ish\r\nthis is not a header\r\n"
    b"\r\nstill stored\r\n",
]


def test_broken_messages_are_stored_best_effort_and_never_stop_the_batch(
    database, dovecot, monkeypatch
):
    user, password = new_user(dovecot)
    good = [make_message(i).raw for i in range(10)]
    dovecot.append(user, password, "INBOX", good[:5] + BROKEN + good[5:])
    register(dovecot, user, monkeypatch)

    state, reports = run_sync(user)

    assert state.is_completed()
    emails = stored(user)
    assert len(emails) == 13
    broken = [e for e in emails if e.parse_problems]
    assert len(broken) >= 3
    store = file_store()
    for email in emails:
        assert store.get(email.raw_key)  # raw kept for every message
    no_id = [e for e in emails if e.message_id_missing]
    assert len(no_id) == 1 and "x-unknown" in no_id[0].parse_problems
    # A re-sync of the same folder stores none of them again.
    assert run_sync(user)[1][0]["stored"] == 0


def test_sync_killed_midway_then_rerun_loses_and_duplicates_nothing(
    database, dovecot, monkeypatch, prefect_api, inboxflow_home
):
    user, password = new_user(dovecot)
    samples = [make_message(i) for i in range(2000)]
    dovecot.append(user, password, "INBOX", [s.raw for s in samples])
    register(dovecot, user, monkeypatch)
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "INBOXFLOW_IMAP_BATCH_SIZE": "50"}
    command = [sys.executable, "-m", "inboxflow", "sync", user]

    process = subprocess.Popen(command, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    timeline = []
    while (n := count_emails()) < 200 and process.poll() is None and time.monotonic() < deadline:
        timeline.append((round(time.monotonic(), 3), n))
        time.sleep(0.02)
    print("TIMELINE", timeline[-10:], n)
    assert process.poll() is None, "the sync finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 0 < count_emails() < 2000

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    assert rerun.returncode == 0, rerun.stderr
    message_ids = [e.message_id for e in stored(user)]
    assert len(message_ids) == 2000
    assert set(message_ids) == {s.message_id for s in samples}


def test_failing_mailboxes_report_one_line_each_and_others_still_sync(
    database, dovecot, monkeypatch
):
    from typer.testing import CliRunner

    from inboxflow.cli import app

    good, password = new_user(dovecot)
    dovecot.append(good, password, "INBOX", [make_message(i).raw for i in range(7)])
    register(dovecot, good, monkeypatch)
    wrong_password, _ = new_user(dovecot)
    register(dovecot, wrong_password, monkeypatch, password="not-the-password")
    unknown_host, _ = new_user(dovecot)
    register(dovecot, unknown_host, monkeypatch, host="imap.does-not-exist.invalid")
    tls_to_plain, _ = new_user(dovecot)
    register(dovecot, tls_to_plain, monkeypatch, security=Security.ssl)

    result = CliRunner().invoke(app, ["sync"])

    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 3, result.stderr
    expectations = {
        wrong_password: "refused",
        unknown_host: "cannot resolve host",
        tls_to_plain: "TLS handshake failed",
    }
    for address, cause in expectations.items():
        assert any(address in line and cause in line for line in lines), (address, lines)
    assert "Traceback" not in result.output + result.stderr
    assert len(stored(good)) == 7
    for address in expectations:
        assert stored(address) == []


def test_concurrent_sync_of_the_same_mailbox_is_refused(database, dovecot, monkeypatch):
    from tasks.errors import MailboxBusyError
    from tasks.locking import mailbox_lock

    user, _ = new_user(dovecot)
    register(dovecot, user, monkeypatch)
    with Session(get_engine()) as session:
        from models import Mailbox

        mailbox = session.scalars(select(Mailbox).where(Mailbox.address == user)).one()
    with mailbox_lock(mailbox.id, user):
        _, reports = run_sync(user)
        with pytest.raises(MailboxBusyError), mailbox_lock(mailbox.id, user):
            pass
    assert "another run is syncing it" in reports[0]["error"]


def test_small_batches_download_each_message_exactly_once(database, dovecot, monkeypatch):
    from tasks import imap

    user, password = new_user(dovecot)
    dovecot.append(user, password, "INBOX", [make_message(i).raw for i in range(35)])
    register(dovecot, user, monkeypatch, folders=["INBOX"])
    monkeypatch.setenv("INBOXFLOW_IMAP_BATCH_SIZE", "10")
    fetched_batches: list[list[int]] = []
    real_fetch = imap.fetch_messages

    def recording_fetch(client, uids):
        fetched_batches.append(list(uids))
        return real_fetch(client, uids)

    monkeypatch.setattr("tasks.sync.fetch_messages", recording_fetch)

    report = run_sync(user)[1][0]

    assert report["stored"] == 35 and report["duplicates"] == 0
    assert [len(b) for b in fetched_batches] == [10, 10, 10, 5]


def test_oauth2_mailbox_syncs_with_xoauth2_and_a_rejected_token_is_one_line(
    database, dovecot, monkeypatch
):
    from typer.testing import CliRunner

    from inboxflow.cli import app

    runner = CliRunner()
    good = f"o{uuid.uuid4().hex[:8]}@oauth.example"
    bad = f"o{uuid.uuid4().hex[:8]}@oauth.example"
    dovecot.add_user(good, "for-seeding-only")
    monkeypatch.setenv("GOOD_TOKEN", dovecot.add_oauth_token(good))
    dovecot.add_oauth_token(bad)
    monkeypatch.setenv("BAD_TOKEN", "expired-token")
    dovecot.append(good, "for-seeding-only", "INBOX", [make_message(i).raw for i in range(4)])
    add = [
        "provider",
        "add",
        "oauth",
        "--imap",
        f"{dovecot.host}:{dovecot.port}",
        "--imap-security",
        "starttls",
        "--auth",
        "oauth2",
        "--domain",
        "oauth.example",
    ]
    assert runner.invoke(app, add).exit_code == 0
    for address, variable in ((good, "GOOD_TOKEN"), (bad, "BAD_TOKEN")):
        result = runner.invoke(
            app, ["mailbox", "add", address, "--password-env", variable, "--tls-insecure"]
        )
        assert result.exit_code == 0, result.output

    result = runner.invoke(app, ["sync"])

    assert result.exit_code == 1
    assert f"{good}: 4 new emails stored" in result.stdout
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert bad in line and "refused" in line
