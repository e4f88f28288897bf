"""The base operator's decisions: re-attach, FAILED jobs, events, link, template fields."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import pytest

from airflow_batchpred.exceptions import DataRobotError, DataRobotJobFailedError, DataRobotTimeoutError
from airflow_batchpred.hooks.datarobot import DataRobotHook
from airflow_batchpred.links import DataRobotBatchPredictionJobLink
from airflow_batchpred.operators.batch_prediction import JOB_OPTION_FIELDS, DataRobotBatchPredictionOperator
from airflow_batchpred.operators.local_file import DataRobotLocalFileBatchPredictionOperator
from airflow_batchpred.server import models
from airflow_batchpred.triggers.batch_prediction import DataRobotBatchPredictionJobTrigger


class InMemoryTaskStateStore:
    """Stand-in for ``context["task_state_store"]``, which needs a running task's supervisor."""

    def __init__(self, **values: Any) -> None:
        self.values = dict(values)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


class XComRecorder:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def local_operator(tmp_path: Path, deployment_id: str = models.DEMO_REGRESSION_ID, **kwargs: Any) -> Any:
    source = tmp_path / "in.csv"
    if not source.exists():
        models.write_demo_csv(deployment_id, source, 80, seed=17)
    return DataRobotLocalFileBatchPredictionOperator(
        task_id="score",
        deployment_id=deployment_id,
        input_file=str(source),
        output_file=str(tmp_path / "out.csv"),
        poll_interval=0.1,
        hook_params={"retry_limit": 3, "retry_delay": 0.05},
        **kwargs,
    )


def context_with(store: InMemoryTaskStateStore | None) -> dict[str, Any]:
    context: dict[str, Any] = {"ti": XComRecorder()}
    if store is not None:
        context["task_state_store"] = store
    return context


KEY = DataRobotBatchPredictionOperator.state_store_key


def test_every_job_option_is_a_templated_argument() -> None:
    fields = DataRobotBatchPredictionOperator.template_fields
    assert set(JOB_OPTION_FIELDS) <= set(fields)
    assert {"deployment_id", "intake_settings", "output_settings", "input_file", "output_file"} <= set(fields)
    renderers = DataRobotBatchPredictionOperator.template_fields_renderers
    assert renderers["csv_settings"] == renderers["intake_settings"] == "json"


def test_no_io_in_init_and_a_warning_for_deferrable_without_waiting() -> None:
    with pytest.warns(UserWarning, match="deferrable=True has no effect"):
        operator = DataRobotBatchPredictionOperator(
            task_id="t",
            deployment_id="d",
            datarobot_conn_id="a_connection_that_does_not_exist",
            deferrable=True,
            wait_for_completion=False,
        )
    assert "hook" not in operator.__dict__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DataRobotBatchPredictionOperator(task_id="u", deployment_id="d", deferrable=True)


def test_a_completed_job_of_an_earlier_try_is_reused_without_resubmitting(
    hook: DataRobotHook, jobs_of: Any, tmp_path: Path
) -> None:
    operator = local_operator(tmp_path)
    job = hook.submit_job(operator.job_settings())
    hook.upload_csv(job, operator.input_file)
    hook.wait_for_job(job["id"], poll_interval=0.1)
    before = len(jobs_of(models.DEMO_REGRESSION_ID))
    store = InMemoryTaskStateStore(**{KEY: {"job_id": job["id"], "upload_complete": True}})
    summary = operator.execute(context_with(store))
    assert summary["job_id"] == job["id"]
    assert summary["status"] == "COMPLETED"
    assert len(jobs_of(models.DEMO_REGRESSION_ID)) == before
    assert Path(operator.output_file).exists()
    assert KEY not in store.values  # a later clear-and-rerun scores afresh


def test_a_gone_or_failed_job_of_an_earlier_try_is_resubmitted(hook: DataRobotHook, tmp_path: Path) -> None:
    operator = local_operator(tmp_path)
    aborted = hook.submit_job(operator.job_settings())
    hook.cancel_job(aborted["id"])
    for stale in (aborted["id"], "000000000000000000000000"):
        store = InMemoryTaskStateStore(**{KEY: {"job_id": stale, "upload_complete": True}})
        summary = operator.execute(context_with(store))
        assert summary["job_id"] != stale
        assert summary["status"] == "COMPLETED"


def test_a_local_file_job_whose_upload_died_is_aborted_and_resubmitted(
    hook: DataRobotHook, tmp_path: Path
) -> None:
    operator = local_operator(tmp_path)
    orphan = hook.submit_job(operator.job_settings())  # waits INITIALIZING for an upload that never comes
    store = InMemoryTaskStateStore(**{KEY: {"job_id": orphan["id"], "upload_complete": False}})
    context = context_with(store)
    summary = operator.execute(context)
    assert summary["job_id"] != orphan["id"]
    assert hook.get_job(orphan["id"])["status"] == "ABORTED"
    assert context["ti"].pushed["job_id"] == summary["job_id"]


def test_older_airflow_without_a_task_state_store_submits_a_new_job(
    hook: DataRobotHook, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = local_operator(tmp_path).execute(context_with(None))
    assert summary["status"] == "COMPLETED"
    assert "No task_state_store (Airflow < 3.3)" in capsys.readouterr().out


def test_the_job_id_is_stored_right_after_submission(hook: DataRobotHook, tmp_path: Path) -> None:
    operator = local_operator(tmp_path, wait_for_completion=True, deferrable=True)
    store = InMemoryTaskStateStore()
    context = context_with(store)
    from airflow.sdk.exceptions import TaskDeferred

    try:
        result = operator.execute(context)
    except TaskDeferred as deferred:
        trigger = deferred.trigger
        assert isinstance(trigger, DataRobotBatchPredictionJobTrigger)
        assert store.values[KEY] == {"job_id": trigger.job_id, "upload_complete": True}
        assert context["ti"].pushed == {
            "job_id": trigger.job_id,
            "job_url": hook.get_job(trigger.job_id)["links"]["self"],
        }
        events = asyncio.run(_events(trigger))
        result = operator.execute_complete(context, events[0].payload)
    assert result["status"] == "COMPLETED"
    assert Path(operator.output_file).exists()


async def _events(trigger: DataRobotBatchPredictionJobTrigger) -> list[Any]:
    return [event async for event in trigger.run()]


def test_failed_jobs_fail_the_sensor_and_the_operator_with_the_server_reason(
    local_server: Any, hook: DataRobotHook, run_dag: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The local server marks jobs it was running when it stopped as FAILED when it starts again.
    job = hook.submit_job({"deployment_id": models.DEMO_REGRESSION_ID})
    local_server.restart()
    failed = hook.get_job(job["id"])
    assert failed["status"] == "FAILED"
    reason = failed["statusDetails"]
    assert reason

    for mode in ("sync", "deferred"):
        run = run_dag(f"batchpred_sensor_{mode}", {"job_id": job["id"]})
        assert str(getattr(run.state, "value", run.state)) == "failed"
    logged = capsys.readouterr().out
    assert logged.count(f"Batch prediction job {job['id']} ended FAILED: {reason}") >= 2

    events = asyncio.run(_events(DataRobotBatchPredictionJobTrigger(job_id=job["id"], poll_interval=0.1)))
    assert [event.payload["job_status"] for event in events] == ["FAILED"]
    store = InMemoryTaskStateStore(**{KEY: {"job_id": job["id"], "upload_complete": True}})
    with pytest.raises(DataRobotJobFailedError) as error:
        local_operator(tmp_path).execute_complete(context_with(store), events[0].payload)
    assert error.value.status == "FAILED"
    assert reason in str(error.value)
    assert KEY not in store.values
    assert not (tmp_path / "out.csv").exists()


def test_a_timeout_event_aborts_the_job(hook: DataRobotHook, tmp_path: Path) -> None:
    job = hook.submit_job({"deployment_id": models.DEMO_REGRESSION_ID})
    event = {"status": "timeout", "job_id": job["id"], "job_status": "INITIALIZING", "message": "late"}
    with pytest.raises(DataRobotTimeoutError):
        local_operator(tmp_path, timeout=5).execute_complete(context_with(None), event)
    assert hook.get_job(job["id"])["status"] == "ABORTED"


@pytest.mark.parametrize("event", [None, {}, {"status": "weird", "job_id": "x"}, {"status": "success"}])
def test_unexpected_events_are_rejected(event: Any, tmp_path: Path) -> None:
    with pytest.raises(DataRobotError, match="Unexpected event"):
        local_operator(tmp_path).execute_complete({}, event)


def test_on_kill_aborts_the_running_job(hook: DataRobotHook, tmp_path: Path) -> None:
    operator = local_operator(tmp_path)
    job = hook.submit_job(operator.job_settings())
    operator.job_id = job["id"]
    operator.on_kill()
    assert hook.get_job(job["id"])["status"] == "ABORTED"
    operator.on_kill()  # an ended job is no error


def test_the_link_never_raises() -> None:
    from airflow.models.taskinstancekey import TaskInstanceKey

    link = DataRobotBatchPredictionJobLink()
    key = TaskInstanceKey(dag_id="no_such_dag", task_id="t", run_id="r", try_number=1)
    assert link.get_link(DataRobotBatchPredictionOperator(task_id="t", deployment_id="d"), ti_key=key) == ""


@pytest.mark.parametrize("deferrable", [False, True])
def test_multipart_upload_through_the_operator(
    deferrable: bool, hook: DataRobotHook, local_server: Any, tmp_path: Path
) -> None:
    from airflow.sdk.exceptions import TaskDeferred
    from batchpred_helpers import assert_scores_match

    source = models.write_demo_csv(models.DEMO_MULTICLASS_ID, tmp_path / "in.csv", 3000, seed=23)
    operator = local_operator(
        tmp_path, models.DEMO_MULTICLASS_ID, multipart_upload=True, part_size=16 * 1024, deferrable=deferrable
    )
    context = context_with(InMemoryTaskStateStore())
    try:
        summary = operator.execute(context)
    except TaskDeferred as deferred:
        events = asyncio.run(_events(deferred.trigger))
        summary = operator.execute_complete(context, events[0].payload)
    job = hook.get_job(summary["job_id"])
    assert job["jobSpec"]["intakeSettings"]["multipart"] is True
    assert summary["scored_rows"] == 3000
    assert assert_scores_match(local_server, models.DEMO_MULTICLASS_ID, source, tmp_path / "out.csv") == 3000
