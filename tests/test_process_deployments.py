"""Email processes as deployments on a real Prefect server, run by a real process worker.

Acceptance 1 of the processes issue: a YAML file dropped into processes/ becomes a
deployment after `inboxflow processes deploy`, with no Python written; and
`prefect deployment run 'email-process/create-lead' --param RecordId=...` makes the
Lead. Works on a copy of the project (tests/support/prefect_server.py).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session

from models import Email, Lead, get_engine
from tasks.storing import MailboxRef
from tests.support.prefect_server import (
    PrefectServer,
    ProjectCopy,
    Worker,
    read_deployment,
    run_deployment,
    wait_for_flow_run,
)
from tests.test_process_runs import NEW_CUSTOMER, processes
from tests.test_processing import crm, mailbox, message, store

__all__ = ["crm", "mailbox", "processes"]  # fixtures used here
pytestmark = pytest.mark.usefixtures("prefect_api")

THANK_SENDER = """\
name: Thank the sender
version: 3
description: Says thank you to whoever writes.
steps:
  - id: contact
    name: Find the sender
    uses: contact.find_or_create
    with: { email: "{{ email.from_address }}" }
"""


def inboxflow(project: ProjectCopy, server: PrefectServer, *args: str) -> str:
    """`inboxflow ARGS` run from the project copy, as a user in that folder would."""
    done = subprocess.run(
        [sys.executable, "-m", "inboxflow", *args],
        cwd=project.root,
        env=project.env(server),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("empty_database", ["postgresql"], indirect=True)
def test_a_new_process_file_becomes_a_tagged_deployment_and_runs_on_a_worker(
    database: str,
    processes: Path,
    mailbox: MailboxRef,
    prefect_server: PrefectServer,
    prefect_project: ProjectCopy,
    inboxflow_home: Path,
) -> None:
    (prefect_project.root / "processes" / "thank-sender.yaml").write_text(THANK_SENDER)
    output = inboxflow(prefect_project, prefect_server, "processes", "deploy")
    assert "deployed to" in output

    for name in ("thank-sender", "create-lead", "register-case"):
        deployment = read_deployment(prefect_server, f"email-process/{name}")
        assert deployment["tags"][0] == "Email Process"
        assert deployment["parameters"] == {"process": name}
        assert deployment["work_pool_name"] == "inboxflow"
        schema = deployment["parameter_openapi_schema"]
        assert "RecordId" in schema["required"]
        assert schema["properties"]["RecordId"]["type"] == "string"
        assert schema["properties"]["RecordId"]["format"] == "uuid"
    assert read_deployment(prefect_server, "email-process/thank-sender")["version"] == "3"

    email_id, by_cli_id = store(
        mailbox,
        message("Price enquiry: 200 drills", sender=NEW_CUSTOMER),
        message("Quote for 50 drivers?", sender="Ann Lee <ann.lee@lee-tools.example>"),
    )
    worker_env = {"INBOXFLOW_DATABASE_URL": database, "INBOXFLOW_HOME": str(inboxflow_home)}
    with Worker(prefect_project, prefect_server, env=worker_env) as worker:
        run_id = run_deployment(
            prefect_project,
            prefect_server,
            "email-process/create-lead",
            {"RecordId": str(email_id)},
        )
        outcome = wait_for_flow_run(prefect_server, run_id, timeout=120, worker=worker)
        assert outcome.state_type == "COMPLETED", outcome.message

        missing = uuid.uuid4()
        run_id = run_deployment(
            prefect_project, prefect_server, "email-process/create-lead", {"RecordId": str(missing)}
        )
        failed = wait_for_flow_run(prefect_server, run_id, timeout=120, worker=worker)

        # The CLI goes through the server when PREFECT_API_URL is set (the worker runs it).
        output = inboxflow(
            prefect_project, prefect_server, "processes", "run", "create-lead",
            "--email", str(by_cli_id),
        )  # fmt: skip
        assert "4 step(s) done" in output
    assert failed.state_type == "FAILED"
    assert failed.message == f"email {missing} not found"

    with Session(get_engine()) as session:
        leads = {lead.name: lead.id for lead in session.scalars(select(Lead))}
        email = session.get(Email, email_id)
        by_cli = session.get(Email, by_cli_id)
    assert set(leads) == {"Price enquiry: 200 drills", "Quote for 50 drivers?"}
    assert email is not None and email.lead_id == leads["Price enquiry: 200 drills"]
    assert not email.needs_processing
    assert by_cli is not None and by_cli.lead_id == leads["Quote for 50 drivers?"]
