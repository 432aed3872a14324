"""A real Dovecot IMAP server for the test suite, listening on 127.0.0.1 only.

The server runs from its own config file in a work directory (no /etc/dovecot, no
system state), stores mail as Maildir owned by the unprivileged ``mail`` user and
authenticates from passwd-files (passwords) and, for XOAUTH2, from a tiny
token-introspection HTTP server that this module runs in a thread.

Work directory layout: dovecot.conf, dovecot.log, tls/cert.pem, and ``mail/`` and
``users/`` (one passwd-file per user). While the server runs, ``mail`` and ``users``
are symlinks into a private runtime dir under /tmp (see ``_Runtime``); stop() moves
them back, so mail survives a restart and stays inspectable after the tests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

HOST = "127.0.0.1"
# Debian's conventional owner of mail files; any non-root user works, and Dovecot
# refuses to run mail processes as root unless first_valid_uid is lowered to 0.
MAIL_USER = "mail"
DEFAULT_FOLDERS = ("INBOX", "Sent", "Support", "Support/Sub")
# Long MULTIAPPEND commands are streamed by Dovecot, but keeping each one moderate
# bounds the client's memory and the size of a single failed command.
APPEND_BATCH = 500

_APPENDUID = re.compile(rb"\[APPENDUID \d+ ([0-9:,]+)\]")


class DovecotError(RuntimeError):
    """Dovecot failed to start, stop or run a doveadm command."""


def find_binary(name: str) -> str | None:
    """Locate a Dovecot binary; /usr/sbin is often missing from a non-login PATH."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")


def free_port() -> int:
    """Ask the kernel for an unused loopback TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def write_self_signed_cert(cert_path: Path, key_path: Path) -> None:
    """Write a self-signed certificate for 127.0.0.1/localhost usable as its own CA file.

    The extensions (SKI/AKI, key usage, EKU) keep it acceptable to OpenSSL's strict
    X.509 checks, which newer Pythons enable by default.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    san = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
    )
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(san, critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path.write_bytes(key_pem)
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class _Runtime:
    """Private dir for what Dovecot's unprivileged processes must reach.

    The auth process (user ``dovecot``) reads the passwd-files and the mail
    processes (user ``mail``) the Maildirs, so neither may sit below a directory
    they cannot search. pytest keeps its temp root at mode 0700, and every new
    pytest session (other runs on the same machine included) resets it to that,
    so these live in /tmp instead. The short path also keeps Dovecot's socket
    paths (in ``run/``) under the 108-byte limit of Unix sockets.
    """

    MOVABLE = ("mail", "users")

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.path = Path(tempfile.mkdtemp(prefix="inboxflow-dovecot-", dir="/tmp"))
        self.path.chmod(0o711)  # search only: unprivileged users reach known names
        self.base_dir = self.path / "run"
        for name in self.MOVABLE:
            self._adopt(name)
        mail = pwd.getpwnam(MAIL_USER)
        # Homes are created on first login by the mail processes, as the mail user.
        os.chown(self.path / "mail", mail.pw_uid, mail.pw_gid)

    def _adopt(self, name: str) -> None:
        """Move workdir/NAME (from an earlier run) here and leave a symlink behind."""
        target, link = self.path / name, self.workdir / name
        if link.is_symlink():
            link.unlink()
        if link.is_dir():
            shutil.move(link, target)
        else:
            target.mkdir()
        target.chmod(0o755 if name == "users" else 0o700)
        link.symlink_to(target)

    def close(self) -> None:
        """Move mail and users back into workdir and delete the rest (sockets)."""
        for name in self.MOVABLE:
            link = self.workdir / name
            if link.is_symlink():
                link.unlink()
                shutil.move(self.path / name, link)
        shutil.rmtree(self.path, ignore_errors=True)


class _TokenStore:
    """Thread-safe map of OAuth2 access token -> username."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}

    def add(self, token: str, user: str) -> None:
        with self._lock:
            self._tokens[token] = user

    def owner(self, token: str) -> str | None:
        with self._lock:
            return self._tokens.get(token)


class _IntrospectionHandler(BaseHTTPRequestHandler):
    """RFC 7662 token introspection, as called by Dovecot's ``introspection_mode = post``."""

    tokens: _TokenStore  # set on a per-server subclass

    def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        token = (form.get("token") or [""])[0]
        user = self.tokens.owner(token)
        body = {"active": True, "username": user} if user else {"active": False}
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Keep test output clean; Dovecot's log records failed logins."""


class _IntrospectionServer:
    """The HTTP introspection endpoint, served from a daemon thread on 127.0.0.1."""

    def __init__(self, tokens: _TokenStore) -> None:
        handler = type("Handler", (_IntrospectionHandler,), {"tokens": tokens})
        self._httpd = ThreadingHTTPServer((HOST, 0), handler)
        self._httpd.daemon_threads = True
        self.url = f"http://{HOST}:{self._httpd.server_port}/introspect"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one interval
            name="dovecot-oauth2",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


CONFIG_TEMPLATE = """\
# Written by tests/support/dovecot.py; self-contained (no /etc/dovecot includes).
base_dir = {base_dir}
state_dir = {state_dir}
instance_name = {instance_name}
listen = {host}
protocols = imap
log_path = {log_path}
# Tests log in as many users from one address, often in parallel.
mail_max_userip_connections = 500
# The default 2 s delay after a failed login would slow the wrong-password tests
# (a failure still takes ~0.5 s: failures are answered from a 500 ms timer).
auth_failure_delay = 0
auth_verbose = yes
# Password logins on the plaintext port, as for a provider with security `none`
# (Dovecot already counts loopback as secure; this keeps it so on any address).
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer

ssl = yes
ssl_cert = <{cert_path}
ssl_key = <{key_path}

mail_location = maildir:~/Maildir
mail_uid = {mail_user}
mail_gid = {mail_group}
first_valid_uid = {mail_uid}
last_valid_uid = {mail_uid}
first_valid_gid = {mail_gid}
last_valid_gid = {mail_gid}

namespace inbox {{
  inbox = yes
  separator = /
  prefix =
}}

# One passwd-file per user (path with %u): Dovecot stats a passwd-file at most
# once per second, so edits to one shared file could go unseen for up to a
# second, while a user's new file is read on first use. Passwords serve
# PLAIN/LOGIN only and OAuth2 tokens only XOAUTH2/OAUTHBEARER, so neither leaks
# to the other backend.
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users_dir}/%u
  mechanisms = plain login
}}
passdb {{
  driver = oauth2
  args = {oauth2_path}
  mechanisms = xoauth2 oauthbearer
}}
userdb {{
  driver = passwd-file
  args = {users_dir}/%u
  default_fields = uid={mail_user} gid={mail_group} home={mail_root}/%d/%n
}}

service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {tls_port}
    ssl = yes
  }}
}}
"""

OAUTH2_TEMPLATE = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
"""


class Dovecot:
    """One Dovecot instance: config, TLS cert, users, Maildirs and log in *workdir*."""

    host = HOST

    def __init__(self, workdir: Path, *, start_timeout: float = 10.0) -> None:
        self.workdir = Path(workdir).resolve()
        self.start_timeout = start_timeout
        self.conf_path = self.workdir / "dovecot.conf"
        self.oauth2_path = self.workdir / "dovecot-oauth2.conf.ext"
        # Symlinks into the runtime dir while running; see _Runtime.
        self.users_dir = self.workdir / "users"
        self.log_path = self.workdir / "dovecot.log"
        self.cert_path = self.workdir / "tls" / "cert.pem"
        self.key_path = self.workdir / "tls" / "key.pem"
        self.mail_root = self.workdir / "mail"
        self.port = 0
        self.tls_port = 0
        self._passwords: dict[str, str] = {}
        self._tokens = _TokenStore()
        self._oauth: _IntrospectionServer | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._runtime: _Runtime | None = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Dovecot:
        """Write the config, start Dovecot and wait until both IMAP ports answer."""
        if self.running:
            return self
        binary = find_binary("dovecot")
        if binary is None:
            raise DovecotError(
                "the `dovecot` binary is not installed (apt-get install dovecot-imapd)"
            )
        if os.geteuid() != 0:
            # Dovecot needs root to switch to its login, auth and mail users.
            raise DovecotError("starting Dovecot for tests needs root")
        self._prepare_workdir()
        self._oauth = _IntrospectionServer(self._tokens)
        self.oauth2_path.write_text(OAUTH2_TEMPLATE.format(url=self._oauth.url))
        try:
            self._launch(binary)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop Dovecot and every process it started; idempotent."""
        if self._proc is not None:
            self._terminate(self._proc)
            self._proc = None
        if self._oauth is not None:
            self._oauth.close()
            self._oauth = None
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        """The end of Dovecot's log (and of its stdout/stderr), for error messages."""
        parts = []
        for path in (self.log_path, self.workdir / "dovecot.stdout"):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(parts) or "(no log written)"

    def _prepare_workdir(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cert_path.parent.mkdir(exist_ok=True)
        if not (self.cert_path.exists() and self.key_path.exists()):
            write_self_signed_cert(self.cert_path, self.key_path)
        self._runtime = _Runtime(self.workdir)

    def _write_config(self) -> None:
        assert self._runtime is not None
        runtime = self._runtime.path
        mail = pwd.getpwnam(MAIL_USER)
        self.port, self.tls_port = free_port(), free_port()
        while self.tls_port == self.port:
            self.tls_port = free_port()
        config = CONFIG_TEMPLATE.format(
            base_dir=self._runtime.base_dir,
            state_dir=runtime / "state",
            # Distinct per instance so process titles and doveadm -i don't collide.
            instance_name=f"dovecot-test-{self.port}",
            host=self.host,
            log_path=self.log_path,
            cert_path=self.cert_path,
            key_path=self.key_path,
            mail_user=MAIL_USER,
            mail_group=MAIL_USER,
            mail_uid=mail.pw_uid,
            mail_gid=mail.pw_gid,
            # Dovecot gets the real paths: its users cannot pass through workdir.
            users_dir=runtime / "users",
            oauth2_path=self.oauth2_path,
            mail_root=runtime / "mail",
            port=self.port,
            tls_port=self.tls_port,
        )
        self.conf_path.write_text(config)

    def _launch(self, binary: str, attempts: int = 3) -> None:
        """Start `dovecot -F`; retry with new ports if a picked port got taken meanwhile."""
        for attempt in range(attempts):
            self._write_config()  # the log is appended to, so restarts keep history
            with open(self.workdir / "dovecot.stdout", "wb") as out:
                # A new session makes the master's pid the process-group id of every
                # process it forks, so stop() can reap stragglers by that one id.
                self._proc = subprocess.Popen(
                    [binary, "-F", "-c", str(self.conf_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready():
                return
            self._terminate(self._proc)
            self._proc = None
            if "Address already in use" not in self.log_tail() or attempt == attempts - 1:
                break
        raise DovecotError(f"Dovecot did not start on {self.host}\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        """Wait until the plaintext port greets and the TLS port completes a handshake."""
        deadline = time.monotonic() + self.start_timeout
        penalty_disabled = False
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False
            # Must happen before the first login starts the (lazy) auth process.
            penalty_disabled = penalty_disabled or self._disable_auth_penalty()
            if penalty_disabled:
                with contextlib.suppress(OSError):
                    self._probe()
                    return True
            time.sleep(0.01)
        return False

    def _disable_auth_penalty(self) -> bool:
        """Remove anvil's auth-penalty socket; True once it is gone.

        After a failed login Dovecot delays every later login from the same IP by
        2-15 s for half a minute (the "auth penalty"), which would make one
        wrong-password test slow down the whole suite. 2.3 has no setting for it
        (login_trusted_networks no longer exempts), but the auth process silently
        disables the penalty when this socket is missing (ENOENT) at its start.
        """
        assert self._runtime is not None
        socket_path = self._runtime.base_dir / "anvil-auth-penalty"
        if not socket_path.exists():
            return False
        socket_path.unlink()
        return True

    def _probe(self) -> None:
        with socket.create_connection((self.host, self.port), timeout=2) as sock:
            if not sock.recv(256).startswith(b"* OK"):
                raise OSError("unexpected IMAP greeting")
        with (
            socket.create_connection((self.host, self.tls_port), timeout=2) as raw,
            self.ssl_context().wrap_socket(raw, server_hostname=self.host) as tls,
        ):
            if not tls.recv(256).startswith(b"* OK"):
                raise OSError("unexpected IMAPS greeting")

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the master (it stops its children), then SIGKILL whatever is left."""
        pgid = proc.pid  # equal to the pid thanks to start_new_session
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                # Dovecot's master sleeps 1 s while shutting down, by design.
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if live_processes(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while live_processes(pgid) and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- users and tokens --------------------------------------------------

    def add_user(self, user: str, password: str, folders: Sequence[str] = DEFAULT_FOLDERS) -> None:
        """Add (or re-password) *user*, then create and subscribe *folders* for them.

        Needs the server running; Dovecot picks up the user's passwd-file at once.
        """
        if not self.running:
            raise DovecotError("Dovecot is not running; call start() first")
        if not user or any(ch in user for ch in ":/\n\r") or user.startswith("."):
            raise ValueError(f"unusable user name {user!r}")
        if not password or any(ch in password for ch in ":\n\r"):
            raise ValueError(f"a passwd-file cannot hold the password {password!r}")
        changed = self._passwords.get(user) not in (None, password)
        self._passwords[user] = password
        self._write_user_file(user, password)
        if changed:
            _sleep_past_second()
        if folders:
            self.doveadm("mailbox", "create", "-s", "-u", user, *folders)

    def new_user(self, prefix: str = "user", domain: str = "example.test") -> tuple[str, str]:
        """Add a user with a unique address, a random password and the default folders."""
        user = f"{prefix}-{secrets.token_hex(4)}@{domain}"
        password = secrets.token_urlsafe(12)
        self.add_user(user, password)
        return user, password

    def add_oauth_token(self, user: str, token: str | None = None) -> str:
        """Make *token* a valid XOAUTH2/OAUTHBEARER access token for *user*; returns it.

        An unknown user is created with a random password and the default folders,
        because home and uid still come from the user's passwd-file.
        """
        token = token or secrets.token_urlsafe(24)
        if user not in self._passwords:
            self.add_user(user, secrets.token_urlsafe(16))
        self._tokens.add(token, user)
        return token

    def _write_user_file(self, user: str, password: str) -> None:
        """Write the user's passwd-file atomically so Dovecot never reads half a file.

        Dovecot notices a change by mtime (whole seconds) or size, so a same-length
        password change within a second gets a later mtime than the old file's.
        """
        path = self.users_dir / user
        mtime = int(time.time())
        with contextlib.suppress(FileNotFoundError):
            mtime = max(mtime, int(path.stat().st_mtime) + 1)
        tmp = path.with_name(f".{user}.tmp")
        tmp.write_text(f"{user}:{{PLAIN}}{password}::::::\n")
        tmp.chmod(0o644)
        os.utime(tmp, (mtime, mtime))
        os.replace(tmp, path)

    # -- doveadm -----------------------------------------------------------

    def doveadm(self, *args: str) -> str:
        """Run `doveadm -c CONF ARGS...` against this instance; returns stdout."""
        return self._doveadm_run(*args, check=True).stdout

    def _doveadm_run(self, *args: str, check: bool) -> subprocess.CompletedProcess[str]:
        if not self.running:
            raise DovecotError("Dovecot is not running; call start() first")
        binary = find_binary("doveadm") or "doveadm"
        result = subprocess.run(
            [binary, "-c", str(self.conf_path), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check and result.returncode != 0:
            raise DovecotError(
                f"doveadm {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.strip()}\n{self.log_tail(10)}"
            )
        return result

    # -- IMAP helpers for tests ---------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts only this server's self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def client(self, user: str, password: str, *, tls: bool = False) -> IMAPClient:
        """A logged-in IMAPClient: plaintext port by default, implicit TLS with tls=True."""
        port, context = (self.tls_port, self.ssl_context()) if tls else (self.port, None)
        imap = IMAPClient(self.host, port=port, ssl=tls, ssl_context=context, timeout=30)
        try:
            imap.login(user, password)
        except BaseException:
            imap.shutdown()
            raise
        return imap

    @contextlib.contextmanager
    def _session(self, user: str, password: str) -> Iterator[IMAPClient]:
        imap = self.client(user, password)
        try:
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    def append(
        self,
        user: str,
        password: str,
        folder: str,
        messages: Iterable[bytes],
        msg_time: dt.datetime | None = None,
        flags: Sequence[str | bytes] = (),
    ) -> list[int]:
        """APPEND *messages* over one connection with MULTIAPPEND; returns their UIDs."""
        items: list[bytes | dict[str, object]] = []
        for message in messages:
            if msg_time is None and not flags:
                items.append(message)
                continue
            item: dict[str, object] = {"msg": message, "flags": tuple(flags)}
            if msg_time is not None:
                item["date"] = msg_time
            items.append(item)
        uids: list[int] = []
        with self._session(user, password) as imap:
            for start in range(0, len(items), APPEND_BATCH):
                # multiappend returns imaplib's (typ, data) and does not check typ.
                typ, data = imap.multiappend(folder, items[start : start + APPEND_BATCH])
                if typ != "OK":
                    raise DovecotError(f"APPEND to {folder!r} failed: {typ} {data!r}")
                uids.extend(_appended_uids(b" ".join(data)))
        return uids

    def create_folder(self, user: str, password: str, folder: str) -> None:
        """CREATE and SUBSCRIBE *folder* and any missing parents.

        Dovecot's Maildir++ storage creates only the leaf and merely lists the
        parents, which then cannot be selected or deleted; real clients create
        each level, so this does too.
        """
        parts = folder.split("/")
        with self._session(user, password) as imap:
            for depth in range(1, len(parts) + 1):
                name = "/".join(parts[:depth])
                with contextlib.suppress(IMAPClientError):
                    imap.create_folder(name)  # fails if it exists, which is fine
                imap.subscribe_folder(name)
            imap.select_folder(folder, readonly=True)  # proves the leaf exists

    def delete_folder(
        self, user: str, password: str, folder: str, *, recursive: bool = False
    ) -> None:
        """UNSUBSCRIBE and DELETE *folder*, like a plain IMAP client.

        Subfolders survive (Dovecot allows that) unless *recursive*, which deletes
        them first, deepest first. Re-creating a deleted folder gives it a new
        UIDVALIDITY.
        """
        with self._session(user, password) as imap:
            if recursive:
                below = [name for _f, _s, name in imap.list_folders("", folder + "/*")]
                for name in sorted(below, key=lambda n: n.count("/"), reverse=True):
                    # A listed-only parent (see create_folder) has nothing to delete.
                    with contextlib.suppress(IMAPClientError):
                        imap.unsubscribe_folder(name)
                    with contextlib.suppress(IMAPClientError):
                        imap.delete_folder(name)
            with contextlib.suppress(IMAPClientError):  # it may not be subscribed
                imap.unsubscribe_folder(folder)
            imap.delete_folder(folder)

    def list_folders(self, user: str, password: str) -> list[str]:
        """All folder names of *user*, e.g. ["INBOX", "Sent", "Support", "Support/Sub"]."""
        with self._session(user, password) as imap:
            return [name for _flags, _sep, name in imap.list_folders()]

    def is_seen(self, user: str, password: str, folder: str) -> dict[int, bool]:
        """UID -> has \\Seen, read via EXAMINE + FETCH FLAGS so nothing gets marked read."""
        with self._session(user, password) as imap:
            imap.select_folder(folder, readonly=True)
            uids = imap.search("ALL")
            flags = imap.get_flags(uids) if uids else {}
        return {uid: b"\\Seen" in f for uid, f in flags.items()}


def live_processes(pgid: int) -> list[int]:
    """PIDs of the running processes in process group *pgid* (Linux /proc).

    Zombies are left out: the children of an exited master are reaped by init
    whenever it gets to it, but they hold no ports or files any more.
    """
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # Fields after the parenthesised command: state, ppid, pgrp, ...
            state, _ppid, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
            if int(pgrp) == pgid and state not in ("Z", "X"):
                pids.append(int(stat.parent.name))
    return pids


def _sleep_past_second() -> None:
    """Sleep into the next wall-clock second.

    The auth process re-checks a passwd-file at most once per second; after that
    boundary any lookup sees the rewritten file.
    """
    now = time.time()
    time.sleep(int(now) + 1 - now + 0.01)


def _appended_uids(response: bytes) -> list[int]:
    """UIDs from Dovecot's `[APPENDUID validity 5:9]` response code (RFC 4315)."""
    match = _APPENDUID.search(response)
    if match is None:
        return []
    uids: list[int] = []
    for part in match.group(1).split(b","):
        first, _, last = part.partition(b":")
        uids.extend(range(int(first), int(last or first) + 1))
    return uids
