"""The trigger against the local server: serialization, exactly one event, on_kill, retries."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_batchpred.hooks.datarobot import DataRobotHook
from airflow_batchpred.server import models
from airflow_batchpred.triggers.batch_prediction import DataRobotBatchPredictionJobTrigger

FAST = {"retry_limit": 4, "retry_delay": 0.05, "max_retry_delay": 0.2}
CLASSPATH = "airflow_batchpred.triggers.batch_prediction.DataRobotBatchPredictionJobTrigger"


async def all_events(trigger: DataRobotBatchPredictionJobTrigger) -> list[Any]:
    return [event async for event in trigger.run()]


def completed_job(hook: DataRobotHook, tmp_path: Path) -> dict[str, Any]:
    source = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "in.csv", 60, seed=1)
    job = hook.submit_job({"deployment_id": models.DEMO_REGRESSION_ID})
    hook.upload_csv(job, source)
    return job


def test_serialize_round_trip_is_json_safe() -> None:
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.serde import deserialize, serialize

    trigger = DataRobotBatchPredictionJobTrigger(
        job_id="abc",
        datarobot_conn_id="my_conn",
        poll_interval=3,
        end_time=1_800_000_000.5,
        cancel_on_kill=False,
        hook_params={"retry_limit": 2},
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs == {
        "job_id": "abc",
        "datarobot_conn_id": "my_conn",
        "poll_interval": 3.0,
        "end_time": 1_800_000_000.5,
        "cancel_on_kill": False,
        "hook_params": {"retry_limit": 2},
    }
    assert json.loads(json.dumps(kwargs)) == kwargs
    rebuilt = import_string(classpath)(**deserialize(serialize(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)


def test_hook_params_must_be_json_safe() -> None:
    with pytest.raises(ValueError, match="JSON-serializable"):
        DataRobotBatchPredictionJobTrigger(job_id="abc", hook_params={"retry_args": object()})


@pytest.mark.asyncio
async def test_one_success_event_for_a_completed_job(hook: DataRobotHook, tmp_path: Path) -> None:
    job = completed_job(hook, tmp_path)
    trigger = DataRobotBatchPredictionJobTrigger(
        job_id=job["id"], poll_interval=0.1, end_time=time.time() + 300, hook_params=FAST
    )
    events = await all_events(trigger)
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success"
    assert payload["job_id"] == job["id"]
    assert payload["job_status"] == "COMPLETED"
    assert payload["job"]["scoredRows"] == 60
    assert json.loads(json.dumps(payload)) == payload


@pytest.mark.asyncio
async def test_one_timeout_event_at_the_absolute_deadline(hook: DataRobotHook) -> None:
    job = hook.submit_job({"deployment_id": models.DEMO_REGRESSION_ID})
    trigger = DataRobotBatchPredictionJobTrigger(
        job_id=job["id"], poll_interval=0.1, end_time=time.time() - 1
    )
    events = await all_events(trigger)
    assert [event.payload["status"] for event in events] == ["timeout"]
    assert events[0].payload["job_status"] == "INITIALIZING"
    # The trigger only reports; the operator aborts in execute_complete.
    assert hook.get_job(job["id"])["status"] == "INITIALIZING"
    hook.cancel_job(job["id"])


@pytest.mark.asyncio
async def test_one_error_event_for_an_aborted_job_and_for_a_missing_one(hook: DataRobotHook) -> None:
    job = hook.submit_job({"deployment_id": models.DEMO_REGRESSION_ID})
    hook.cancel_job(job["id"])
    details = hook.get_job(job["id"])["statusDetails"]
    events = await all_events(DataRobotBatchPredictionJobTrigger(job_id=job["id"], poll_interval=0.1))
    assert len(events) == 1
    assert events[0].payload["status"] == "error"
    assert events[0].payload["job_status"] == "ABORTED"
    assert details in events[0].payload["message"]

    missing = await all_events(
        DataRobotBatchPredictionJobTrigger(
            job_id="000000000000000000000000", poll_interval=0.1, hook_params=FAST
        )
    )
    assert len(missing) == 1
    assert missing[0].payload["status"] == "error"
    assert "404" in missing[0].payload["message"]


@pytest.mark.asyncio
async def test_transient_errors_are_retried_inside_the_trigger(
    hook: DataRobotHook, faults: Any, tmp_path: Path
) -> None:
    job = completed_job(hook, tmp_path)
    faults.set(
        rate=0.6, kinds=["503", "502", "drop"], routes=r"/batchPredictions/[^/]+/$", seed=4, retryAfter=0
    )
    trigger = DataRobotBatchPredictionJobTrigger(job_id=job["id"], poll_interval=0.1, hook_params=FAST)
    events = await all_events(trigger)
    assert faults.counters()["injectedTotal"] >= 1
    assert [event.payload["status"] for event in events] == ["success"]


@pytest.mark.asyncio
async def test_on_kill_aborts_the_job_after_the_triggerer_cancels_the_run(hook: DataRobotHook) -> None:
    job = hook.submit_job({"deployment_id": models.DEMO_REGRESSION_ID})
    trigger = DataRobotBatchPredictionJobTrigger(job_id=job["id"], poll_interval=0.1, hook_params=FAST)
    # What the triggerer does when a user kills the deferred task: cancel run(), then on_kill().
    running = asyncio.ensure_future(all_events(trigger))
    await asyncio.sleep(0.3)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert hook.get_job(job["id"])["status"] == "INITIALIZING"
    await trigger.on_kill()
    assert hook.get_job(job["id"])["status"] == "ABORTED"


@pytest.mark.asyncio
async def test_on_kill_leaves_the_job_alone_without_cancel_on_kill(hook: DataRobotHook) -> None:
    job = hook.submit_job({"deployment_id": models.DEMO_REGRESSION_ID})
    trigger = DataRobotBatchPredictionJobTrigger(job_id=job["id"], cancel_on_kill=False)
    await trigger.on_kill()
    await trigger.cleanup()
    assert hook.get_job(job["id"])["status"] == "INITIALIZING"
    hook.cancel_job(job["id"])
