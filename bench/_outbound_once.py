"""Child of bench/outbound.py: queue N emails, or run one outbound-sending flow; prints JSON.

python -m bench._outbound_once queue N ADDRESS SMTP_PORT IMAP_PORT
python -m bench._outbound_once send
"""

import json
import sys
import time

from tests.support.messages import WORDS

SIGNATURE = "<p><b>Alice Smith</b><br>Northwind Traders<br>+44 20 7946 0000</p>"


def queue(count: int, address: str, smtp_port: int, imap_port: int) -> dict[str, object]:
    from models import FirstSyncPeriod, LoginFormat, Mailbox, Security, init_db, session_scope
    from tasks.mailboxes import add_mailbox, add_provider
    from tasks.outbox import NewAttachment, OutgoingEmail, queue_email
    from tasks.sync import file_store

    init_db()
    with session_scope() as session:
        add_provider(
            session,
            "bench",
            f"127.0.0.1:{imap_port}",
            Security.none,
            f"127.0.0.1:{smtp_port}",
            Security.none,
            40,
            LoginFormat.email,
            [],
        )
        add_mailbox(
            session,
            address,
            "env:BENCH_PASSWORD",
            "bench",
            None,
            ["INBOX"],
            FirstSyncPeriod.all,
            "alice",
            False,
        )
        mailbox = session.query(Mailbox).one()
        mailbox.display_name, mailbox.signature_html = "Northwind Sales", SIGNATURE
    store = file_store()
    started = time.perf_counter()
    total = 0
    for start in range(0, count, 200):
        with session_scope() as session:
            for i in range(start, min(count, start + 200)):
                words = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(900))
                attachment = (
                    [NewAttachment(f"quote-{i}.pdf", b"%PDF-1.4\n" + bytes(2048))]
                    if i % 5 == 0
                    else []
                )
                email = queue_email(
                    session,
                    OutgoingEmail(
                        mailbox=address,
                        to=[f"Customer {i} <customer{i}@customer.example>"],
                        cc=[f"copy{i % 13}@customer.example"],
                        subject=f"Quote {i}: {WORDS[i % len(WORDS)]} — Grüße",
                        body_html=f"<p>Dear customer {i},</p><p>{words}</p>",
                        attachments=attachment,
                    ),
                    "alice",
                    store=store,
                )
                total += email.raw_size
    seconds = time.perf_counter() - started
    return {"queued": count, "seconds": seconds, "bytes": total}


def send() -> dict[str, object]:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.outbound_sending import outbound_sending
    from models import init_db

    init_db()
    # As in the tests: no flow heartbeat thread, which a sync flow joins at exit (~1 s).
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        started, cpu = time.perf_counter(), time.process_time()
        state = outbound_sending(return_state=True)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    reports = state.result(raise_on_failure=False)
    if not state.is_completed():
        raise SystemExit(f"sending failed: {reports}")
    if not reports:  # the warm-up run: nothing queued
        return {"sent": 0, "seconds": seconds}
    report = reports[0]
    return {
        "sent": report["sent"],
        "copies": report["sent_copies"],
        "seconds": seconds,
        "sending_seconds": report["sending_seconds"],
        "cpu": cpu,
    }


def main() -> None:
    if sys.argv[1] == "queue":
        count, address = int(sys.argv[2]), sys.argv[3]
        result = queue(count, address, int(sys.argv[4]), int(sys.argv[5]))
    else:
        result = send()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
