"""Helpers of the reliability tests: a file-backed task state store, forked tries, busy workers."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

from support import LocalServer


class FileTaskStateStore:
    """``context["task_state_store"]`` kept in a JSON file, so it survives a SIGKILLed try.

    Airflow's own store needs a running task supervisor; this one has the same ``get/set/delete``
    and writes atomically (temporary file + rename), like a database commit.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.path.read_text()))
        except (FileNotFoundError, ValueError):
            return {}

    def _write(self, values: dict[str, Any]) -> None:
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(values))
        os.replace(partial, self.path)

    def get(self, key: str, default: Any = None) -> Any:
        return self._read().get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._write({**self._read(), key: value})

    def delete(self, key: str) -> None:
        values = self._read()
        values.pop(key, None)
        self._write(values)


class XComRecorder:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def wait_for(condition: Callable[[], Any], *, what: str, timeout: float = 60.0, step: float = 0.01) -> Any:
    """Poll ``condition`` until truthy (bounded); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(step)


_PRELOAD = [
    "airflow_batchpred.operators.local_file",
    "airflow_batchpred.triggers.batch_prediction",
    "reliability_helpers",
]


@contextlib.contextmanager
def forked(target: Callable[..., None], *args: Any) -> Iterator[multiprocessing.Process]:
    """Run ``target(*args)`` in a child forked from a clean fork server.

    Forking the test process itself can deadlock the child on a lock some thread held at the
    fork; the fork server is a fresh process with the provider already imported, so children
    start in milliseconds without inheriting any thread. ``target`` must be importable.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    process = context.Process(target=target, args=args, daemon=True)
    process.start()
    try:
        yield process
    finally:
        if process.is_alive():
            os.kill(process.pid, signal.SIGKILL)
        process.join(30)


def sigkill(process: multiprocessing.Process) -> int | None:
    """SIGKILL ``process`` (unless it already ended) and return its exit code."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGKILL)  # type: ignore[arg-type]
    process.join(30)
    assert not process.is_alive()
    return process.exitcode


class BusyWorkers:
    """Occupy every scoring worker of ``server`` so new jobs wait INITIALIZING in the queue.

    Each blocker is a localFile job whose upload sends the header and one row, then stalls.
    """

    def __init__(
        self, server: LocalServer, deployment_id: str, header_and_row: bytes, workers: int = 2
    ) -> None:
        self.server, self.deployment_id, self.data = server, deployment_id, header_and_row
        self.workers = workers
        self._release = threading.Event()
        self._threads: list[threading.Thread] = []
        self.job_ids: list[str] = []

    def _body(self) -> Iterator[bytes]:
        yield self.data
        self._release.wait(120)

    def _upload(self, url: str) -> None:
        with contextlib.suppress(requests.RequestException):
            requests.put(
                url,
                data=self._body(),
                headers={**self.server.headers, "Content-Type": "text/csv"},
                timeout=180,
            )

    def __enter__(self) -> BusyWorkers:
        local = {"type": "localFile"}
        for _ in range(self.workers):
            job = requests.post(
                f"{self.server.endpoint}/batchPredictions/",
                json={"deploymentId": self.deployment_id, "intakeSettings": local, "outputSettings": local},
                headers=self.server.headers,
                timeout=30,
            ).json()
            self.job_ids.append(job["id"])
            thread = threading.Thread(target=self._upload, args=(job["links"]["csvUpload"],), daemon=True)
            thread.start()
            self._threads.append(thread)
        for job_id in self.job_ids:
            wait_for(
                lambda job_id=job_id: (
                    self.server.get(f"batchPredictions/{job_id}/").json()["status"] == "RUNNING"
                ),
                what=f"blocker {job_id} to run",
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        for job_id in self.job_ids:
            requests.delete(
                f"{self.server.endpoint}/batchPredictions/{job_id}/", headers=self.server.headers, timeout=30
            )
        self._release.set()
        for thread in self._threads:
            thread.join(30)


# -- what the children run (module level: the fork server imports them by name) ---------------


def run_try_child(environ: dict[str, str], operator_kwargs: dict[str, Any], store: str, done: str) -> None:
    """One try of a local-file operator task; touches ``done`` if it finished."""
    import asyncio

    from airflow.sdk.exceptions import TaskDeferred

    from airflow_batchpred.operators.local_file import DataRobotLocalFileBatchPredictionOperator

    os.environ.update(environ)
    operator = DataRobotLocalFileBatchPredictionOperator(**operator_kwargs)
    context: dict[str, Any] = {"ti": XComRecorder(), "task_state_store": FileTaskStateStore(Path(store))}
    try:
        operator.execute(context)
    except TaskDeferred as deferred:
        events = asyncio.run(_collect(deferred.trigger))
        operator.execute_complete(context, events[0].payload)
    Path(done).touch()


def run_trigger_child(environ: dict[str, str], trigger_kwargs: dict[str, Any], events_file: str) -> None:
    """A triggerer running one trigger; writes the events it fired to ``events_file``."""
    import asyncio

    from airflow_batchpred.triggers.batch_prediction import DataRobotBatchPredictionJobTrigger

    os.environ.update(environ)
    events = asyncio.run(_collect(DataRobotBatchPredictionJobTrigger(**trigger_kwargs)))
    Path(events_file).write_text(json.dumps([event.payload for event in events], default=str))


async def _collect(trigger: Any) -> list[Any]:
    return [event async for event in trigger.run()]
