"""Helpers for starting real services on loopback in tests (no pytest imports here)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port that is free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str,
    *,
    timeout: float = 60.0,
    process: subprocess.Popen[bytes] | None = None,
    headers: dict[str, str] | None = None,
    log_file: Path | None = None,
) -> None:
    """Poll ``url`` until it answers (any status below 500), or fail with the service's log."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"service exited with {process.returncode} before answering {url}:\n{_tail(log_file)}"
            )
        try:
            response = requests.get(url, timeout=2, headers=headers)
            if response.status_code < 500:
                return
        except requests.RequestException as exc:
            last_error = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s ({last_error}):\n{_tail(log_file)}")


def _tail(log_file: Path | None, lines: int = 40) -> str:
    if log_file is None or not log_file.exists():
        return ""
    return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class ServiceProcess:
    """A service started as a child process in its own process group."""

    args: Sequence[str]
    log_file: Path
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ServiceProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            list(self.args), stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        log.close()
        return self

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)

    def kill(self) -> None:
        self.stop(sig=signal.SIGKILL)


@dataclass
class LocalServer:
    """The local batch-prediction server, running as a subprocess on loopback."""

    data_dir: Path
    token: str = field(repr=False)
    port: int = field(default_factory=free_port)
    extra_args: Sequence[str] = ()
    #: Extra environment for the server process (e.g. ``STORAGE_EMULATOR_HOST``).
    env: dict[str, str] = field(default_factory=dict)
    service: ServiceProcess | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.url}/api/v2"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-server.log"

    def start(self, *, timeout: float = 120.0) -> LocalServer:
        args = [
            sys.executable,
            "-m",
            "airflow_batchpred.server",
            "serve",
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--token",
            self.token,
            *self.extra_args,
        ]
        self.service = ServiceProcess(args, self.log_file, env={**os.environ, **self.env}).start()
        wait_for_http(
            f"{self.endpoint}/version/", timeout=timeout, process=self.service.process, log_file=self.log_file
        )
        return self

    def stop(self) -> None:
        if self.service:
            self.service.stop()

    def kill(self) -> None:
        if self.service:
            self.service.kill()

    def restart(self, *, kill: bool = False) -> LocalServer:
        self.kill() if kill else self.stop()
        return self.start()

    def get(self, path: str, **params: object) -> requests.Response:
        return requests.get(
            f"{self.endpoint}/{path.lstrip('/')}", headers=self.headers, params=params, timeout=30
        )

    def jobs(self, **filters: object) -> list[dict]:
        """Every job the server knows (following pagination), optionally filtered."""
        jobs: list[dict] = []
        url: str | None = f"{self.endpoint}/batchPredictions/"
        params: dict[str, object] | None = {"limit": 100, **filters}
        while url:
            response = requests.get(url, headers=self.headers, params=params, timeout=30)
            response.raise_for_status()
            body = response.json()
            jobs.extend(body["data"])
            url, params = body.get("next"), None
        return jobs


@contextlib.contextmanager
def running(service: LocalServer) -> Iterator[LocalServer]:
    service.start()
    try:
        yield service
    finally:
        service.stop()
