"""Retry and restart: re-attach after a SIGKILLed try (20 trials, no duplicate job), a triggerer
killed mid-poll and rebuilt from ``serialize()`` (20 trials, the completion is delivered), and a
server restarted mid-job (the operator fails the task with the server's FAILED reason).

Every trial is seeded and bounded; the kill points vary between trials (during the upload, while
queued, while waiting, after completion) and every outcome is checked on the server itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from reliability_helpers import (
    BusyWorkers,
    FileTaskStateStore,
    XComRecorder,
    forked,
    run_trigger_child,
    run_try_child,
    sigkill,
    wait_for,
)

from airflow_batchpred.exceptions import DataRobotJobFailedError
from airflow_batchpred.hooks.datarobot import DataRobotHook
from airflow_batchpred.operators.batch_prediction import DataRobotBatchPredictionOperator
from airflow_batchpred.operators.local_file import DataRobotLocalFileBatchPredictionOperator
from airflow_batchpred.server import models
from airflow_batchpred.triggers.batch_prediction import DataRobotBatchPredictionJobTrigger

from support import LocalServer

TRIALS = 20
DEPLOYMENT = models.DEMO_REGRESSION_ID
KEY = DataRobotBatchPredictionOperator.state_store_key
FAST = {"retry_limit": 5, "retry_delay": 0.05, "max_retry_delay": 0.5}


@pytest.fixture(scope="module")
def server(local_server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server of this module alone (restarted by some tests), with the demo models copied in."""
    data_dir = tmp_path_factory.mktemp("restart") / "data"
    shutil.copytree(local_server.data_dir / "models", data_dir / "models")
    own = LocalServer(data_dir=data_dir, token=secrets.token_hex(16)).start()
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture
def connection(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> str:
    conn_id = "dr_restart"
    value = json.dumps(
        {"conn_type": "datarobot", "password": server.token, "extra": {"endpoint": server.endpoint}}
    )
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
    return conn_id


def _operator_kwargs(
    conn_id: str, source: Path, target: Path, deferrable: bool, hook_params: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "task_id": "score",
        "datarobot_conn_id": conn_id,
        "deployment_id": DEPLOYMENT,
        "input_file": str(source),
        "output_file": str(target),
        "poll_interval": 0.05,
        "deferrable": deferrable,
        "hook_params": hook_params or FAST,
    }


def _operator(
    conn_id: str, source: Path, target: Path, deferrable: bool, hook_params: dict[str, Any] | None = None
) -> DataRobotLocalFileBatchPredictionOperator:
    return DataRobotLocalFileBatchPredictionOperator(
        **_operator_kwargs(conn_id, source, target, deferrable, hook_params)
    )


def _run_try(
    operator: DataRobotLocalFileBatchPredictionOperator, store: FileTaskStateStore
) -> dict[str, Any]:
    """One whole try: execute, and in deferrable mode also the trigger and ``execute_complete``."""
    from airflow.sdk.exceptions import TaskDeferred

    context: dict[str, Any] = {"ti": XComRecorder(), "task_state_store": store}
    try:
        return operator.execute(context)
    except TaskDeferred as deferred:
        events = asyncio.run(_events(deferred.trigger))
        assert len(events) == 1, events
        return operator.execute_complete(context, events[0].payload)


async def _events(trigger: Any) -> list[Any]:
    return [event async for event in trigger.run()]


def _job_ids(server: LocalServer) -> set[str]:
    return {job["id"] for job in server.jobs()}


def test_a_killed_try_is_retried_without_a_duplicate_job_20_trials(
    server: LocalServer, connection: str, tmp_path: Path
) -> None:
    source = models.write_demo_csv(DEPLOYMENT, tmp_path / "in.csv", 20_000, seed=4)
    reference_path = tmp_path / "reference.csv"
    _run_try(_operator(connection, source, reference_path, False), FileTaskStateStore(tmp_path / "ref.json"))
    reference = reference_path.read_bytes()
    header_and_row = b"".join(source.read_bytes().splitlines(keepends=True)[:2])
    rng = random.Random(20261128)
    outcomes: list[str] = []
    for trial in range(TRIALS):
        deferrable = trial % 2 == 1
        queued = trial % 4 in (0, 1)  # half the trials: the job waits queued behind busy workers
        target = tmp_path / f"out-{trial}.csv"
        store = FileTaskStateStore(tmp_path / f"state-{trial}.json")
        done = tmp_path / f"done-{trial}"
        before = _job_ids(server)
        busy = BusyWorkers(server, DEPLOYMENT, header_and_row) if queued else None
        blockers: set[str] = set()
        if busy:
            busy.__enter__()
            blockers = set(busy.job_ids)
        try:
            kwargs = _operator_kwargs(connection, source, target, deferrable)
            environ = {f"AIRFLOW_CONN_{connection.upper()}": os.environ[f"AIRFLOW_CONN_{connection.upper()}"]}

            if trial % 4 == 3:  # the download answers slowly, so the kill finds the try in it
                _set_faults(
                    server, {"rate": 1.0, "kinds": ["slow"], "routes": "/download/$", "slowSeconds": 5}
                )
            with forked(run_try_child, environ, kwargs, str(store.path), str(done)) as child:
                wait_for(lambda store=store: store.get(KEY), what=f"trial {trial}: the job id in the store")
                if trial % 4 == 3:  # kill while it downloads the result of a job it noted as uploaded
                    wait_for(
                        lambda store=store: (store.get(KEY) or {}).get("upload_complete"),
                        what=f"trial {trial}: the upload to be noted",
                    )
                    time.sleep(rng.uniform(0.0, 0.2))
                else:  # a random kill point after submission: mid-upload, queued, waiting, downloading
                    time.sleep(rng.uniform(0.0, 0.4 if queued else 0.15))
                sigkill(child)
            saved = store.get(KEY)
        finally:
            _set_faults(server, None)
            if busy:
                busy.__exit__(None, None, None)
        if done.exists():  # the first try finished before the kill: Airflow would not retry it
            result = {"job_id": next(iter(_job_ids(server) - before - blockers))}
            outcomes.append("finished before the kill")
        else:
            result = _run_try(_operator(connection, source, target, deferrable), store)
        created = _job_ids(server) - before - blockers
        jobs = {job_id: server.get(f"batchPredictions/{job_id}/").json() for job_id in created}
        completed = [job_id for job_id, job in jobs.items() if job["status"] == "COMPLETED"]
        assert completed == [result["job_id"]], (trial, jobs)
        others = {job["status"] for job_id, job in jobs.items() if job_id != result["job_id"]}
        assert others <= {"ABORTED"}, (trial, jobs)
        if not done.exists():
            if saved and saved.get("upload_complete"):
                assert created == {saved["job_id"]} == {result["job_id"]}, (trial, saved, jobs)
                outcomes.append("re-attached")
            else:
                # The upload died with the try and cannot be resumed: that job is aborted, not scored.
                outcomes.append("re-attached" if not others else "upload died: aborted and resubmitted")
        assert target.read_bytes() == reference, f"trial {trial}: output differs from the reference run"
        assert store.get(KEY) is None
    assert len(outcomes) == TRIALS
    print({outcome: outcomes.count(outcome) for outcome in sorted(set(outcomes))})
    assert outcomes.count("re-attached") >= TRIALS // 4, outcomes


def test_a_triggerer_killed_mid_poll_still_delivers_the_completion_20_trials(
    server: LocalServer, connection: str, tmp_path: Path
) -> None:
    source = models.write_demo_csv(DEPLOYMENT, tmp_path / "in.csv", 200, seed=8)
    hook = DataRobotHook(connection, **FAST)
    rng = random.Random(7)
    try:
        for trial in range(TRIALS):
            job = hook.submit_job({"deployment_id": DEPLOYMENT})  # waits INITIALIZING for its data
            route = rf"/batchPredictions/{job['id']}/$"
            _set_faults(server, {"rate": 0.0, "kinds": ["500"], "routes": route, "methods": ["GET"]})
            trigger = DataRobotBatchPredictionJobTrigger(
                job_id=job["id"], datarobot_conn_id=connection, poll_interval=0.05, hook_params=FAST
            )
            classpath, kwargs = trigger.serialize()
            events_file = tmp_path / f"events-{trial}.json"
            environ = {f"AIRFLOW_CONN_{connection.upper()}": os.environ[f"AIRFLOW_CONN_{connection.upper()}"]}

            with forked(run_trigger_child, environ, kwargs, str(events_file)) as child:
                polls = 2 + rng.randrange(4)
                wait_for(
                    lambda polls=polls: _polls(server) >= polls, what=f"trial {trial}: the trigger polling"
                )
                assert sigkill(child) == -signal.SIGKILL, "the trigger must still be polling when killed"
            assert not events_file.exists(), "a killed triggerer delivered nothing"
            assert server.get(f"batchPredictions/{job['id']}/").json()["status"] == "INITIALIZING"
            finish_while_down = trial % 2 == 0
            if finish_while_down:
                hook.upload_csv(job, source)
            assert classpath.endswith("DataRobotBatchPredictionJobTrigger")
            rebuilt = DataRobotBatchPredictionJobTrigger(**json.loads(json.dumps(kwargs)))
            if not finish_while_down:
                hook.upload_csv(job, source)
            events = asyncio.run(_events(rebuilt))
            assert [(event.payload["status"], event.payload["job_status"]) for event in events] == [
                ("success", "COMPLETED")
            ], (trial, events)
            assert events[0].payload["job_id"] == job["id"]
    finally:
        _set_faults(server, None)
        hook.close()


def _set_faults(server: LocalServer, plan: dict[str, Any] | None) -> None:
    url = f"{server.endpoint}/admin/faults/"
    response = (
        requests.delete(url, headers=server.headers, timeout=30)
        if plan is None
        else requests.put(url, json=plan, headers=server.headers, timeout=30)
    )
    response.raise_for_status()


def _polls(server: LocalServer) -> int:
    return int(server.get("admin/faults/").json()["matchedRequests"])


def test_a_server_restart_mid_job_fails_the_task_with_the_server_reason(
    server: LocalServer, connection: str, tmp_path: Path
) -> None:
    source = models.write_demo_csv(DEPLOYMENT, tmp_path / "in.csv", 200, seed=9)
    header_and_row = b"".join(source.read_bytes().splitlines(keepends=True)[:2])
    for mode in ("sync", "deferred"):
        target = tmp_path / f"out-{mode}.csv"
        store = FileTaskStateStore(tmp_path / f"state-{mode}.json")
        # Enough retries to ride out the restart (connection refused until the server is back).
        patient = {"retry_limit": 60, "retry_delay": 0.1, "max_retry_delay": 0.5}
        operator = _operator(connection, source, target, mode == "deferred", hook_params=patient)
        busy = BusyWorkers(server, DEPLOYMENT, header_and_row).__enter__()
        outcome: dict[str, Any] = {}

        def task(
            operator: Any = operator, store: FileTaskStateStore = store, outcome: dict[str, Any] = outcome
        ) -> None:
            try:
                outcome["result"] = _run_try(operator, store)
            except Exception as error:
                outcome["error"] = error

        runner = threading.Thread(target=task, daemon=True)
        runner.start()
        saved = wait_for(
            lambda store=store: (store.get(KEY) or {}).get("upload_complete") and store.get(KEY),
            what="the job to be uploaded and queued",
        )
        assert server.get(f"batchPredictions/{saved['job_id']}/").json()["status"] == "INITIALIZING"
        server.restart(kill=True)  # SIGKILL: the job it held queued is marked FAILED on start
        busy._release.set()
        runner.join(120)
        assert not runner.is_alive()
        job = server.get(f"batchPredictions/{saved['job_id']}/").json()
        assert job["status"] == "FAILED"
        assert job["statusDetails"]
        raised = outcome.get("error")
        assert isinstance(raised, DataRobotJobFailedError), outcome
        assert raised.status == "FAILED"
        assert job["statusDetails"] in str(raised)
        assert saved["job_id"] in str(raised)
        assert not target.exists(), "a failed job leaves no output file"
        assert store.get(KEY) is None
