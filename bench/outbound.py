"""Outbound benchmark: raw smtplib over one connection vs. inboxflow's outbound-sending flow.

    ./run bench outbound [--emails 2000] [--rounds 3] [--no-pipelining]

Queues N emails (~8 KB of HTML + text, a signature, every 5th with a PDF) into a
fresh SQLite database, then sends them to an SMTP server on 127.0.0.1 (the test
suite's aiosmtpd server with AUTH, in a process of its own), measuring in the
same run:
  (a) raw smtplib: one connection, AUTH once, the same message bytes and
      envelopes, sendmail() in a loop — measured before and after (b);
  (b) the outbound-sending flow end to end (flow run start to finish): per email
      its hand-over journal lines, the SMTP transaction, "sending" committed
      per batch of 500 and "completed" per chunk of 50,
      and meanwhile the Sent copies appended to a real Dovecot and the binding
      rules run on the sent emails.
Runs (a) (b) (a) (b) ... (a): each (b) is compared with the two raw runs either
side of it, and the median of these ratios is the result (target >= 0.8): this
machine is shared, and raw smtplib alone varies by 15-20 % from run to run.
Each round queues fresh emails into a database of its own. Also prints the rate
of (b)'s SMTP phase alone, without the flow run's fixed start-up and wind-down.
Before (b), one outbound-sending run with nothing to send warms the fresh Prefect
server up (its first flow run of a kind costs it ~0.6 s once; a server in use is warm).

The server offers PIPELINING (RFC 2920), as Postfix, Exchange and Gmail do:
inboxflow then sends MAIL, the RCPTs and DATA in one round trip; smtplib (a)
does not use it. ``--no-pipelining`` measures against a server without it.
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


def start_sink(pipelining: bool) -> tuple[subprocess.Popen[str], int]:
    options = [] if pipelining else ["--no-pipelining"]
    sink = subprocess.Popen(
        [sys.executable, "-m", "tests.support.smtp", *options, f"{ADDRESS}:{PASSWORD}"],
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
    parser.add_argument(
        "--rounds", type=int, default=3, help="(b) runs, each between two raw runs (a)"
    )
    parser.add_argument(
        "--no-pipelining",
        dest="pipelining",
        action="store_false",
        help="the SMTP server does not offer PIPELINING",
    )
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
        sink, port = start_sink(args.pipelining)
        env = {
            **os.environ,
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "BENCH_PASSWORD": PASSWORD,
        }
        env.pop("INBOXFLOW_DATABASE_URL", None)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        offers = "offers" if args.pipelining else "does not offer"
        print(f"the SMTP server {offers} PIPELINING (RFC 2920)")
        child(["send"], {**env, "INBOXFLOW_HOME": str(Path(tmp) / "warm-up")})
        raws: list[float] = []
        ratios = []
        for round_number in range(1, args.rounds + 1):
            # Fresh emails in a fresh database each round, as a first send finds them.
            home = Path(tmp) / f"round-{round_number}"
            round_env = {**env, "INBOXFLOW_HOME": str(home)}
            queued = child(["queue", str(n), ADDRESS, str(port), str(dovecot.port)], round_env)
            messages = queued_messages(home)
            if not raws:
                print(
                    f"queued {n} emails ({queued['bytes'] / n / 1024:.1f} KB average) in "
                    f"{queued['seconds']:.1f} s = {n / queued['seconds']:,.0f} emails/s "
                    "(composing, checking, storing; not part of the comparison)"
                )
                raws.append(raw_smtplib(port, messages))
                print(
                    f"  (a) raw smtplib, one connection:   {n} in {raws[0]:.2f} s "
                    f"= {n / raws[0]:,.0f}/s"
                )
            sent = child(["send"], round_env)
            raws.append(raw_smtplib(port, messages))
            ratios.append(report_round(round_number, n, sent, raws[-2], raws[-1]))
        received = stop_sink(sink)
        ratios.sort()
        print(
            f"  ratio b / mean(a), median of {args.rounds} rounds = "
            f"{ratios[len(ratios) // 2]:.2f}  (target >= 0.80; rounds: "
            f"{', '.join(f'{r:.2f}' for r in ratios)})"
        )
        expected = (len(raws) + args.rounds) * n
        print(f"  the server received {received} messages (expected {expected})")
        print(f"  load average now {os.getloadavg()[0]:.2f}")


def report_round(number: int, n: int, sent: dict[str, float], before: float, after: float) -> float:
    """Print one round: (b), the raw run after it, the ratio to the raws either side."""
    rate = sent["sent"] / sent["seconds"]
    raw_rate = 2 * n / (before + after)
    phase = sent["sent"] / sent["sending_seconds"]
    print(
        f"  round {number}:\n"
        f"  (b) inboxflow outbound-sending:    {sent['sent']:.0f} in {sent['seconds']:.2f} s "
        f"= {rate:,.0f}/s ({sent['copies']:.0f} Sent copies to Dovecot, binding rules run)\n"
        f"      of it the SMTP phase (first claim to last reply) {sent['sending_seconds']:.2f} s "
        f"= {phase:,.0f}/s, the flow run's fixed cost "
        f"{sent['seconds'] - sent['sending_seconds']:.2f} s; "
        f"CPU of the sending process {sent['cpu'] / n * 1000:.2f} ms per email\n"
        f"  (a) raw smtplib again:             {n} in {after:.2f} s = {n / after:,.0f}/s\n"
        f"      ratio b / mean(a either side) = {rate / raw_rate:.2f}, "
        f"SMTP phase alone {phase / raw_rate:.2f}"
    )
    return rate / raw_rate


if __name__ == "__main__":
    main()
