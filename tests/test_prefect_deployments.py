"""Deployments on a real Prefect server: `prefect deploy --all`, a process worker, a run.

Uses the harness of tests/support/prefect_server.py against a copy of the project, so
the copy may be changed without touching the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.prefect_server import (
    PROJECT_ROOT,
    PrefectServer,
    ProjectCopy,
    Worker,
    deploy,
    flow_run_logs,
    marked_pids,
    read_deployment,
    run_deployment,
    wait_for_flow_run,
    wait_for_flow_run_log,
)

SYSTEM_DEPLOYMENTS = (
    "mailbox-sync/mailbox-sync",
    "initial-processing/initial-processing",
    "outbound-sending/outbound-sending",
    "email-import/email-import",
)


def test_project_copy_runs_its_own_code(prefect_project: ProjectCopy) -> None:
    """The copy holds the work in progress, not what git ignores, and its modules win."""
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    missing = [name for name in untracked if not (prefect_project.root / name).exists()]
    assert not missing, f"untracked files not copied: {missing}"
    assert (prefect_project.root / "prefect.yaml").is_file()
    assert not (prefect_project.root / ".venv").exists()

    # The venv's editable install points at the repository; PYTHONPATH must beat it.
    code = "import flows, inboxflow, models, tasks; print(flows.__file__, tasks.__file__)"
    env = {**os.environ, "PYTHONPATH": str(prefect_project.root)}
    printed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=prefect_project.root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert printed == [
        str(prefect_project.root / "flows" / "__init__.py"),
        str(prefect_project.root / "tasks" / "__init__.py"),
    ]


def test_deploy_all_registers_the_system_deployments(
    prefect_server: PrefectServer, prefect_project: ProjectCopy
) -> None:
    """`prefect deploy --all` creates every system deployment in the inboxflow pool."""
    output = deploy(prefect_project, prefect_server)

    for name in SYSTEM_DEPLOYMENTS:
        deployment = read_deployment(prefect_server, name)
        assert deployment["work_pool_name"] == "inboxflow", (name, output)
        assert "inboxflow" in deployment["tags"], name
        # `{{ $PWD }}` resolved to the copy: workers run the copy's code, not the repo's.
        assert deployment["pull_steps"] == [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": str(prefect_project.root)
                }
            }
        ], name

    schedules = read_deployment(prefect_server, "mailbox-sync/mailbox-sync")["schedules"]
    intervals = [entry["schedule"].get("interval") for entry in schedules]
    assert intervals and all(intervals), schedules


def test_worker_runs_initial_processing_from_the_copy(
    prefect_server: PrefectServer, prefect_project: ProjectCopy, tmp_path: Path
) -> None:
    """A process worker runs `initial-processing` started from the CLI, with the copy's code."""
    # A broken rule file only the copy has: its problem in the run's logs proves the
    # flow run imported the copy's code (the rules folder is located from models/db.py).
    broken_rule = prefect_project.root / "rules" / "zz-harness-check.yaml"
    broken_rule.write_text("rules: [not closed\n")
    deploy(prefect_project, prefect_server)
    data = tmp_path / "worker-data"
    database = data / "inboxflow.db"
    worker_env = {"INBOXFLOW_HOME": str(data), "INBOXFLOW_DATABASE_URL": f"sqlite:///{database}"}

    with Worker(prefect_project, prefect_server, env=worker_env) as worker:
        flow_run_id = run_deployment(
            prefect_project, prefect_server, "initial-processing/initial-processing"
        )
        outcome = wait_for_flow_run(prefect_server, flow_run_id, timeout=90, worker=worker)
        assert outcome.state_type == "COMPLETED", (
            outcome,
            flow_run_logs(prefect_server, flow_run_id),
            worker.log_tail(),
        )
        # Shown relative to the run's cwd (the copy); the repository's rules/ lacks it.
        wait_for_flow_run_log(
            prefect_server, flow_run_id, "binding rule skipped: rules/zz-harness-check.yaml"
        )

    # The flow-run process ran in a session of its own; Worker.stop() got it too.
    assert not marked_pids(worker.marker)
    assert (
        outcome.flow_run["deployment_id"]
        == read_deployment(prefect_server, "initial-processing/initial-processing")["id"]
    )
    assert database.is_file(), "the flow run did not get the worker's INBOXFLOW_DATABASE_URL"
