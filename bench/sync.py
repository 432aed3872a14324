"""Sync benchmark: raw imapclient fetch rate vs. inboxflow's end-to-end sync into SQLite.

    ./run bench sync [--messages 10000]

Seeds a real Dovecot on 127.0.0.1 with N messages (~8 KB average, every 5th with
an attachment), then measures in the same run:
  (a) imapclient fetching BODY.PEEK[] in UID batches of 500, no parsing or storing;
  (b) the mailbox-sync flow end to end into a fresh SQLite database;
and prints both rates and their ratio (target: b >= 0.5 a). (b) runs in a child
process per size so its peak memory is its own; it is measured at N/5 and N to
show that peak memory does not grow with N.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imapclient import IMAPClient

from tests.support.dovecot import Dovecot
from tests.support.messages import make_message

PASSWORD = "bench-password"


def seed(dovecot: Dovecot, user: str, count: int) -> int:
    dovecot.add_user(user, PASSWORD)
    total = 0
    for start in range(0, count, 1000):
        raws = [make_message(i, body_size=7000).raw for i in range(start, min(count, start + 1000))]
        total += sum(map(len, raws))
        dovecot.append(user, PASSWORD, "INBOX", raws)
    return total


def raw_fetch_rate(dovecot: Dovecot, user: str) -> tuple[int, float]:
    client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
    client.login(user, PASSWORD)
    started = time.perf_counter()
    client.select_folder("INBOX", readonly=True)
    uids = client.search("ALL")
    fetched = 0
    for start in range(0, len(uids), 500):
        response = client.fetch(uids[start : start + 500], ["BODY.PEEK[]"])
        fetched += len(response)
    elapsed = time.perf_counter() - started
    client.logout()
    return fetched, elapsed


def no_processes(workdir: Path) -> Path:
    folder = workdir / "no-processes"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def inboxflow_sync(dovecot: Dovecot, user: str, workdir: Path, api_url: str) -> dict[str, float]:
    env = {
        **os.environ,
        "INBOXFLOW_HOME": str(workdir),
        # No email processes: their runs are bench/processes.py's measure, not the sync's.
        "INBOXFLOW_PROCESSES_DIR": str(no_processes(workdir)),
        "PREFECT_API_URL": api_url,
        "BENCH_PASSWORD": PASSWORD,
    }
    env.pop("INBOXFLOW_DATABASE_URL", None)
    child = [sys.executable, "-m", "bench._sync_once", user, dovecot.host, str(dovecot.port)]
    output = subprocess.run(child, env=env, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    sizes = [max(1, args.messages // 5), args.messages]
    with (
        tempfile.TemporaryDirectory(prefix="inboxflow-bench-") as tmp,
        Dovecot(Path(tmp) / "dovecot") as dovecot,
        prefect_test_harness(server_startup_timeout=180),
    ):
        api_url = str(PREFECT_API_URL.value())
        print(f"machine: {os.cpu_count()} cores; Dovecot on {dovecot.host}:{dovecot.port}")
        for n, size in enumerate(sizes):
            user = f"bench{n}@northwind.example"
            started = time.perf_counter()
            total_bytes = seed(dovecot, user, size)
            print(
                f"\nN = {size}: seeded {total_bytes / size / 1024:.1f} KB average "
                f"in {time.perf_counter() - started:.1f} s"
            )
            fetched, raw_seconds = raw_fetch_rate(dovecot, user)
            raw_rate = fetched / raw_seconds
            print(
                f"  (a) raw imapclient BODY.PEEK[] fetch: {fetched} msgs in {raw_seconds:.2f} s "
                f"= {raw_rate:,.0f} msg/s"
            )
            result = inboxflow_sync(dovecot, user, Path(tmp) / f"home{n}", api_url)
            sync_rate = result["stored"] / result["seconds"]
            print(
                f"  (b) inboxflow sync into SQLite:    {result['stored']:.0f} msgs in "
                f"{result['seconds']:.2f} s = {sync_rate:,.0f} msg/s"
            )
            print(
                f"  CPU per message: sync process {result['cpu_main'] / size * 1e3:.2f} ms, "
                f"parse workers {result['cpu_workers'] / size * 1e3:.2f} ms"
            )
            print(f"  ratio b/a = {sync_rate / raw_rate:.2f}  (target >= 0.50)")
            print(
                f"  peak RSS: sync process {result['maxrss_mb']:.0f} MB, "
                f"largest parse worker {result['worker_maxrss_mb']:.0f} MB"
            )


if __name__ == "__main__":
    main()
