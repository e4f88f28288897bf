"""A real Airflow 3 (api-server, scheduler, dag-processor, triggerer) with the provider installed.

Used by the end-to-end test (``tests/e2e``) and by ``dev/screenshots.py``. Everything runs as
separate processes of this repository's venv, each in its own process group, bound to 127.0.0.1:

* a temporary ``AIRFLOW_HOME`` with a SQLite metadata database (``airflow db migrate``);
* ``LocalExecutor`` with low parallelism;
* a dags folder holding a symlink to ``example_dags/example_batchpred_local_file.py``;
* the local batch-prediction server, with ``AIRFLOW_CONN_DATAROBOT_DEFAULT`` pointing at it;
* SimpleAuthManager with one admin user whose password is written to a passwords file;
* ``serve-logs`` is **not started** (``--skip-serve-logs`` on scheduler and triggerer): Airflow's
  log server binds every interface and has no host option. All components share one host, so the
  api-server reads task logs from the local log folder.

Every process gets a marker variable in its environment and each component leads its own session.
:meth:`AirflowStack.stop` stops scheduler, dag-processor and triggerer first, then the api-server:
SIGINT to the leader, then SIGTERM and SIGKILL to the process group. It then looks through
``/proc`` for anything still carrying the marker or living in one of the sessions, kills it and
records it in ``leftovers`` (the e2e fixture fails its teardown on any).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from support import LOOPBACK, LocalServer, ServiceProcess, free_port, wait_for_http

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
EXAMPLE_DAG_FILE = REPO_ROOT / "example_dags" / "example_batchpred_local_file.py"
EXAMPLE_DAG_ID = "example_batchpred_local_file"
MARKER_VAR = "BATCHPRED_E2E_STACK"
ADMIN_USER = "admin"


def _tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return f"(no {path.name})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def processes_with_marker(marker: str) -> list[int]:
    """Pids of every process whose environment holds ``MARKER_VAR=marker`` (read from /proc).

    A process that rewrites its title (``setproctitle``) can clobber its environment block, so
    :meth:`AirflowStack.pids` also looks at session ids.
    """
    needle = f"{MARKER_VAR}={marker}".encode()
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def processes_in_sessions(session_ids: set[int]) -> list[int]:
    """Pids of every process whose session id is in ``session_ids``."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.getsid(int(entry.name)) in session_ids:
                pids.append(int(entry.name))
    return pids


@dataclass
class AirflowStack:
    """Start and stop a real Airflow plus the local batch-prediction server."""

    base_dir: Path
    parallelism: int = 2
    #: ``[operators] default_deferrable``: True sends the example task through the triggerer (see
    #: ``docs/real-airflow.md`` for the Airflow race that makes this flaky on a loaded machine).
    deferrable: bool = False
    #: Extra ``BATCHPRED_*`` settings of the local server (see ``airflow_batchpred.server.config``).
    server_env: dict[str, str] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    marker: str = field(default_factory=lambda: secrets.token_hex(8))
    server: LocalServer | None = field(default=None, init=False)
    components: dict[str, ServiceProcess] = field(default_factory=dict, init=False)
    timings: dict[str, float] = field(default_factory=dict, init=False)
    leftovers: list[int] = field(default_factory=list, init=False)
    stragglers: list[int] = field(default_factory=list, init=False)
    _token: str | None = field(default=None, init=False)

    # -- layout ---------------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        return self.base_dir / "airflow-home"

    @property
    def dags_folder(self) -> Path:
        return self.base_dir / "dags"

    @property
    def log_dir(self) -> Path:
        return self.base_dir / "logs"

    @property
    def data_dir(self) -> Path:
        """Where the test puts input and output CSV files."""
        return self.base_dir / "data"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    def environment(self) -> dict[str, str]:
        """The environment of every Airflow component."""
        assert self.server is not None
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "BATCHPRED_DEMO_"))
        }
        env.update(
            {
                MARKER_VAR: self.marker,
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__API__HOST": LOOPBACK,
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(self.deferrable),
                "AIRFLOW__OPENLINEAGE__DISABLED": "True",
                # Parse the dags folder soon after start and pick up new runs quickly.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW_CONN_DATAROBOT_DEFAULT": json.dumps(
                    {
                        "conn_type": "datarobot",
                        "password": self.server.token,
                        "extra": {"endpoint": self.server.endpoint},
                    }
                ),
            }
        )
        return env

    @property
    def _jwt_secret(self) -> str:
        secret_file = self.home / ".jwt_secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(64))
        return secret_file.read_text()

    # -- start / stop ---------------------------------------------------------------------------
    def start(self, *, timeout: float = 180.0) -> AirflowStack:
        started = time.monotonic()
        for folder in (self.home, self.dags_folder, self.log_dir, self.data_dir):
            folder.mkdir(parents=True, exist_ok=True)
        link = self.dags_folder / EXAMPLE_DAG_FILE.name
        if not link.exists():
            link.symlink_to(EXAMPLE_DAG_FILE)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: self.password}))
        migrate: ServiceProcess | None = None
        try:
            self.server = LocalServer(
                data_dir=self.base_dir / "server" / "data",
                token=secrets.token_hex(16),
                env={**self.server_env, MARKER_VAR: self.marker},
            )
            env = self.environment()
            # The metadata database is migrated while the local server starts (both take seconds).
            migrate = ServiceProcess(
                ["airflow", "db", "migrate"], self.log_dir / "db-migrate.log", env=env
            ).start()
            self.server.start()
            self.timings["local_server_s"] = time.monotonic() - started
            assert migrate.process is not None
            if migrate.process.wait(timeout=timeout) != 0:
                raise RuntimeError(f"airflow db migrate exited with {migrate.process.returncode}")
            self.timings["db_migrate_s"] = time.monotonic() - started
            commands = {
                "api-server": ["airflow", "api-server", "--host", LOOPBACK, "--port", str(self.api_port)],
                "scheduler": ["airflow", "scheduler", "--skip-serve-logs"],
                "dag-processor": ["airflow", "dag-processor"],
                "triggerer": ["airflow", "triggerer", "--skip-serve-logs"],
            }
            for name, args in commands.items():
                self.components[name] = ServiceProcess(args, self.log_dir / f"{name}.log", env=env).start()
            api = self.components["api-server"]
            wait_for_http(
                f"{self.url}/api/v2/monitor/health",
                timeout=timeout,
                process=api.process,
                log_file=api.log_file,
            )
            self.timings["api_healthy_s"] = time.monotonic() - started
            self._wait_for_components(deadline=started + timeout)
            self.timings["all_healthy_s"] = time.monotonic() - started
        except BaseException:
            logs = self.log_tails()
            if migrate is not None:
                migrate.kill()
            self.stop()
            raise RuntimeError(f"Airflow stack did not start:\n{logs}") from None
        log.info("Airflow stack up at %s in %.1f s", self.url, self.timings["all_healthy_s"])
        return self

    def _wait_for_components(self, *, deadline: float) -> None:
        """Wait until scheduler, dag-processor and triggerer report healthy heartbeats."""
        while True:
            for name, component in self.components.items():
                assert component.process is not None
                if component.process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {component.process.returncode}")
            health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
            states = {
                name: (health.get(name) or {}).get("status")
                for name in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            }
            if all(state == "healthy" for state in states.values()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"components not healthy in time: {states}")
            time.sleep(0.5)

    def stop(self, *, grace: float = 10.0) -> None:
        """Stop every component and the local server; kill anything left that belongs to the stack.

        Scheduler, dag-processor and triggerer go first (they report to the api-server while they
        shut down), then the api-server. Each wave gets SIGINT to its process groups (Airflow's
        components exit gracefully on it), then SIGTERM, then SIGKILL for whatever still runs.
        """
        started = time.monotonic()
        workers = [name for name in self.components if name != "api-server"]
        for label, wave in (("stop_components_s", workers), ("stop_api_server_s", ["api-server"])):
            wave_started = time.monotonic()
            self._stop_groups(wave, grace=grace)
            self.timings[label] = time.monotonic() - wave_started
        if self.server is not None:
            self.server.stop()
        deadline = time.monotonic() + 5
        left = sorted(self.pids())
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = sorted(self.pids())
        if left:
            log.warning("Processes left after stop, killing: %s", left)
            self.leftovers = left
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.timings["stop_s"] = time.monotonic() - started

    def _stop_groups(self, names: list[str], *, grace: float) -> None:
        """SIGINT to each leader, then SIGTERM and SIGKILL to the process groups still running.

        The first signal goes to the leader only, so that it can stop its own children (the
        triggerer waits for its trigger runner, the scheduler for its executor's workers). Group
        members that outlive their leader for more than 3 s are killed and noted in ``stragglers``.
        """
        groups = {
            name: component.process
            for name, component in self.components.items()
            if name in names and component.process is not None and component.process.poll() is None
        }
        pending = dict(groups)
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            for process in pending.values():
                with contextlib.suppress(ProcessLookupError):
                    if sig == signal.SIGINT:
                        os.kill(process.pid, sig)
                    else:
                        os.killpg(process.pid, sig)
            deadline = time.monotonic() + wait
            for name, process in list(pending.items()):
                try:
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop on %s within %.0f s", name, signal.Signals(sig).name, wait)
                    continue
                del pending[name]
            if not pending:
                break
        deadline = time.monotonic() + 3
        for name, process in groups.items():
            members = processes_in_sessions({process.pid})
            while members and time.monotonic() < deadline:
                time.sleep(0.2)
                members = processes_in_sessions({process.pid})
            if members:
                log.warning("%s left %s running after it stopped; killing them", name, members)
                self.stragglers.extend(members)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)

    @property
    def session_ids(self) -> set[int]:
        """Each component (and the local server) leads its own session: its pid is the session id."""
        services = [
            *self.components.values(),
            *([self.server.service] if self.server and self.server.service else []),
        ]
        return {service.process.pid for service in services if service.process is not None}

    def pids(self) -> set[int]:
        """Every live process of the stack: by marker variable or by session."""
        return set(processes_with_marker(self.marker)) | set(processes_in_sessions(self.session_ids))

    def log_tails(self, lines: int = 60) -> str:
        files = sorted(self.log_dir.glob("*.log"))
        if self.server is not None:
            files.append(self.server.log_file)
        task_logs = sorted((self.home / "logs").rglob("*.log")) if (self.home / "logs").exists() else []
        parts = [f"===== {path.name} =====\n{_tail(path, lines)}" for path in [*files, *task_logs]]
        return "\n".join(parts)

    # -- REST -----------------------------------------------------------------------------------
    def token(self) -> str:
        """A JWT for the admin user, from SimpleAuthManager's ``POST /auth/token``."""
        if self._token is None:
            response = requests.post(
                f"{self.url}/auth/token",
                json={"username": ADMIN_USER, "password": self.password},
                timeout=30,
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return requests.request(
            method, f"{self.url}/{path.lstrip('/')}", headers=headers, timeout=30, **kwargs
        )

    def wait_for_dag(self, dag_id: str, *, timeout: float = 90.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; fail early on an import error."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.api("GET", f"/api/v2/dags/{dag_id}")
            if response.status_code == 200:
                return response.json()
            errors = self.api("GET", "/api/v2/importErrors").json().get("import_errors", [])
            if errors:
                raise RuntimeError(f"import errors: {errors}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG {dag_id} not parsed within {timeout}s: {response.text}")
            time.sleep(0.5)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        """Unpause ``dag_id`` and trigger a run with ``conf`` through the REST API."""
        unpause = self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        unpause.raise_for_status()
        response = self.api(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}
        )
        if response.status_code != 200:
            raise RuntimeError(f"trigger failed: {response.status_code} {response.text}")
        return response.json()

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float = 120.0) -> dict[str, Any]:
        """Poll the run until it leaves the queued/running states (bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            response.raise_for_status()
            run = response.json()
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run['state']} after {timeout}s")
            time.sleep(0.5)


def _fernet_key() -> str:
    key = os.environ.get("BATCHPRED_E2E_FERNET_KEY")
    if key is None:
        from cryptography.fernet import Fernet

        key = os.environ["BATCHPRED_E2E_FERNET_KEY"] = Fernet.generate_key().decode()
    return key


@contextlib.contextmanager
def running_stack(base_dir: Path | None = None, **kwargs: Any) -> Iterator[AirflowStack]:
    """Start a stack in ``base_dir`` (a new temporary folder by default), stop and clean up after."""
    owned = base_dir is None
    root = Path(tempfile.mkdtemp(prefix="batchpred-airflow-")) if base_dir is None else base_dir
    stack = AirflowStack(base_dir=root, **kwargs).start()
    try:
        yield stack
    finally:
        stack.stop()
        if owned:
            shutil.rmtree(root, ignore_errors=True)
