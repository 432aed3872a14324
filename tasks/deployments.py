"""prefect.yaml, written from processes/ and the system settings (`inboxflow processes deploy`).

The file carries the system flows (mailbox-sync on the MailboxSyncInterval,
initial-processing, outbound-sending, email-import) and one deployment of the
generic `email-process` flow per process file: named after the file, tagged with
the EmailProcessTag setting first (the Prefect UI shows only the first tag),
``process`` fixed and ``RecordId`` left for whoever starts it. The text is
deterministic, so a test can tell when prefect.yaml and processes/ disagree.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from models.db import PROJECT_ROOT
from tasks.errors import ConfigError
from tasks.process_spec import ProcessBook

PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"
WORK_POOL = "inboxflow"
PROCESS_ENTRYPOINT = "flows/email_process.py:email_process"

HEADER = """\
# Prefect deployments of inboxflow: the system flows and one deployment per file in
# processes/. Written by `inboxflow processes deploy` — edit processes/*.yaml and the
# settings, not this file (a test fails when the two disagree).
#   prefect work-pool create inboxflow --type process
#   prefect deploy --all        (run from this folder)
#   prefect worker start --pool inboxflow
name: inboxflow
prefect-version: 3.8.8

pull:
  # Workers run the flows from this project folder (resolved when you deploy).
  - prefect.deployments.steps.set_working_directory:
      directory: "{{ $PWD }}"

deployments:
"""

SYSTEM = """\
  - name: mailbox-sync
    description: Download new email of every mailbox with download enabled.
    entrypoint: flows/mailbox_sync.py:mailbox_sync
    tags: [inboxflow, system]
    # MailboxSyncInterval: {minutes} minute(s).
    schedules:
      - interval: {seconds}
    concurrency_limit: 1
    work_pool:
      name: inboxflow

  - name: initial-processing
    description: Link new emails to contacts, accounts and records; flag what needs a person.
    entrypoint: flows/initial_processing.py:initial_processing
    tags: [inboxflow, system]
    concurrency_limit: 1
    work_pool:
      name: inboxflow

  - name: outbound-sending
    description: Send the queued emails over SMTP (each exactly once), copy them to Sent.
    entrypoint: flows/outbound_sending.py:outbound_sending
    tags: [inboxflow, system]
    # Every minute; a per-mailbox lock keeps two runs off the same mailbox anyway.
    schedules:
      - interval: 60
    concurrency_limit: 1
    work_pool:
      name: inboxflow

  - name: email-import
    description: Import .eml files, an mbox file or a Maildir folder into a mailbox.
    entrypoint: flows/email_import.py:email_import
    tags: [inboxflow, system]
    work_pool:
      name: inboxflow
"""

PROCESS = """
  # processes/{file_name}: started with RecordId = the email's id.
  - name: {key}
    description: {description}
    version: "{version}"
    entrypoint: {entrypoint}
    tags: [{tag}, inboxflow]
    parameters:
      process: {key}
    work_pool:
      name: inboxflow
"""


def render_prefect_yaml(book: ProcessBook, sync_interval_minutes: int, tag: str) -> str:
    """The whole prefect.yaml for these processes and settings."""
    if sync_interval_minutes < 1:
        raise ConfigError(
            f"MailboxSyncInterval must be at least 1 minute, not {sync_interval_minutes}"
        )
    text = HEADER + SYSTEM.format(minutes=sync_interval_minutes, seconds=sync_interval_minutes * 60)
    for key, process in sorted(book.processes.items()):
        description = " ".join((process.spec.description or process.spec.name).split())
        text += PROCESS.format(
            file_name=Path(process.file).name,
            key=key,
            # JSON strings are YAML strings: quotes, colons and non-ASCII stay intact.
            description=json.dumps(description, ensure_ascii=False),
            version=process.spec.version,
            entrypoint=PROCESS_ENTRYPOINT,
            tag=json.dumps(tag, ensure_ascii=False),
        )
    return text


def prefect_yaml_path() -> Path:
    return Path(os.environ.get("INBOXFLOW_PREFECT_YAML") or PREFECT_YAML)


def apply_deployments(project: Path) -> str:
    """`prefect deploy --all` in the project folder, against the server of PREFECT_API_URL.

    Creates the work pool (type process) first when it is missing. Returns Prefect's output.
    """
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
    # prefect.yaml's pull step says "{{ $PWD }}": Prefect reads the variable, not the
    # working folder, so it must name the project wherever the command was typed.
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PWD": str(project)}
    inspect = _run([prefect, "work-pool", "inspect", WORK_POOL], project, env, check=False)
    if inspect.returncode != 0:
        _run([prefect, "work-pool", "create", WORK_POOL, "--type", "process"], project, env)
    return _run([prefect, "--no-prompt", "deploy", "--all"], project, env).stdout


def _run(
    command: list[str], cwd: Path, env: dict[str, str], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"`{' '.join(command[1:])}` could not run: {exc}") from exc
    if check and done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise ConfigError(
            f"`prefect {' '.join(command[1:])}` failed (exit {done.returncode}):\n  "
            + "\n  ".join(output)
        )
    return done
