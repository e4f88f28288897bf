"""Real DAG runs (``dag.test()``) of the operators and the sensor against the local server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from batchpred_helpers import assert_scores_match, read_csv_rows, write_kanji_csv

from airflow_batchpred.contract import CsvSettings
from airflow_batchpred.hooks.datarobot import DataRobotHook
from airflow_batchpred.server import models

KANJI = CsvSettings(delimiter=";", quotechar="'", encoding="ms_kanji")
#: Per mode: the deployment and explanation thresholds the scoring test uses.
SCORING_CASES = {
    "sync": (models.DEMO_BINARY_ID, {"threshold_high": 0.9, "threshold_low": 0.1}),
    "deferred": (models.DEMO_MULTICLASS_ID, {}),
}


def state_of(dag_run: Any) -> str:
    return str(getattr(dag_run.state, "value", dag_run.state))


def local_file_conf(deployment_id: str, input_file: Path, output_file: Path, **extra: Any) -> dict[str, Any]:
    return {
        "deployment_id": deployment_id,
        "input_file": str(input_file),
        "output_file": str(output_file),
        **extra,
    }


def try_numbers(dag_run: Any) -> dict[str, int]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: ti.try_number for ti in dag_run.get_task_instances(session=session)}


def xcom_values(dag_run: Any) -> list[Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        return [row.value for row in rows]


@pytest.mark.parametrize("mode", ["sync", "deferred"])
def test_local_file_scoring_with_explanations_and_custom_csv(
    mode: str,
    run_dag: Any,
    xcom_of: Any,
    local_server: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment_id, thresholds = SCORING_CASES[mode]
    source = write_kanji_csv(deployment_id, tmp_path / "to_score.csv", 400, KANJI)
    target = tmp_path / "scored.csv"
    run = run_dag(
        f"batchpred_local_file_{mode}",
        local_file_conf(
            deployment_id,
            source,
            target,
            max_explanations=3,
            csv_settings=KANJI.model_dump(),
            passthrough_columns=["customer"],
            **thresholds,
        ),
    )
    assert state_of(run) == "success"
    summary = xcom_of(run, "score")
    assert summary["status"] == "COMPLETED"
    assert summary["scored_rows"] == 400
    assert summary["failed_rows"] == 0
    assert summary["output_location"] == str(target)
    assert summary["deployment_id"] == deployment_id
    job_id = xcom_of(run, "score", "job_id")
    assert summary["job_id"] == job_id
    assert (
        xcom_of(run, "score", "job_url")
        == summary["job_url"]
        == f"{local_server.endpoint}/batchPredictions/{job_id}/"
    )
    # The extra link's value, stored by the worker for the UI (before deferring, in deferred mode).
    assert xcom_of(run, "score", "_link_DataRobotBatchPredictionJobLink") == summary["job_url"]
    compared = assert_scores_match(
        local_server,
        deployment_id,
        source,
        target,
        settings=KANJI,
        passthrough=("customer",),
        max_explanations=3,
        **thresholds,
    )
    assert compared == 400
    # Written atomically: no temporary file is left beside the result.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored.csv", "to_score.csv"]
    # The API token never shows in logs or XCom.
    assert local_server.token not in capsys.readouterr().out
    assert all(local_server.token not in repr(value) for value in xcom_values(run))


@pytest.mark.parametrize("mode", ["sync", "deferred"])
def test_a_retried_task_reattaches_to_the_job_of_its_first_try(
    mode: str,
    run_dag: Any,
    xcom_of: Any,
    faults: Any,
    jobs_of: Any,
    local_server: Any,
    tmp_path: Path,
) -> None:
    source = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "in.csv", 300, seed=21)
    target = tmp_path / "out.csv"
    before = {job["id"] for job in jobs_of(models.DEMO_REGRESSION_ID)}
    # Every status request fails until the first try gives up; its on_retry_callback clears this.
    faults.set(rate=1.0, kinds=["503"], routes=r"/batchPredictions/[^/]+/$", methods=["GET"], retryAfter=0)
    run = run_dag(f"batchpred_reattach_{mode}", local_file_conf(models.DEMO_REGRESSION_ID, source, target))
    assert state_of(run) == "success"
    assert try_numbers(run) == {"score": 2}
    created = {job["id"] for job in jobs_of(models.DEMO_REGRESSION_ID)} - before
    assert created == {xcom_of(run, "score", "job_id")}
    assert xcom_of(run, "score")["scored_rows"] == 300
    assert assert_scores_match(local_server, models.DEMO_REGRESSION_ID, source, target) == 300


@pytest.mark.parametrize("mode", ["sync", "deferred"])
def test_hitting_timeout_aborts_the_job(
    mode: str, run_dag: Any, xcom_of: Any, busy_workers: Any, hook: DataRobotHook, tmp_path: Path
) -> None:
    source = models.write_demo_csv(models.DEMO_BINARY_ID, tmp_path / "in.csv", 50, seed=4)
    target = tmp_path / "out.csv"
    run = run_dag(f"batchpred_timeout_{mode}", local_file_conf(models.DEMO_BINARY_ID, source, target))
    assert state_of(run) == "failed"
    job = hook.get_job(xcom_of(run, "score", "job_id"))
    assert job["status"] == "ABORTED"
    assert not target.exists()


def test_killing_the_sync_task_aborts_the_job(
    run_dag: Any, xcom_of: Any, busy_workers: Any, hook: DataRobotHook, tmp_path: Path
) -> None:
    source = models.write_demo_csv(models.DEMO_BINARY_ID, tmp_path / "in.csv", 50, seed=6)
    target = tmp_path / "out.csv"
    run = run_dag("batchpred_kill_sync", local_file_conf(models.DEMO_BINARY_ID, source, target))
    assert state_of(run) == "failed"
    job = hook.get_job(xcom_of(run, "score", "job_id"))
    assert job["status"] == "ABORTED"
    assert not target.exists()


def test_execution_timeout_of_a_deferred_task_aborts_the_job(
    run_dag: Any, xcom_of: Any, busy_workers: Any, hook: DataRobotHook, tmp_path: Path
) -> None:
    source = models.write_demo_csv(models.DEMO_BINARY_ID, tmp_path / "in.csv", 50, seed=9)
    target = tmp_path / "out.csv"
    run = run_dag(
        "batchpred_execution_timeout_deferred", local_file_conf(models.DEMO_BINARY_ID, source, target)
    )
    assert state_of(run) == "failed"
    job = hook.get_job(xcom_of(run, "score", "job_id"))
    assert job["status"] == "ABORTED"
    assert not target.exists()


@pytest.mark.parametrize("mode", ["sync", "deferred"])
def test_an_aborted_job_fails_the_task_with_the_server_reason(
    mode: str,
    run_dag: Any,
    xcom_of: Any,
    hook: DataRobotHook,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "good.csv", 40, seed=8).read_text()
    header, *body = good.splitlines()
    source = tmp_path / "bad.csv"
    source.write_text("\n".join([header, *("abc," + line.split(",", 1)[1] for line in body)]) + "\n")
    target = tmp_path / "out.csv"
    run = run_dag(f"batchpred_local_file_{mode}", local_file_conf(models.DEMO_REGRESSION_ID, source, target))
    assert state_of(run) == "failed"
    job = hook.get_job(xcom_of(run, "score", "job_id"))
    assert job["status"] == "ABORTED"
    logged = capsys.readouterr().out
    assert "DataRobotJobFailedError" in logged
    assert job["statusDetails"] in logged
    assert not target.exists()


@pytest.mark.parametrize("mode", ["sync", "deferred"])
def test_sensor_waits_for_a_job_to_complete(
    mode: str, run_dag: Any, hook: DataRobotHook, tmp_path: Path
) -> None:
    source = models.write_demo_csv(models.DEMO_MULTICLASS_ID, tmp_path / "in.csv", 100, seed=12)
    job = hook.submit_job({"deployment_id": models.DEMO_MULTICLASS_ID})
    hook.upload_csv(job, source)
    run = run_dag(f"batchpred_sensor_{mode}", {"job_id": job["id"]})
    assert state_of(run) == "success"
    assert hook.get_job(job["id"])["status"] == "COMPLETED"


@pytest.mark.parametrize("mode", ["sync", "deferred"])
def test_sensor_fails_on_an_aborted_job_with_the_reason(
    mode: str, run_dag: Any, hook: DataRobotHook, capsys: pytest.CaptureFixture[str]
) -> None:
    job = hook.submit_job({"deployment_id": models.DEMO_MULTICLASS_ID})
    hook.cancel_job(job["id"])
    details = hook.get_job(job["id"])["statusDetails"]
    run = run_dag(f"batchpred_sensor_{mode}", {"job_id": job["id"]})
    assert state_of(run) == "failed"
    logged = capsys.readouterr().out
    assert f"Batch prediction job {job['id']} ended ABORTED: {details}" in logged


def test_the_example_dag_scores_a_csv(run_dag: Any, xcom_of: Any, local_server: Any, tmp_path: Path) -> None:
    source = models.write_demo_csv(models.DEMO_BINARY_ID, tmp_path / "to_predict.csv", 150, seed=7)
    target = tmp_path / "predicted.csv"
    run = run_dag(
        "example_batchpred_local_file",
        {"input_file": str(source), "output_file": str(target), "deployment_id": models.DEMO_BINARY_ID},
    )
    assert state_of(run) == "success"
    assert xcom_of(run, "score_local_file")["scored_rows"] == 150
    passthrough = tuple(read_csv_rows(source)[0])
    compared = assert_scores_match(
        local_server, models.DEMO_BINARY_ID, source, target, passthrough=passthrough, max_explanations=3
    )
    assert compared == 150
