"""Cross combinations through the base operator (S3 → local file, local file → GCS), the S3
operator's other modes, and a scan proving no connection secret leaks anywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from objstore_helpers import (
    AWS_CONN_ID,
    GCP_CONN_ID,
    WASB_CONN_ID,
    Stores,
    assert_matches_model,
    demo_csv,
    scan_for_secrets,
)

from airflow_batchpred.hooks.cloud_credentials import credential_for_connection
from airflow_batchpred.hooks.datarobot import DataRobotHook
from airflow_batchpred.server import models

from support import LocalServer

BASE_DAG = "batchpred_object_storage_base_operator"


@pytest.fixture
def hook() -> Iterator[DataRobotHook]:
    hook = DataRobotHook(retry_limit=2, retry_delay=0.05)
    yield hook
    hook.close()


def state_of(dag_run: Any) -> str:
    return str(getattr(dag_run.state, "value", dag_run.state))


def base_params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "intake_settings": None,
        "output_settings": None,
        "input_file": None,
        "output_file": None,
        "max_explanations": None,
        "passthrough_columns_set": None,
    }
    return params | overrides


def test_base_operator_scores_s3_into_a_local_file(
    run_dag: Any, xcom_of: Any, stores: Stores, object_server: LocalServer, unique_key: Any, tmp_path: Path
) -> None:
    source_csv = demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "in.csv", 700, seed=11)
    source = stores.put("s3", unique_key("in.csv"), source_csv)
    target = tmp_path / "scored.csv"

    run = run_dag(
        BASE_DAG,
        base_params(
            deployment_id=models.DEMO_REGRESSION_ID,
            intake_settings={"type": "s3", "url": source, "aws_conn_id": AWS_CONN_ID},
            output_settings={"type": "localFile"},
            output_file=str(target),
            passthrough_columns_set="all",
        ),
    )

    assert state_of(run) == "success"
    assert xcom_of(run, "score")["output_location"] == str(target)
    compared = assert_matches_model(
        object_server,
        models.DEMO_REGRESSION_ID,
        source_csv,
        target.read_bytes(),
        passthrough=tuple(source_csv.split(b"\n", 1)[0].decode().split(",")),
    )
    assert compared == 700


def test_base_operator_scores_a_local_file_into_gcs_with_the_credential_object_form(
    run_dag: Any,
    hook: DataRobotHook,
    stores: Stores,
    object_server: LocalServer,
    unique_key: Any,
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.csv"
    source_csv = demo_csv(models.DEMO_MULTICLASS_ID, source, 500, seed=12)
    target_key = unique_key("scored.csv")
    credential_id = credential_for_connection(hook, "google_cloud_platform", GCP_CONN_ID)

    run = run_dag(
        BASE_DAG,
        base_params(
            deployment_id=models.DEMO_MULTICLASS_ID,
            intake_settings={"type": "localFile"},
            input_file=str(source),
            output_settings={
                "type": "gcp",
                "url": stores.url("gcp", target_key),
                "credential": {"credentialId": credential_id},
            },
            max_explanations=2,
        ),
    )

    assert state_of(run) == "success"
    output = stores.get("gcp", target_key)
    assert output is not None
    compared = assert_matches_model(
        object_server, models.DEMO_MULTICLASS_ID, source_csv, output, max_explanations=2
    )
    assert compared == 500


def test_s3_operator_deferred_with_a_connection(
    run_dag: Any, stores: Stores, object_server: LocalServer, unique_key: Any, tmp_path: Path
) -> None:
    source_csv = demo_csv(models.DEMO_BINARY_ID, tmp_path / "in.csv", 400, seed=13)
    target_key = unique_key("out.csv")

    run = run_dag(
        "batchpred_object_storage_s3_deferred",
        {
            "deployment_id": models.DEMO_BINARY_ID,
            "source_url": stores.put("s3", unique_key("in.csv"), source_csv),
            "destination_url": stores.url("s3", target_key),
            "aws_conn_id": AWS_CONN_ID,
            "credential_id": None,
            "endpoint_url": None,
            "output_file": None,
        },
    )

    assert state_of(run) == "success"
    output = stores.get("s3", target_key)
    assert output is not None
    assert assert_matches_model(object_server, models.DEMO_BINARY_ID, source_csv, output) == 400


def test_s3_operator_with_an_explicit_credential_into_a_local_file(
    run_dag: Any,
    hook: DataRobotHook,
    stores: Stores,
    object_server: LocalServer,
    unique_key: Any,
    tmp_path: Path,
) -> None:
    source_csv = demo_csv(models.DEMO_BINARY_ID, tmp_path / "in.csv", 300, seed=14)
    target = tmp_path / "scored.csv"

    run = run_dag(
        "batchpred_object_storage_s3_sync",
        {
            "deployment_id": models.DEMO_BINARY_ID,
            "source_url": stores.put("s3", unique_key("in.csv"), source_csv),
            "destination_url": None,
            "aws_conn_id": None,
            "credential_id": credential_for_connection(hook, "aws", AWS_CONN_ID),
            "endpoint_url": stores.s3.endpoint_url,
            "output_file": str(target),
        },
    )

    assert state_of(run) == "success"
    assert assert_matches_model(object_server, models.DEMO_BINARY_ID, source_csv, target.read_bytes()) == 300


# ---------------------------------------------------------------------------------------------
# No secret anywhere
# ---------------------------------------------------------------------------------------------


def _run_texts(dag_run: Any) -> dict[str, str]:
    """XComs and rendered template fields of every task instance of ``dag_run``, as JSON text."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    texts: dict[str, str] = {}
    with create_session() as session:
        for row in session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id):
            texts[f"xcom {row.task_id}/{row.key}"] = json.dumps(row.value, default=str)
        rendered = session.query(RenderedTaskInstanceFields).filter_by(
            dag_id=dag_run.dag_id, run_id=dag_run.run_id
        )
        for row in rendered:
            texts[f"rendered fields {row.task_id}"] = json.dumps(row.rendered_fields, default=str)
    assert any(key.startswith("rendered fields") for key in texts), "no rendered fields were stored"
    return texts


@pytest.mark.parametrize(
    ("kind", "dag_id", "params"),
    [
        ("s3", "example_batchpred_s3", {"aws_conn_id": AWS_CONN_ID}),
        ("azure", "example_batchpred_azure", {"wasb_conn_id": WASB_CONN_ID, "max_explanations": 0}),
        ("gcp", "example_batchpred_gcs", {"gcp_conn_id": GCP_CONN_ID, "max_explanations": 0}),
    ],
)
def test_no_connection_secret_in_logs_xcom_rendered_fields_or_job_json(
    kind: str,
    dag_id: str,
    params: dict[str, Any],
    run_dag: Any,
    xcom_of: Any,
    stores: Stores,
    object_server: LocalServer,
    connection_secrets: list[str],
    unique_key: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    source_csv = demo_csv(models.DEMO_BINARY_ID, tmp_path / "in.csv", 100)
    run = run_dag(
        dag_id,
        {
            "deployment_id": models.DEMO_BINARY_ID,
            "source_url": stores.put(kind, unique_key("in.csv"), source_csv),
            "destination_url": stores.url(kind, unique_key("out.csv")),
            "format": "csv",
            **params,
        },
    )
    assert state_of(run) == "success"
    captured = capsys.readouterr()
    job_id = xcom_of(run, dag_id.replace("example_batchpred_", "score_"))["job_id"]
    job_json = object_server.get(f"batchPredictions/{job_id}/").text
    credential_id = json.loads(job_json)["jobSpec"]["intakeSettings"]["credentialId"]
    texts = {
        "stdout": captured.out,
        "stderr": captured.err,
        "log records": caplog.text,
        "job json": job_json,
        "job list": object_server.get("batchPredictions/", limit=1000).text,
        "credential json": object_server.get(f"credentials/{credential_id}/").text,
        "credential list": object_server.get("credentials/", limit=1000).text,
        "server log": object_server.log_file.read_text(errors="replace"),
        **_run_texts(run),
    }
    assert "Job" in texts["stdout"] + texts["log records"], "the task log was not captured"

    assert scan_for_secrets(texts, connection_secrets) == []
