"""The SMTP transaction (tasks/smtp.py) against a real server, pipelined or not.

A server offering PIPELINING (RFC 2920) gets MAIL, every RCPT and DATA in one
write; one that does not gets one command per round trip. Either way a refusal
leaves the connection ready for the next email, and the messages arrive whole.
"""

import smtplib
from typing import Any

import pytest

from tasks.errors import SmtpPermanentError, SmtpTemporaryError
from tasks.smtp import SmtpSession, SmtpSettings, open_connection
from tests.support.smtp import SmtpServer

SENDER = "sales@northwind.example"
PASSWORD = "session-password"
TO = ["anna@customer.example", "ben@customer.example"]


def message(number: int) -> bytes:
    headers = (
        f"From: {SENDER}\r\nTo: {', '.join(TO)}\r\nSubject: Quote {number}\r\n"
        f"Message-ID: <quote-{number}@northwind.example>\r\n\r\n"
    )
    return (headers + "Dear customer,\r\n.a line starting with a dot\r\n" * 40).encode()


class CountingSocket:
    """The connection's socket, counting the writes that leave it."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.writes = 0

    def sendall(self, data: bytes) -> None:
        self.writes += 1
        self._sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


@pytest.fixture(params=["pipelining", "one command at a time"])
def server(request: pytest.FixtureRequest, smtp: SmtpServer) -> SmtpServer:
    smtp.users[SENDER] = PASSWORD
    smtp.pipelining = request.param == "pipelining"
    return smtp


@pytest.fixture
def session(server: SmtpServer) -> SmtpSession:
    settings = SmtpSettings(
        address=SENDER,
        host=server.host,
        port=server.port,
        security="none",
        login=SENDER,
        secret=PASSWORD,
        auth="basic",
        timeout=10.0,
    )
    sockets: list[CountingSocket] = []

    def connect(settings: SmtpSettings) -> smtplib.SMTP:
        connection = open_connection(settings)
        counting = CountingSocket(connection.sock)
        connection.sock = counting  # type: ignore[assignment]
        sockets.append(counting)
        return connection

    opened = SmtpSession(settings, connect)
    opened.sockets = sockets  # type: ignore[attr-defined]
    return opened


def send(session: SmtpSession, number: int, recipients: list[str] = TO) -> Any:
    refused = session.envelope(SENDER, recipients)
    return session.data(message(number), refused)


def test_the_envelope_takes_one_round_trip_when_the_server_pipelines(server, session):
    with session:
        send(session, 1)
        writes = session.sockets[0].writes  # type: ignore[attr-defined]
    # Pipelined: MAIL+RCPT+RCPT+DATA, then the message. Else: each of the five alone.
    assert writes == (2 if server.pipelining else 5)
    received = server.wait_for(1)
    assert [r.rcpt_tos for r in received] == [TO]
    assert received[0].data == message(1)


def test_partly_refused_recipients_are_reported_and_the_rest_get_it(server, session):
    server.refuse[TO[0]] = "550 5.1.1 no such user"
    with session:
        delivery = send(session, 1)
    assert delivery.refused == {TO[0]: "550 5.1.1 no such user"}
    assert [r.rcpt_tos for r in server.wait_for(1)] == [[TO[1]]]


@pytest.mark.parametrize(
    ("reply", "error"),
    [("550 5.1.1 no such user", SmtpPermanentError), ("450 4.2.1 busy", SmtpTemporaryError)],
)
def test_every_recipient_refused_is_an_error_and_the_next_email_goes_through(
    server, session, reply, error
):
    for address in TO:
        server.refuse[address] = reply
    with session:
        with pytest.raises(error, match="every recipient refused"):
            send(session, 1)
        send(session, 2, ["carl@customer.example"])
    received = server.wait_for(1)
    assert [(r.rcpt_tos, r.data) for r in received] == [(["carl@customer.example"], message(2))]


def test_a_refused_sender_is_an_error_and_the_next_email_goes_through(server, session):
    server.refuse[SENDER] = "553 5.7.1 sender not allowed"
    with session:
        with pytest.raises(SmtpPermanentError, match="sender .* refused: 553"):
            send(session, 1)
        del server.refuse[SENDER]
        send(session, 2)
    assert [r.data for r in server.wait_for(1)] == [message(2)]


def test_a_connection_the_server_dropped_between_emails_is_reopened_once(server, session):
    with session:
        send(session, 1)
        server.stop()  # drops every open connection
        server.start()
        send(session, 2)
    assert [r.data for r in server.wait_for(2)] == [message(1), message(2)]
    assert len(session.sockets) == 2  # type: ignore[attr-defined]


def test_an_envelope_whose_message_never_followed_does_not_leak_into_the_next(server, session):
    with session:
        session.envelope(SENDER, TO)  # and no data(): the caller gave up on this email
        send(session, 2)
    received = server.wait_for(1)
    assert [(r.rcpt_tos, r.data) for r in received] == [(TO, message(2))]
