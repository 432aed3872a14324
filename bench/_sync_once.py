"""Child of bench/sync.py: one mailbox-sync run, timed; prints a JSON line."""

import json
import os
import resource
import sys
import time


def main() -> None:
    user, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from flows.mailbox_sync import mailbox_sync
    from models import FirstSyncPeriod, LoginFormat, Security, init_db, session_scope
    from tasks.mailboxes import add_mailbox, add_provider

    init_db()
    with session_scope() as session:
        add_provider(
            session,
            "bench",
            f"{host}:{port}",
            Security.none,
            None,
            Security.none,
            40,
            LoginFormat.email,
            [],
        )
        add_mailbox(
            session,
            user,
            "env:BENCH_PASSWORD",
            "bench",
            None,
            ["INBOX"],
            FirstSyncPeriod.all,
            None,
            False,
        )
    before_self = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    state = mailbox_sync(user, return_state=True)
    seconds = time.perf_counter() - started
    after_self = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    reports = state.result(raise_on_failure=False)
    if not state.is_completed():
        raise SystemExit(f"sync failed: {reports}")
    print(
        json.dumps(
            {
                "stored": reports[0]["stored"],
                "seconds": seconds,
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "cpu_main": after_self.ru_utime
                + after_self.ru_stime
                - before_self.ru_utime
                - before_self.ru_stime,
                "cpu_workers": children.ru_utime + children.ru_stime,
                "pid": os.getpid(),
            }
        )
    )


if __name__ == "__main__":
    main()
