"""A real Dovecot IMAP server for the test suite, listening on 127.0.0.1 only.

The server runs from its own config file in a work directory (no /etc/dovecot, no
system state), stores mail as Maildir owned by the unprivileged ``mail`` user and
authenticates from a passwd-file (passwords) and, for XOAUTH2, from a tiny
token-introspection HTTP server that this module runs in a thread.
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

HOST = "127.0.0.1"
# Debian's conventional owner of mail files; any non-root user works, and Dovecot
# refuses to run mail processes as root unless first_valid_uid is lowered to 0.
MAIL_USER = "mail"
DEFAULT_FOLDERS = ("INBOX", "Sent", "Support", "Support/Sub")
# Long MULTIAPPEND commands are streamed by Dovecot, but keeping each one moderate
# bounds the client's memory and the size of a single failed command.
APPEND_BATCH = 500
# Unix socket paths (sun_path) are limited to 108 bytes; Dovecot's longest socket
# name under base_dir is about 25 characters.
MAX_BASE_DIR_LEN = 80

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


def allow_traverse(path: Path) -> None:
    """Make *path* and its ancestors searchable (o+x) for Dovecot's unprivileged processes.

    pytest's base temp dir is mode 0700; the auth process (user ``dovecot``) must
    read the passwd-file and the mail processes (user ``mail``) must reach the
    Maildirs. Only the search bit is added, so directory listings stay private.
    """
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & 0o001:
            directory.chmod((mode & 0o7777) | 0o001)


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
            target=self._httpd.serve_forever, name="dovecot-oauth2", daemon=True
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
# The default 2 s delay after a failed login would slow the wrong-password tests.
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
auth_verbose = yes
auth_debug = yes
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

# Passwords for PLAIN/LOGIN only; OAuth2 tokens never reach the passwd-file and
# passwords never reach the introspection server.
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {passwd_path}
  mechanisms = plain login
}}
passdb {{
  driver = oauth2
  args = {oauth2_path}
  mechanisms = xoauth2 oauthbearer
}}
userdb {{
  driver = passwd-file
  args = {passwd_path}
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
        self.passwd_path = self.workdir / "passwd"
        self.log_path = self.workdir / "dovecot.log"
        self.cert_path = self.workdir / "tls" / "cert.pem"
        self.key_path = self.workdir / "tls" / "key.pem"
        self.mail_root = self.workdir / "mail"
        self.port = 0
        self.tls_port = 0
        self._passwords: dict[str, str] = {}
        self._passwd_mtime = 0
        self._tokens = _TokenStore()
        self._oauth: _IntrospectionServer | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._base_dir: Path | None = None
        self._own_base_dir = False

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
        if self._own_base_dir and self._base_dir is not None:
            shutil.rmtree(self._base_dir, ignore_errors=True)
            self._base_dir = None

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
        mail = pwd.getpwnam(MAIL_USER)
        self.workdir.mkdir(parents=True, exist_ok=True)
        allow_traverse(self.workdir)
        self.cert_path.parent.mkdir(exist_ok=True)
        if not (self.cert_path.exists() and self.key_path.exists()):
            write_self_signed_cert(self.cert_path, self.key_path)
        self.mail_root.mkdir(exist_ok=True)
        # Homes are created on first login by the mail processes, as the mail user.
        os.chown(self.mail_root, mail.pw_uid, mail.pw_gid)
        self._write_passwd()
        self._base_dir = self._pick_base_dir()

    def _pick_base_dir(self) -> Path:
        """The runtime dir for sockets; moved to a short /tmp path if workdir is deep."""
        base_dir = self.workdir / "run"
        self._own_base_dir = len(str(base_dir)) > MAX_BASE_DIR_LEN
        if self._own_base_dir:
            base_dir = Path(tempfile.mkdtemp(prefix="dovecot-"))
            base_dir.chmod(0o755)
        return base_dir

    def _write_config(self) -> None:
        mail = pwd.getpwnam(MAIL_USER)
        self.port, self.tls_port = free_port(), free_port()
        while self.tls_port == self.port:
            self.tls_port = free_port()
        config = CONFIG_TEMPLATE.format(
            base_dir=self._base_dir,
            state_dir=self.workdir / "state",
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
            passwd_path=self.passwd_path,
            oauth2_path=self.oauth2_path,
            mail_root=self.mail_root,
            port=self.port,
            tls_port=self.tls_port,
        )
        self.conf_path.write_text(config)

    def _launch(self, binary: str, attempts: int = 3) -> None:
        """Start `dovecot -F`; retry with new ports if a picked port got taken meanwhile."""
        for attempt in range(attempts):
            self._write_config()
            self.log_path.unlink(missing_ok=True)
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
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                self._probe()
                return True
            time.sleep(0.02)
        return False

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
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)

    # -- users and tokens --------------------------------------------------

    def add_user(self, user: str, password: str, folders: Sequence[str] = DEFAULT_FOLDERS) -> None:
        """Add (or re-password) *user*, then create and subscribe *folders* for them.

        Dovecot re-reads the passwd-file when it changes, so this works while the
        server runs; folder creation needs the server running.
        """
        for value in (user, password):
            if any(ch in value for ch in ":\n\r") or not value:
                raise ValueError(f"passwd-file cannot hold {value!r}")
        self._passwords[user] = password
        self._write_passwd()
        self._wait_for_user(user)
        if folders:
            self.doveadm("mailbox", "create", "-s", "-u", user, *folders)

    def add_oauth_token(self, user: str, token: str | None = None) -> str:
        """Make *token* a valid XOAUTH2/OAUTHBEARER access token for *user*; returns it.

        The user is created with a random password if unknown, because the userdb
        (home, uid) still comes from the passwd-file.
        """
        token = token or secrets.token_urlsafe(24)
        if user not in self._passwords:
            self.add_user(user, secrets.token_urlsafe(16))
        self._tokens.add(token, user)
        return token

    def _write_passwd(self) -> None:
        """Rewrite the passwd-file atomically so Dovecot never reads half a file."""
        lines = "".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self._passwords.items())
        tmp = self.passwd_path.with_suffix(".tmp")
        tmp.write_text(lines)
        tmp.chmod(0o644)
        # Dovecot re-reads the file only when its mtime (whole seconds) or size
        # changes; a same-length password change within one second would be missed,
        # so every version gets a later mtime than the previous one.
        self._passwd_mtime = max(int(time.time()), self._passwd_mtime + 1)
        os.utime(tmp, (self._passwd_mtime, self._passwd_mtime))
        os.replace(tmp, self.passwd_path)

    def _wait_for_user(self, user: str, timeout: float = 3.0) -> None:
        """Wait until the auth process has re-read the passwd-file and knows *user*."""
        deadline = time.monotonic() + timeout
        while True:
            result = self._doveadm_run("user", "-u", user, check=False)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise DovecotError(f"Dovecot does not know {user!r}: {result.stderr.strip()}")
            time.sleep(0.05)

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
        if tls:
            imap = IMAPClient(
                self.host, port=self.tls_port, ssl=True, ssl_context=self.ssl_context(),
                timeout=30,
            )  # fmt: skip
        else:
            imap = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
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
        """CREATE and SUBSCRIBE *folder* (parents are created implicitly)."""
        with self._session(user, password) as imap:
            imap.create_folder(folder)
            imap.subscribe_folder(folder)

    def delete_folder(self, user: str, password: str, folder: str) -> None:
        """DELETE *folder* and its subfolders (deepest first), unsubscribing them."""
        with self._session(user, password) as imap:
            # LIST patterns: the folder itself, then everything below it.
            names = [name for _f, _s, name in imap.list_folders("", folder)]
            names += [name for _f, _s, name in imap.list_folders("", folder + "/*")]
            for name in sorted(set(names), key=lambda n: n.count("/"), reverse=True):
                with contextlib.suppress(Exception):
                    imap.unsubscribe_folder(name)
                imap.delete_folder(name)

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
