"""A real SMTP server for the tests (aiosmtpd), listening on 127.0.0.1 only.

Two listeners on kernel-chosen ports: ``port`` speaks plaintext and offers
STARTTLS, ``tls_port`` is implicit TLS. Both offer PIPELINING (RFC 2920), as
Postfix, Exchange and Gmail do; ``pipelining=False`` makes a server that does
not. Both require AUTH (PLAIN or LOGIN, also over plaintext so the ``none``
security mode can be tested) against ``users``, or XOAUTH2 with an access token
from ``tokens``.
Every accepted message is kept as a ``Received`` — envelope, exact bytes, who
logged in, whether TLS was on — for the test to read back and parse.

Faults a test can switch on: ``refuse`` (address → reply to its RCPT TO or
MAIL FROM, e.g. "550 5.1.1 no such user"), ``data_reply`` (the reply to the end
of DATA), ``on_data`` (a callback run after the message is stored and before the
reply, e.g. to SIGKILL the sending process), and ``stop()``/``start()`` (the
server is down, then back on the same ports).

``python -m tests.support.smtp [--no-pipelining] LOGIN:PASSWORD...`` runs a
counting sink in its own process (for the benchmark): it prints
``{"port": ..., "tls_port": ...}``, serves until stdin closes, then prints
``{"received": N, "bytes": B}``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
import ssl
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.dovecot import write_self_signed_cert

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None
    tls: bool
    port: int

    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str:
        return str(self.message()["Message-ID"])


@dataclass
class _Handler:
    server: SmtpServer
    port: int
    implicit_tls: bool

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        """Google's and Microsoft's XOAUTH2: "user=LOGIN^Aauth=Bearer TOKEN^A^A", base64."""
        if len(args) < 2:
            answer = await server.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=False)
        else:
            try:
                answer = base64.b64decode(args[1].encode(), validate=True)
            except ValueError:
                return AuthResult(success=False, handled=False)
        fields = dict(
            part.split("=", 1) for part in answer.decode(errors="replace").split("\x01") if part
        )
        login, bearer = fields.get("user", ""), fields.get("auth", "")
        success = bool(login) and bearer == f"Bearer {self.server.tokens.get(login)}"
        return AuthResult(success=success, handled=False, auth_data=login if success else None)

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook name
        self,
        _server: SMTP,
        session: Session,
        _envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """aiosmtpd reads commands from a buffered stream and answers them in order, so
        it serves a pipelined group correctly; it just does not say so by itself."""
        session.host_name = hostname
        if self.server.pipelining:
            responses.insert(-1, "250-PIPELINING")  # before the last line, "250 HELP"
        return responses

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self,
        _server: SMTP,
        _session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        reply = self.server.refuse.get(address.lower())
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        _server: SMTP,
        _session: Session,
        envelope: Envelope,
        address: str,
        _options: list[str],
    ) -> str:
        reply = self.server.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.server.data_reply and not self.server.data_reply.startswith("2"):
            return self.server.data_reply
        login = session.auth_data if isinstance(session.auth_data, str) else None
        tls = self.implicit_tls or session.ssl is not None
        received = Received(
            envelope.mail_from or "",
            list(envelope.rcpt_tos),
            bytes(envelope.original_content or b""),
            login,
            tls,
            self.port,
        )
        self.server.record(received)
        if self.server.on_data is not None:
            self.server.on_data(received)
        return self.server.data_reply or "250 2.0.0 Ok: queued"


@dataclass
class SmtpServer:
    """aiosmtpd in a thread of its own; see the module docstring."""

    workdir: Path
    users: dict[str, str] = field(default_factory=dict)
    # login -> the access token XOAUTH2 accepts for it
    tokens: dict[str, str] = field(default_factory=dict)
    refuse: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    on_data: Callable[[Received], None] | None = None
    keep_messages: bool = True
    pipelining: bool = True
    host: str = HOST
    port: int = 0
    tls_port: int = 0
    count: int = 0
    total_bytes: int = 0

    def __post_init__(self) -> None:
        # aiosmtpd logs each connection and warns about AUTH without TLS (on purpose here).
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        self.cert_path = self.workdir / "smtp-cert.pem"
        self.key_path = self.workdir / "smtp-key.pem"
        self._received: list[Received] = []
        self._condition = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._protocols: set[SMTP] = set()

    # -- lifecycle ---------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self._servers)

    def start(self) -> SmtpServer:
        """Listen (again) on the same ports; the first start takes ports from the kernel."""
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.cert_path.exists():
            write_self_signed_cert(self.cert_path, self.key_path)
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="test-smtp", daemon=True
            )
            self._thread.start()
        plain, tls = _listen(self.host, self.port), _listen(self.host, self.tls_port)
        self.port, self.tls_port = plain.getsockname()[1], tls.getsockname()[1]
        context = self._server_context()
        self._servers = [
            self._call(self._serve(plain, starttls=context, implicit=None)),
            self._call(self._serve(tls, starttls=None, implicit=context)),
        ]
        return self

    def stop(self) -> None:
        """Close both listeners and every open connection (the server is "down")."""
        if self._loop is None:
            return
        servers, self._servers = self._servers, []
        self._call(self._close(servers))

    def close(self) -> None:
        """Stop and end the server's thread; idempotent."""
        self.stop()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            assert self._thread is not None
            self._thread.join(timeout=10)
            self._loop.close()
            self._loop = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what arrived -------------------------------------------------------

    def record(self, received: Received) -> None:
        with self._condition:
            self.count += 1
            self.total_bytes += len(received.data)
            if self.keep_messages:
                self._received.append(received)
            self._condition.notify_all()

    def messages(self, recipient: str | None = None) -> list[Received]:
        """Accepted messages, oldest first; only those for ``recipient`` if given."""
        with self._condition:
            found = list(self._received)
        if recipient is None:
            return found
        return [m for m in found if recipient.lower() in (r.lower() for r in m.rcpt_tos)]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self._received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._condition.wait(left)
            return list(self._received)

    def clear(self) -> None:
        with self._condition:
            self._received.clear()
            self.count = self.total_bytes = 0

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this server's self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    # -- internals -----------------------------------------------------------

    def _server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def _call(self, coroutine: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _serve(
        self,
        sock: socket.socket,
        starttls: ssl.SSLContext | None,
        implicit: ssl.SSLContext | None,
    ) -> asyncio.AbstractServer:
        handler = _Handler(self, sock.getsockname()[1], implicit is not None)

        def protocol() -> SMTP:
            with warnings.catch_warnings():
                # AUTH over plaintext is on purpose: the "none" security mode is tested too.
                warnings.simplefilter("ignore")
                smtp = _Smtp(
                    handler,
                    hostname="smtp.test",
                    tls_context=starttls,
                    auth_required=True,
                    auth_require_tls=False,
                    authenticator=self._authenticate,
                    loop=self._loop,
                )
            self._protocols.add(smtp)
            return smtp

        return await asyncio.get_running_loop().create_server(protocol, sock=sock, ssl=implicit)

    async def _close(self, servers: list[asyncio.AbstractServer]) -> None:
        for server in servers:
            server.close()
        for smtp in list(self._protocols):
            if smtp.transport is not None:
                smtp.transport.abort()
        self._protocols.clear()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    def _authenticate(
        self,
        _server: SMTP,
        _session: Session,
        _envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        success = login in self.users and self.users[login] == password
        return AuthResult(success=success, handled=False, auth_data=login if success else None)


class _Smtp(SMTP):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Each reply leaves at once, as an MTA flushes its replies. With Nagle's
        # algorithm, which asyncio does not switch off on a socket it is handed, the
        # second reply to a pipelined group would wait for the client's delayed ACK
        # (~40 ms).
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket: a kernel-chosen port, or the same port again after a stop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def main() -> None:
    """A counting sink in a process of its own (the benchmark's server)."""
    arguments = sys.argv[1:]
    pipelining = "--no-pipelining" not in arguments
    users = dict(arg.split(":", 1) for arg in arguments if not arg.startswith("--"))
    with tempfile.TemporaryDirectory(prefix="smtp-sink-") as tmp:
        server = SmtpServer(
            Path(tmp), users=users, keep_messages=False, pipelining=pipelining
        ).start()
        print(json.dumps({"port": server.port, "tls_port": server.tls_port}), flush=True)
        sys.stdin.read()  # until the parent closes our stdin
        print(json.dumps({"received": server.count, "bytes": server.total_bytes}), flush=True)
        server.close()


if __name__ == "__main__":
    main()
