"""Outbound benchmark: raw smtplib over one connection vs. inboxflow's outbound-sending flow.

    ./run bench outbound [--emails 2000]

Queues N emails (~8 KB of HTML + text, a signature, every 5th with a PDF) into a
fresh SQLite database, then sends them to an SMTP server on 127.0.0.1 (the test
suite's aiosmtpd server with AUTH, in a process of its own), measuring in the
same run:
  (a) raw smtplib: one connection, AUTH once, the same message bytes and
      envelopes, sendmail() in a loop — measured before and after (b);
  (b) the outbound-sending flow end to end (flow run start to finish): per email
      its hand-over journal lines, the SMTP transaction, "sending" and
      "completed" committed per batch and per hundred,
      and meanwhile the Sent copies appended to a real Dovecot and the binding
      rules run on the sent emails.
Prints both rates and the ratio b / mean(a) (target >= 0.8), and the rate of
(b)'s SMTP phase alone, without the flow run's fixed start-up and wind-down.
Before (b), one outbound-sending run with nothing to send warms the fresh Prefect
server up (its first flow run of a kind costs it ~0.6 s once; a server in use is warm).
"""

import argparse
import json
import os
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.support.dovecot import Dovecot

PASSWORD = "bench-password"
ADDRESS = "sales@northwind.example"


def child(args: list[str], env: dict[str, str]) -> dict[str, float]:
    command = [sys.executable, "-m", "bench._outbound_once", *args]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def queued_messages(home: Path) -> list[tuple[list[str], bytes]]:
    """The queued emails' envelopes and exact bytes, as the flow will send them."""
    from tasks.filestore import FileStore

    engine = create_engine(f"sqlite:///{home / 'inboxflow.db'}")
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT o.envelope_to, e.raw_key FROM outbox_entry o "
                "JOIN email e ON e.id = o.email_id ORDER BY o.queued_at, o.email_id"
            )
        ).all()
    engine.dispose()
    store = FileStore(home / "files")
    return [(json.loads(envelope), store.get(key)) for envelope, key in rows]


def raw_smtplib(port: int, messages: list[tuple[list[str], bytes]]) -> float:
    started = time.perf_counter()
    connection = smtplib.SMTP("127.0.0.1", port, local_hostname="bench")
    connection.login(ADDRESS, PASSWORD)
    for recipients, raw in messages:
        connection.sendmail(ADDRESS, recipients, raw)
    connection.quit()
    return time.perf_counter() - started


def start_sink() -> tuple[subprocess.Popen[str], int]:
    sink = subprocess.Popen(
        [sys.executable, "-m", "tests.support.smtp", f"{ADDRESS}:{PASSWORD}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    return sink, int(json.loads(sink.stdout.readline())["port"])


def stop_sink(sink: subprocess.Popen[str]) -> int:
    output, _ = sink.communicate(timeout=60)
    return int(json.loads(output.strip().splitlines()[-1])["received"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emails", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    n = args.emails
    with (
        tempfile.TemporaryDirectory(prefix="inboxflow-bench-") as tmp,
        Dovecot(Path(tmp) / "dovecot") as dovecot,
        prefect_test_harness(server_startup_timeout=180),
    ):
        dovecot.add_user(ADDRESS, PASSWORD)
        sink, port = start_sink()
        home = Path(tmp) / "home"
        env = {
            **os.environ,
            "INBOXFLOW_HOME": str(home),
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "BENCH_PASSWORD": PASSWORD,
        }
        env.pop("INBOXFLOW_DATABASE_URL", None)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        child(["send"], {**env, "INBOXFLOW_HOME": str(Path(tmp) / "warm-up")})
        queued = child(["queue", str(n), ADDRESS, str(port), str(dovecot.port)], env)
        print(
            f"queued {n} emails ({queued['bytes'] / n / 1024:.1f} KB average) in "
            f"{queued['seconds']:.1f} s = {n / queued['seconds']:,.0f} emails/s "
            "(composing, checking, storing; not part of the comparison)"
        )
        messages = queued_messages(home)
        before = raw_smtplib(port, messages)
        print(f"  (a) raw smtplib, one connection:   {n} in {before:.2f} s = {n / before:,.0f}/s")
        sent = child(["send"], env)
        rate = sent["sent"] / sent["seconds"]
        print(
            f"  (b) inboxflow outbound-sending:    {sent['sent']:.0f} in {sent['seconds']:.2f} s "
            f"= {rate:,.0f}/s ({sent['copies']:.0f} Sent copies to Dovecot, binding rules run)"
        )
        after = raw_smtplib(port, messages)
        print(f"  (a) raw smtplib again:             {n} in {after:.2f} s = {n / after:,.0f}/s")
        received = stop_sink(sink)
        raw_rate = 2 * n / (before + after)
        phase = sent["sent"] / sent["sending_seconds"]
        fixed = sent["seconds"] - sent["sending_seconds"]
        print(f"  ratio b / mean(a) = {rate / raw_rate:.2f}  (target >= 0.80)")
        print(
            f"  of (b), the SMTP phase alone (first claim to last reply): "
            f"{sent['sending_seconds']:.2f} s = {phase:,.0f}/s, ratio {phase / raw_rate:.2f}; "
            f"the rest is the flow run's fixed cost ({fixed:.2f} s)"
        )
        print(f"  CPU of the sending process during (b): {sent['cpu'] / n * 1000:.2f} ms per email")
        print(f"  the server received {received} messages (expected {3 * n})")
        print(f"  load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
