"""`inboxflow demo` as a new user runs it: embedded SQLite, Prefect's local mode, sample mailbox."""

import os
import subprocess
import sys
from email import message_from_binary_file, policy
from pathlib import Path

from inboxflow.demo import SAMPLE_MAILBOX


def test_demo_imports_lists_and_runs_the_processes_once(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_API", "INBOXFLOW_"))
    }
    env.update(
        {
            "INBOXFLOW_HOME": str(tmp_path / "home"),
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "COLUMNS": "250",
        }
    )
    command = [sys.executable, "-m", "inboxflow", "demo"]

    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)

    assert first.returncode == 0, first.stderr
    samples = sorted(SAMPLE_MAILBOX.glob("*.eml"))
    assert f"{len(samples)} sample messages read: {len(samples)} stored now" in first.stdout
    for sample in samples:
        with open(sample, "rb") as handle:
            subject = str(message_from_binary_file(handle, policy=policy.default)["subject"])
        assert " ".join(subject.split())[:30] in first.stdout, subject
    assert "Traceback" not in first.stdout + first.stderr
    # The shipped processes ran on the matching samples: four leads, six cases; once.
    lead_rows = [line for line in first.stdout.splitlines() if line.startswith("│ Lead ")]
    assert len(lead_rows) == 4, first.stdout
    assert "Case CS-00006" in first.stdout and "Case CS-00007" not in first.stdout
    assert second.returncode == 0, second.stderr
    assert "Case CS-00007" not in second.stdout
    assert f"0 stored now, {len(samples)} were already stored" in second.stdout
