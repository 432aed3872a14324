"""SMTP with smtplib: one connection per mailbox, reused for every email of a run.

smtplib's errors become ours here, sorted by what the sender must do next:

- ``SmtpTemporaryError``: 4xx, refused connection, timeout — nothing was handed
  over; try again later.
- ``SmtpPermanentError``: 5xx, refused login, TLS failure — trying again will not help.
- ``SmtpUncertainError``: the connection broke after the message went out and
  before the server's reply — it may have been delivered; never resend blindly.

Why not ``yagmail.SMTP.send``: it re-sends a message by itself when the connection
drops (a duplicate if the server had taken it), keeps failures in a list instead of
raising, and guesses whether a string is a file to attach. The outbox needs to know
exactly which step failed, so it speaks the transaction itself (MAIL, RCPT, DATA)
with the standard library's smtplib.
"""

import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from tasks.credentials import ServerLogin
from tasks.errors import SmtpError, SmtpPermanentError, SmtpTemporaryError, SmtpUncertainError

CRLF = b"\r\n"
_LEADING_DOT = re.compile(rb"(?m)^\.")


@dataclass(frozen=True)
class SmtpSettings(ServerLogin):
    """Everything needed to submit mail for one mailbox."""

    timeout: float = 40.0

    @property
    def where(self) -> str:
        return f"mailbox {self.address}: SMTP {self.host}:{self.port}"


@dataclass(frozen=True)
class Delivery:
    """The server took the message: its reply, and the recipients it refused meanwhile."""

    reply: str
    refused: dict[str, str] = field(default_factory=dict)


def open_connection(settings: SmtpSettings) -> smtplib.SMTP:
    """A connected, secured and logged-in SMTP connection."""
    where = settings.where
    context = settings.tls_context()
    # gethostname, not smtplib's default getfqdn: that does a reverse DNS lookup,
    # which stalls for seconds on machines without a resolver.
    helo = socket.gethostname() or "localhost"
    try:
        if settings.security == "ssl":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                local_hostname=helo,
                timeout=settings.timeout,
                context=context,
            )
        else:
            connection = smtplib.SMTP(
                settings.host, settings.port, local_hostname=helo, timeout=settings.timeout
            )
            if settings.security == "starttls":
                connection.starttls(context=context)
        connection.ehlo_or_helo_if_needed()
    except smtplib.SMTPNotSupportedError as exc:
        raise SmtpPermanentError(f"{where}: the server does not offer STARTTLS") from exc
    except ssl.SSLCertVerificationError as exc:
        raise SmtpPermanentError(
            f"{where}: the server's TLS certificate is not trusted ({exc.verify_message}); "
            "install its CA certificate (tls_insecure is for test servers only)"
        ) from exc
    except ssl.SSLError as exc:
        raise SmtpPermanentError(
            f"{where}: TLS handshake failed ({exc.reason or exc}); "
            "is the port plaintext or STARTTLS rather than SSL/TLS?"
        ) from exc
    except smtplib.SMTPResponseException as exc:
        raise _by_code(exc.smtp_code, f"{where}: the server refused us", _reply(exc)) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise SmtpTemporaryError(f"{where}: {_network_cause(exc, settings.timeout)}") from exc
    try:
        _login(connection, settings)
    except BaseException:
        connection.close()
        raise
    return connection


def _login(connection: smtplib.SMTP, settings: SmtpSettings) -> None:
    where = settings.where
    try:
        if settings.auth == "oauth2":
            token = f"user={settings.login}\x01auth=Bearer {settings.secret}\x01\x01"
            connection.auth("XOAUTH2", lambda _challenge=None: token, initial_response_ok=True)
        else:
            connection.login(settings.login, settings.secret)
    except smtplib.SMTPNotSupportedError as exc:
        hint = "" if settings.security != "none" else "; it may want STARTTLS first"
        raise SmtpPermanentError(f"{where}: the server offers no login (AUTH){hint}") from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise _by_code(
            exc.smtp_code,
            f"{where}: login as {settings.login!r} refused; check the password or token",
            _reply(exc),
        ) from exc
    except smtplib.SMTPResponseException as exc:
        raise _by_code(exc.smtp_code, f"{where}: login failed", _reply(exc)) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise SmtpTemporaryError(
            f"{where}: login failed: {_network_cause(exc, settings.timeout)}"
        ) from exc


class SmtpSession:
    """One SMTP connection for one mailbox, opened on first use and reused for every email.

    ``connect`` builds the connection; a test can hand in its own.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        connect: Callable[[SmtpSettings], smtplib.SMTP] = open_connection,
    ) -> None:
        self.settings = settings
        self._connect = connect
        self._connection: smtplib.SMTP | None = None
        # An envelope was accepted and its message has not been sent yet; pipelined, the
        # server has already answered DATA with 354 as well.
        self._awaiting_message = False
        self._data_accepted = False

    def __enter__(self) -> "SmtpSession":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        self._awaiting_message = self._data_accepted = False
        if connection is None:
            return
        try:
            connection.quit()
        except (smtplib.SMTPException, OSError):
            connection.close()

    @property
    def is_open(self) -> bool:
        """False after a broken connection: the next send reconnects first."""
        return self._connection is not None

    def connection(self) -> smtplib.SMTP:
        if self._connection is None:
            self._connection = self._connect(self.settings)
        return self._connection

    def send(self, sender: str, recipients: list[str], raw: bytes) -> Delivery:
        """Submit one message (raises SmtpTemporaryError, -PermanentError or -UncertainError)."""
        refused = self.envelope(sender, recipients)
        return self.data(raw, refused)

    def envelope(self, sender: str, recipients: list[str]) -> dict[str, str]:
        """MAIL FROM and RCPT TO: the transaction up to, not including, the message.

        Returns the recipients the server refused while accepting the others.
        Nothing of the message has left yet: a connection the server dropped
        meanwhile (idle timeout, messages-per-connection limit) is reopened once.
        A server that offers PIPELINING (RFC 2920) gets MAIL, every RCPT and DATA
        in one write and answers them in one round trip instead of one each.
        """
        if self._awaiting_message:
            # The last envelope's message never followed: that transaction is still open
            # (pipelined, in DATA), and the next commands would become its content.
            self._drop()
        try:
            return self._envelope(sender, recipients)
        except _Reconnect:
            self.close()
            try:
                return self._envelope(sender, recipients)
            except _Reconnect as again:
                raise SmtpTemporaryError(
                    f"{self.settings.where}: connection lost before sending ({again.cause})"
                ) from None

    def data(self, raw: bytes, refused: dict[str, str]) -> Delivery:
        """DATA after a successful ``envelope``: from here on a break is uncertain."""
        return Delivery(self._data(self.connection(), raw), refused)

    def _envelope(self, sender: str, recipients: list[str]) -> dict[str, str]:
        where = self.settings.where
        connection = self.connection()
        commands = [f"MAIL FROM:<{sender}>", *(f"RCPT TO:<{r}>" for r in recipients)]
        pipelined = connection.has_extn("pipelining")
        replies = _Replies(connection, [*commands, "DATA"] if pipelined else commands, pipelined)
        try:
            code, text = replies.next()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Reconnect(_network_cause(exc, self.settings.timeout)) from exc
        if code == 421:  # the server closes this connection; a new one may do
            raise _Reconnect(_text(code, text))
        if code != 250:
            self._abandon(replies)
            raise _by_code(code, f"{where}: sender {sender} refused", _text(code, text))
        refused: dict[str, str] = {}
        try:
            for recipient in recipients:
                code, text = replies.next()
                if code not in (250, 251):
                    refused[recipient] = _text(code, text)
            data_reply = replies.next() if pipelined else None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise self._lost_before_sending(exc) from exc
        if len(refused) == len(recipients):
            self._abandon(replies, data_reply)
            replies_text = "; ".join(f"{r}: {reply}" for r, reply in refused.items())
            temporary = any(reply.startswith("4") for reply in refused.values())
            kind = SmtpTemporaryError if temporary else SmtpPermanentError
            raise kind(f"{where}: every recipient refused ({replies_text})", replies_text)
        if data_reply is not None:
            self._expect_message(*data_reply)
            self._data_accepted = True
        self._awaiting_message = True
        return refused

    def _data(self, connection: smtplib.SMTP, raw: bytes) -> str:
        """DATA, the message, the final reply; once the message is out, a break is uncertain."""
        where = self.settings.where
        data_accepted = self._data_accepted
        self._awaiting_message = self._data_accepted = False
        if not data_accepted:  # else pipelined: the server said 354 in the envelope's round trip
            try:
                connection.putcmd("data")
                code, text = connection.getreply()
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                raise self._lost_before_sending(exc) from exc
            self._expect_message(code, text)
        # Most messages have no line starting with a dot: a find is far cheaper than the sub.
        needs_stuffing = raw.startswith(b".") or raw.find(b"\n.") >= 0
        payload = _LEADING_DOT.sub(b"..", raw) if needs_stuffing else raw
        if not payload.endswith(CRLF):
            payload += CRLF
        try:
            connection.send(payload + b"." + CRLF)
            code, text = connection.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise SmtpUncertainError(
                f"{where}: connection lost after the message was handed over "
                f"({_network_cause(exc, self.settings.timeout)}); it may have been delivered"
            ) from exc
        reply = _text(code, text)
        if code != 250:
            raise _by_code(code, f"{where}: message refused", reply)
        return reply

    def _expect_message(self, code: int, text: bytes) -> None:
        """DATA's reply: 354 asks for the message; anything else refuses it."""
        if code != 354:
            self._reset()
            raise _by_code(code, f"{self.settings.where}: DATA refused", _text(code, text))

    def _lost_before_sending(self, exc: BaseException) -> SmtpTemporaryError:
        """The connection broke before any of the message left: nothing was handed over."""
        self._drop()
        return SmtpTemporaryError(
            f"{self.settings.where}: connection lost before sending "
            f"({_network_cause(exc, self.settings.timeout)})"
        )

    def _abandon(self, replies: "_Replies", data_reply: tuple[int, bytes] | None = None) -> None:
        """Give up a refused transaction and leave the connection ready for the next one.

        A pipelined group's remaining replies are read first, so the next transaction
        reads its own; a DATA the server accepted anyway gets an empty message, which
        it refuses for want of recipients (RFC 2920, 3.1).
        """
        try:
            rest = replies.rest()
            data_reply = rest[-1] if rest and replies.pipelined else data_reply
            if data_reply is not None and data_reply[0] == 354:
                assert self._connection is not None
                self._connection.send(b"." + CRLF)
                self._connection.getreply()
        except (smtplib.SMTPException, OSError):
            self._drop()
            return
        self._reset()

    def _drop(self) -> None:
        """Forget a broken connection without talking to the server again."""
        self._awaiting_message = self._data_accepted = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _reset(self) -> None:
        """RSET after a refusal so the connection can carry the next email."""
        if self._connection is None:
            return
        try:
            self._connection.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()


class _Reconnect(Exception):
    """The server dropped the connection before this email's DATA: reopen and retry."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def _by_code(code: int, message: str, reply: str) -> SmtpError:
    kind = SmtpTemporaryError if 400 <= code < 500 else SmtpPermanentError
    return kind(f"{message}: {reply}", reply)


def _text(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}".strip()


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return _text(exc.smtp_code, exc.smtp_error)


def _network_cause(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"the server closed the connection ({exc or 'no reason given'})"
    return f"{type(exc).__name__}: {exc}"


class _Replies:
    """The replies to a transaction's commands, in order.

    Pipelined, every command goes out in one write when the first reply is asked
    for; otherwise each command is sent when its reply is asked for, so nothing
    follows a refusal. The commands name bare addresses: every address was checked
    when its email was queued (plain ASCII, tasks/compose.py), so smtplib's
    re-parsing of them (``quoteaddr``) is left out of the sending loop.
    """

    def __init__(self, connection: smtplib.SMTP, commands: list[str], pipelined: bool) -> None:
        self.connection = connection
        self.pipelined = pipelined
        self._commands = commands
        self._waiting = list(commands)

    def next(self) -> tuple[int, bytes]:
        if self.pipelined and len(self._waiting) == len(self._commands):
            group = "".join(f"{command}\r\n" for command in self._commands)
            self.connection.send(group.encode("ascii"))
        command = self._waiting.pop(0)
        if not self.pipelined:
            self.connection.putcmd(command)
        return self.connection.getreply()

    def rest(self) -> list[tuple[int, bytes]]:
        """The replies still owed for commands already sent (none when not pipelined)."""
        if not self.pipelined:
            self._waiting.clear()
            return []
        return [self.next() for _ in list(self._waiting)]
