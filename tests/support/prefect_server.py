"""A real Prefect server, project copies, deployments and workers for deployment tests.

Everything listens on 127.0.0.1 only and everything started here is stopped again:

* ``PrefectServer``: ``prefect server start`` in its own process group, backed by a
  fresh PostgreSQL database (dropped on close) and its own PREFECT_HOME.
* ``ProjectCopy``: the project's git-tracked and untracked-but-not-ignored files in a
  temp folder, so a test may edit processes/ or prefect.yaml without touching the repo.
  Commands against a copy run with cwd=copy and PYTHONPATH=copy: the venv's editable
  install of inboxflow is a meta-path finder appended *after* the normal path finder,
  so PYTHONPATH entries win over /work/main.
* ``deploy``, ``run_deployment``, ``Worker``: the CLI exactly as a user runs it.
* ``read_deployment``, ``wait_for_flow_run``, ``flow_run_logs``: plain httpx on the REST
  API. Prefect's own client would read the *test process's* settings, which the
  session fixture ``prefect_api`` points at another (in-process) server.

Every subprocess gets an explicit environment: the test process's PREFECT_* and
INBOXFLOW_* variables are removed (they belong to ``prefect_api`` and to the test's own
data folder), and a marker variable is added so that processes which leave their
process group (the process worker starts each flow run in a new session) can still be
found and stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

HOST = "127.0.0.1"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
POSTGRES_ADMIN_URL = os.environ.get(
    "INBOXFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
WORK_POOL = "inboxflow"
# Set on every process started here; its value is unique per server or worker.
MARKER_VARIABLE = "INBOXFLOW_TEST_PREFECT_HARNESS"
FINAL_STATE_TYPES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
# Prefect settings for every process started here: no network (analytics), output
# that reads well in a log file and in a failure message.
QUIET_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLI_COLORS": "false",
    "PREFECT_CLI_WRAP_LINES": "false",
    "PREFECT_CLI_PROMPT": "false",
    "PYTHONUNBUFFERED": "1",
}


class PrefectHarnessError(RuntimeError):
    """A Prefect server, worker or CLI command of the test harness failed."""


def prefect_executable() -> str:
    """The prefect CLI of the interpreter running the tests (the project's venv)."""
    candidate = Path(sys.executable).with_name("prefect")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("prefect")
    if found is None:
        raise PrefectHarnessError(f"no prefect CLI next to {sys.executable} or on PATH")
    return found


def free_port() -> int:
    """Ask the kernel for an unused loopback TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def clean_environ() -> dict[str, str]:
    """os.environ without the test process's own Prefect and inboxflow settings."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "INBOXFLOW_")) and key not in ("PYTHONPATH", "PWD")
    }


def tail(path: Path, lines: int = 60) -> str:
    """The last lines of a log file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def stop_process_group(process: subprocess.Popen[Any], timeout: float = 20) -> None:
    """SIGTERM the process's group, again if it lingers, then SIGKILL the group."""
    pgid = process.pid  # started with start_new_session=True: it leads its own group
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)
    # Children may outlive the leader; a group id is not reused while members remain.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    process.wait(5)


def marked_pids(marker: str) -> list[int]:
    """Pids of live processes whose environment carries MARKER_VARIABLE=marker."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone already, or not ours to read
            continue
    return found


def kill_marked(marker: str, timeout: float = 10) -> list[int]:
    """Stop (SIGTERM, then SIGKILL) every process carrying the marker; returns their pids."""
    pids = marked_pids(marker)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while marked_pids(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in marked_pids(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _postgres_admin() -> psycopg.Connection:
    """An autocommit connection to the machine's PostgreSQL server (for CREATE/DROP)."""
    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise PrefectHarnessError(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({exc}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect 15 main start`"
        ) from exc


class PrefectServer:
    """``prefect server start`` on a free loopback port with a fresh PostgreSQL database.

    The scheduler service is off by default: with it on, the scheduled deployments
    (mailbox-sync, outbound-sending) get runs right after `prefect deploy`, and a worker
    would run them next to the runs a test starts. Schedules are still stored and
    readable through the API. The UI is off by default too (it is not needed by tests
    and copying its files costs startup time).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        scheduler: bool = False,
        ui: bool = False,
        startup_timeout: float = 120,
    ) -> None:
        self.workdir = workdir
        self.scheduler = scheduler
        self.ui = ui
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.api_url = f"http://{HOST}:{self.port}/api"
        self.database_name = f"prefect_test_{uuid.uuid4().hex[:12]}"
        self.database_url = make_url(POSTGRES_ADMIN_URL).set(
            drivername="postgresql+asyncpg", database=self.database_name
        )
        self.log_path = workdir / "server.log"
        # Clients (CLI, worker, flow runs) get their own home: nothing they write mixes
        # with the server's files, and no user profile (~/.prefect) is read.
        self.client_home = workdir / "client-home"
        self.marker = secrets.token_hex(8)
        self._process: subprocess.Popen[bytes] | None = None
        self._database_created = False

    def start(self) -> None:
        """Create the database, start the server and wait until /api/health answers."""
        server_home = self.workdir / "server-home"
        server_home.mkdir(parents=True, exist_ok=True)
        self.client_home.mkdir(parents=True, exist_ok=True)
        with _postgres_admin() as admin:
            admin.execute(f'CREATE DATABASE "{self.database_name}"')
        self._database_created = True
        env = {
            **clean_environ(),
            **QUIET_SETTINGS,
            MARKER_VARIABLE: self.marker,
            "PREFECT_HOME": str(server_home),
            "PREFECT_SERVER_API_HOST": HOST,
            # Also tells the UI where the API is (it would call :4200 otherwise).
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.database_url.render_as_string(
                hide_password=False
            ),
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": str(self.scheduler).lower(),
            "PREFECT_SERVER_UI_ENABLED": str(self.ui).lower(),
        }
        command = [prefect_executable(), "server", "start", "--host", HOST]
        command += ["--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.workdir,  # no prefect.toml or .env of another folder applies
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.close()
            raise

    def _wait_healthy(self) -> None:
        """Poll /api/health until it answers, the server exits or the timeout passes."""
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PrefectHarnessError(
                    f"prefect server exited with {self._process.returncode} before it "
                    f"answered on {self.api_url}; log {self.log_path}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.25)
        raise PrefectHarnessError(
            f"prefect server did not answer on {self.api_url}/health within "
            f"{self.startup_timeout:.0f} s; log {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 60) -> str:
        """The end of the server's log, for failure messages."""
        return tail(self.log_path, lines)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a client subprocess (CLI, worker) talking to this server."""
        return {
            **clean_environ(),
            **QUIET_SETTINGS,
            "PREFECT_HOME": str(self.client_home),
            "PREFECT_API_URL": self.api_url,
            **(extra or {}),
        }

    def http(self) -> httpx.Client:
        """An httpx client for the REST API (base URL ends in /api/)."""
        return httpx.Client(base_url=f"{self.api_url}/", timeout=30)

    def close(self) -> None:
        """Stop the server (and anything it left behind) and drop its database."""
        if self._process is not None:
            stop_process_group(self._process)
            self._process = None
        kill_marked(self.marker)
        if self._database_created:
            with _postgres_admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')
            self._database_created = False

    def __enter__(self) -> PrefectServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _project_files(source: Path) -> list[str]:
    """Tracked plus untracked-but-not-ignored paths of a git work tree (work in progress)."""
    result = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        check=True,
    )
    return sorted({name for name in result.stdout.decode().split("\0") if name})


@dataclass(frozen=True)
class ProjectCopy:
    """A copy of the project's files to deploy from and run flows in."""

    root: Path

    @classmethod
    def create(cls, dest: Path, source: Path = PROJECT_ROOT) -> ProjectCopy:
        """Copy the git-tracked and untracked-but-not-ignored files of source into dest."""
        for name in _project_files(source):
            origin = source / name
            # `git ls-files --cached` still lists files deleted in the work tree.
            if not origin.exists() and not origin.is_symlink():
                continue
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target, follow_symlinks=False)
        return cls(dest)

    def env(self, server: PrefectServer, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The server's client environment, with the copy's code first on the import path."""
        return server.env(
            {
                # Wins over the editable install, which points at the repository.
                "PYTHONPATH": str(self.root),
                # prefect.yaml's `{{ $PWD }}` is read from the environment, not from the
                # cwd: an inherited PWD would point the deployments at the repository.
                "PWD": str(self.root),
                **(extra or {}),
            }
        )

    def prefect(
        self,
        server: PrefectServer,
        *args: str,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 180,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run `prefect ARGS` in the copy against the server; raise with its output if it fails."""
        command = [prefect_executable(), *args]
        try:
            result = subprocess.run(
                command,
                cwd=self.root,
                env=self.env(server, extra_env),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                # A hung CLI must not leave children behind when the timeout kills it.
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise PrefectHarnessError(
                f"`{_quote(command)}` did not finish within {timeout:.0f} s; output:\n"
                f"{_text(exc.stdout)}{_text(exc.stderr)}"
            ) from exc
        if check and result.returncode != 0:
            raise PrefectHarnessError(
                f"`{_quote(command)}` (cwd {self.root}) exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result


def _quote(command: Sequence[str]) -> str:
    """A command line for messages."""
    return " ".join(command)


def _text(output: str | bytes | None) -> str:
    """Captured output of a timed-out command as text."""
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def ensure_work_pool(
    project: ProjectCopy, server: PrefectServer, name: str = WORK_POOL, pool_type: str = "process"
) -> None:
    """Create the work pool unless it exists (the CLI refuses to create it twice)."""
    with server.http() as http:
        if http.get(f"work_pools/{name}").status_code == 200:
            return
    project.prefect(server, "work-pool", "create", name, "--type", pool_type)


def deploy(project: ProjectCopy, server: PrefectServer) -> str:
    """Create the work pool if missing, then `prefect --no-prompt deploy --all` in the copy."""
    ensure_work_pool(project, server)
    result = project.prefect(server, "--no-prompt", "deploy", "--all")
    return result.stdout + result.stderr


_FLOW_RUN_ID = re.compile(r"UUID:\s*([0-9a-f-]{36})")


def run_deployment(
    project: ProjectCopy,
    server: PrefectServer,
    name: str,
    params: Mapping[str, Any] | None = None,
) -> uuid.UUID:
    """`prefect deployment run FLOW/DEPLOYMENT --param K=V ...`; returns the flow run's id."""
    args = ["deployment", "run", name]
    for key, value in (params or {}).items():
        # The CLI reads each value as JSON (a bare word falls back to a string).
        args += ["--param", f"{key}={json.dumps(value)}"]
    result = project.prefect(server, *args)
    match = _FLOW_RUN_ID.search(result.stdout)
    if match is None:
        raise PrefectHarnessError(
            f"no flow run id in the output of `prefect {_quote(args)}`:\n{result.stdout}"
        )
    return uuid.UUID(match.group(1))


def read_deployment(server: PrefectServer, name: str) -> dict[str, Any]:
    """The deployment FLOW/DEPLOYMENT as the API returns it (tags, schedules, pull_steps...)."""
    flow_name, _, deployment_name = name.partition("/")
    with server.http() as http:
        response = http.get(f"deployments/name/{flow_name}/{deployment_name}")
    if response.status_code != 200:
        raise PrefectHarnessError(
            f"deployment {name!r}: HTTP {response.status_code} {response.text[:500]}"
        )
    return response.json()


def flow_run_logs(server: PrefectServer, flow_run_id: uuid.UUID | str) -> list[str]:
    """The flow run's log lines stored on the server (oldest first, at most 200)."""
    body = {"logs": {"flow_run_id": {"any_": [str(flow_run_id)]}}, "limit": 200}
    with server.http() as http:
        response = http.post("logs/filter", json=body)
    response.raise_for_status()
    return [f"{log['level']:>2} {log['name']}: {log['message']}" for log in response.json()]


def wait_for_flow_run_log(
    server: PrefectServer, flow_run_id: uuid.UUID | str, text: str, timeout: float = 20
) -> list[str]:
    """Poll the flow run's logs until a line contains text; returns all its lines.

    A flow run's logs reach the server in batches, after its final state: reading them
    right after wait_for_flow_run may miss the last ones.
    """
    deadline = time.monotonic() + timeout
    while True:
        lines = flow_run_logs(server, flow_run_id)
        if any(text in line for line in lines):
            return lines
        if time.monotonic() >= deadline:
            raise PrefectHarnessError(
                f"no log line of flow run {flow_run_id} contains {text!r} after "
                f"{timeout:.0f} s; its logs:\n" + "\n".join(lines)
            )
        time.sleep(0.5)


@dataclass(frozen=True)
class FlowRunOutcome:
    """The final state of a flow run."""

    id: uuid.UUID
    state_type: str
    state_name: str
    message: str | None
    flow_run: dict[str, Any]


def wait_for_flow_run(
    server: PrefectServer,
    flow_run_id: uuid.UUID | str,
    timeout: float = 90,
    worker: Worker | None = None,
) -> FlowRunOutcome:
    """Poll the flow run until it reaches a final state; raise (with logs) on timeout."""
    deadline = time.monotonic() + timeout
    flow_run: dict[str, Any] = {}
    with server.http() as http:
        while True:
            response = http.get(f"flow_runs/{flow_run_id}")
            response.raise_for_status()
            flow_run = response.json()
            state = flow_run.get("state") or {}
            if state.get("type") in FINAL_STATE_TYPES:
                return FlowRunOutcome(
                    id=uuid.UUID(str(flow_run_id)),
                    state_type=state["type"],
                    state_name=state.get("name") or "",
                    message=state.get("message"),
                    flow_run=flow_run,
                )
            if worker is not None and not worker.running:
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.5)
    reason = "its worker exited" if worker is not None and not worker.running else "timeout"
    state = flow_run.get("state") or {}
    details = [
        f"flow run {flow_run_id} not finished ({reason} after at most {timeout:.0f} s): "
        f"state {state.get('type')} {state.get('name')!r} {state.get('message')!r}",
        "flow run logs:",
        *flow_run_logs(server, flow_run_id)[-40:],
    ]
    if worker is not None:
        details += [f"worker log {worker.log_path}:", worker.log_tail()]
    raise PrefectHarnessError("\n".join(details))


class Worker:
    """`prefect worker start --pool POOL --type process` in the copy, as a context manager.

    Flow runs inherit the worker's environment: pass the flow's settings (e.g.
    INBOXFLOW_DATABASE_URL, INBOXFLOW_HOME) as ``env``.
    """

    def __init__(
        self,
        project: ProjectCopy,
        server: PrefectServer,
        *,
        env: Mapping[str, str] | None = None,
        pool: str = WORK_POOL,
        log_path: Path | None = None,
        query_seconds: float = 1,
        ready_timeout: float = 60,
        stop_timeout: float = 20,
    ) -> None:
        self.project = project
        self.server = server
        self.pool = pool
        self.name = f"test-worker-{secrets.token_hex(4)}"
        self.marker = secrets.token_hex(8)
        self.log_path = log_path or project.root.parent / f"{self.name}.log"
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self._env = project.env(
            server,
            {
                # Poll every second (default 10 s) so a run starts ~1 s after it is created.
                "PREFECT_WORKER_QUERY_SECONDS": str(query_seconds),
                "PREFECT_WORKER_PREFETCH_SECONDS": str(max(query_seconds, 1) * 2),
                # Reaches the flow-run processes too, which run in their own sessions.
                MARKER_VARIABLE: self.marker,
                **(env or {}),
            },
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether the worker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the worker and wait until the server lists it as a worker of the pool."""
        command = [prefect_executable(), "worker", "start", "--pool", self.pool]
        command += ["--type", "process", "--name", self.name, "--install-policy", "never"]
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            command,
            cwd=self.project.root,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        """Poll the pool's workers until this one has sent its first heartbeat."""
        deadline = time.monotonic() + self.ready_timeout
        with self.server.http() as http:
            while time.monotonic() < deadline:
                if not self.running:
                    raise PrefectHarnessError(
                        f"prefect worker exited before it was ready; log {self.log_path}:\n"
                        f"{self.log_tail()}"
                    )
                # The worker filter has no name criterion: look through the pool's workers.
                response = http.post(f"work_pools/{self.pool}/workers/filter", json={})
                if response.status_code == 200 and any(
                    worker["name"] == self.name for worker in response.json()
                ):
                    return
                time.sleep(0.25)
        raise PrefectHarnessError(
            f"prefect worker {self.name} did not register within {self.ready_timeout:.0f} s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 60) -> str:
        """The end of the worker's log (with its flow runs' output), for failure messages."""
        return tail(self.log_path, lines)

    def stop(self) -> None:
        """Stop the worker's process group, then any flow run it left running."""
        if self._process is not None:
            stop_process_group(self._process, self.stop_timeout)
            self._process = None
        kill_marked(self.marker)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
