"""Checks of the real-Dovecot test fixture itself (tests/support/dovecot.py).

Run with the plugin loaded, e.g. ``pytest -p tests.support.dovecot_fixtures``.
"""

from __future__ import annotations

import datetime as dt
import pwd
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.support import dovecot as dovecot_module
from tests.support.dovecot import (
    DEFAULT_FOLDERS,
    MAIL_USER,
    Dovecot,
    DovecotError,
    live_processes,
)


def message(subject: str) -> bytes:
    return (
        f"From: a@example.test\r\nTo: b@example.test\r\nSubject: {subject}\r\n\r\nbody\r\n"
    ).encode()


def strict_context(dovecot: Dovecot) -> ssl.SSLContext:
    """Verify like Python 3.13+ does by default, so the cert keeps working there."""
    context = dovecot.ssl_context()
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def test_plaintext_login_and_default_folders(dovecot: Dovecot) -> None:
    user, password = dovecot.new_user()
    with dovecot.client(user, password) as imap:
        listed = imap.list_folders()
        subscribed = {name for _flags, _sep, name in imap.list_sub_folders()}
    assert {sep for _flags, sep, _name in listed} == {b"/"}
    assert {name for _flags, _sep, name in listed} == set(DEFAULT_FOLDERS)
    assert subscribed == set(DEFAULT_FOLDERS)


def test_starttls_verifies_against_cert(dovecot: Dovecot) -> None:
    user, password = dovecot.new_user()
    imap = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10)
    assert imap.has_capability("STARTTLS")
    imap.starttls(strict_context(dovecot))
    imap.login(user, password)
    assert imap.select_folder("INBOX")[b"EXISTS"] == 0
    imap.logout()


def test_implicit_tls_verifies_by_ip_and_by_localhost(dovecot: Dovecot) -> None:
    user, password = dovecot.new_user()
    with dovecot.client(user, password, tls=True) as imap:
        assert imap.noop()
    imap = IMAPClient("localhost", port=dovecot.tls_port, ssl_context=strict_context(dovecot))
    imap.login(user, password)
    imap.logout()


def test_tls_rejects_a_client_that_does_not_trust_the_cert(dovecot: Dovecot) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(dovecot.host, port=dovecot.tls_port, ssl_context=ssl.create_default_context())


def test_wrong_password_raises_login_error_and_does_not_slow_later_logins(
    dovecot: Dovecot,
) -> None:
    user, password = dovecot.new_user()
    for _ in range(3):
        with pytest.raises(LoginError):
            dovecot.client(user, "wrong")
    started = time.monotonic()
    dovecot.client(user, password).logout()
    # Dovecot's auth penalty would delay this login by several seconds.
    assert time.monotonic() - started < 1.0


def test_unknown_user_raises_login_error(dovecot: Dovecot) -> None:
    with pytest.raises(LoginError):
        dovecot.client("nobody@example.test", "secret")


def test_password_change_takes_effect_immediately(dovecot: Dovecot) -> None:
    user, _password = dovecot.new_user()
    dovecot.client(user, _password).logout()
    dovecot.add_user(user, "new-password", folders=())
    dovecot.client(user, "new-password").logout()
    with pytest.raises(LoginError):
        dovecot.client(user, _password)


def test_append_1000_messages_quickly(dovecot: Dovecot) -> None:
    user, password = dovecot.new_user()
    started = time.monotonic()
    uids = dovecot.append(user, password, "Support/Sub", [message(f"m{i}") for i in range(1000)])
    elapsed = time.monotonic() - started
    assert uids == list(range(1, 1001))
    with dovecot.client(user, password) as imap:
        assert imap.folder_status("Support/Sub", [b"MESSAGES"])[b"MESSAGES"] == 1000
    assert elapsed < 10, f"appending 1000 messages took {elapsed:.1f}s"


def test_append_keeps_date_and_flags_and_is_seen_does_not_mark_read(dovecot: Dovecot) -> None:
    user, password = dovecot.new_user()
    when = dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.UTC)
    seen = dovecot.append(user, password, "INBOX", [message("old")], when, flags=[r"\Seen"])
    unseen = dovecot.append(user, password, "INBOX", [message("new")])
    expected = {seen[0]: True, unseen[0]: False}
    assert dovecot.is_seen(user, password, "INBOX") == expected
    assert dovecot.is_seen(user, password, "INBOX") == expected
    with dovecot.client(user, password) as imap:
        imap.select_folder("INBOX", readonly=True)
        internal = imap.fetch(seen, ["INTERNALDATE"])[seen[0]][b"INTERNALDATE"]
    assert internal.astimezone(dt.UTC) == when


def test_create_and_delete_folders(dovecot: Dovecot) -> None:
    user, password = dovecot.new_user()
    dovecot.create_folder(user, password, "Projects/2024/Q1")
    folders = set(dovecot.list_folders(user, password))
    assert {"Projects", "Projects/2024", "Projects/2024/Q1"} <= folders

    dovecot.delete_folder(user, password, "Projects", recursive=True)
    assert set(dovecot.list_folders(user, password)) == set(DEFAULT_FOLDERS)

    dovecot.append(user, password, "Support/Sub", [message("child")])
    dovecot.delete_folder(user, password, "Support")
    with dovecot.client(user, password) as imap:
        assert imap.folder_status("Support/Sub", [b"MESSAGES"])[b"MESSAGES"] == 1
        assert "Support" not in {name for _f, _s, name in imap.list_sub_folders()}


def test_recreated_folder_gets_a_new_uidvalidity(dovecot: Dovecot) -> None:
    user, password = dovecot.new_user()
    with dovecot.client(user, password) as imap:
        before = imap.folder_status("Sent", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    dovecot.delete_folder(user, password, "Sent")
    dovecot.create_folder(user, password, "Sent")
    with dovecot.client(user, password) as imap:
        assert imap.folder_status("Sent", [b"UIDVALIDITY"])[b"UIDVALIDITY"] != before


def test_mail_is_owned_by_the_unprivileged_mail_user(dovecot: Dovecot) -> None:
    user, password = dovecot.new_user()
    dovecot.append(user, password, "INBOX", [message("owned")])
    local, domain = user.split("@")
    maildir = dovecot.mail_root / domain / local / "Maildir"
    files = [p for p in maildir.rglob("*") if p.is_file()]
    assert files
    mail_uid = pwd.getpwnam(MAIL_USER).pw_uid
    assert mail_uid != 0
    assert {p.stat().st_uid for p in files} == {mail_uid}


def test_xoauth2_login_with_registered_token(dovecot: Dovecot) -> None:
    user, password = dovecot.new_user()
    token = dovecot.add_oauth_token(user, "token-for-" + user)
    imap = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10)
    assert imap.has_capability("AUTH=XOAUTH2")
    imap.oauth2_login(user, token)
    assert imap.select_folder("INBOX")[b"EXISTS"] == 0
    imap.logout()
    # Password logins keep working next to OAuth2.
    dovecot.client(user, password).logout()


@pytest.mark.parametrize("case", ["unknown token", "password as token", "other user's token"])
def test_xoauth2_rejects_bad_tokens(dovecot: Dovecot, case: str) -> None:
    user, password = dovecot.new_user()
    other, _ = dovecot.new_user()
    token = {
        "unknown token": "no-such-token",
        "password as token": password,
        "other user's token": dovecot.add_oauth_token(other),
    }[case]
    imap = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10)
    with pytest.raises(LoginError):
        imap.oauth2_login(user, token)
    imap.shutdown()


def test_token_is_not_a_password(dovecot: Dovecot) -> None:
    user, _password = dovecot.new_user()
    token = dovecot.add_oauth_token(user)
    with pytest.raises(LoginError):
        dovecot.client(user, token)


def test_own_instance_starts_fast_and_stops_every_process(tmp_path: Path) -> None:
    server = Dovecot(tmp_path / "own")
    started = time.monotonic()
    with server:
        elapsed = time.monotonic() - started
        assert server._proc is not None
        pgid = server._proc.pid
        user, password = server.new_user()
        server.client(user, password).logout()  # spawns login, auth and imap processes
        assert len(live_processes(pgid)) >= 4  # master, log, auth, imap-login, ...
    assert elapsed < 2, f"start took {elapsed:.2f}s"
    assert not server.running
    assert live_processes(pgid) == []
    ours = subprocess.run(
        ["pgrep", "-f", f"dovecot-test-{server.port}/"], capture_output=True, text=True
    )
    assert ours.stdout == ""


def test_start_failure_reports_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = dovecot_module.CONFIG_TEMPLATE + "no_such_setting = 1\n"
    monkeypatch.setattr(dovecot_module, "CONFIG_TEMPLATE", broken)
    server = Dovecot(tmp_path / "broken")
    with pytest.raises(DovecotError, match="no_such_setting"):
        server.start()
    assert not server.running


def test_restart_keeps_users_and_mail_in_workdir(tmp_path: Path) -> None:
    server = Dovecot(tmp_path / "restart")
    with server:
        user, password = server.new_user()
        server.append(user, password, "Sent", [message("kept")])
        assert server.mail_root.is_symlink()  # into the private runtime dir
    assert server.mail_root.is_dir() and not server.mail_root.is_symlink()
    assert [p for p in server.mail_root.rglob(".Sent/*/*") if p.parent.name in ("new", "cur")]
    with server, server.client(user, password) as imap:
        assert imap.folder_status("Sent", [b"MESSAGES"])[b"MESSAGES"] == 1


def test_start_retries_when_a_picked_port_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind((dovecot_module.HOST, 0))
        taken.listen()
        busy = taken.getsockname()[1]
        picks = iter([busy, busy])  # the first attempt gets the busy port twice
        real_free_port = dovecot_module.free_port
        monkeypatch.setattr(
            dovecot_module, "free_port", lambda: next(picks, None) or real_free_port()
        )
        with Dovecot(tmp_path / "retry") as server:
            assert busy not in (server.port, server.tls_port)
            assert "Address already in use" in server.log_path.read_text()
