"""``dag.test()`` runs of the example DAGs: S3 → S3, Azure → Azure, GCS → GCS through the local
server and the stand-ins, with and without explanations, CSV and parquet; outputs are compared
row by row with the deployment's model scored in process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from objstore_helpers import (
    AWS_CONN_ID,
    GCP_CONN_ID,
    WASB_CONN_ID,
    Stores,
    assert_matches_model,
    csv_to_parquet,
    demo_csv,
)

from airflow_batchpred.hooks.credentials import managed_name
from airflow_batchpred.server import models

from support import LocalServer

#: Per store: the example DAG, its task, and the params naming the connection.
EXAMPLES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "s3": ("example_batchpred_s3", "score_s3", {"aws_conn_id": AWS_CONN_ID}),
    "azure": (
        "example_batchpred_azure",
        "score_azure",
        {"wasb_conn_id": WASB_CONN_ID, "max_explanations": 0},
    ),
    "gcp": ("example_batchpred_gcs", "score_gcs", {"gcp_conn_id": GCP_CONN_ID, "max_explanations": 0}),
}
CONN_TYPES = {
    "s3": ("aws", AWS_CONN_ID),
    "azure": ("wasb", WASB_CONN_ID),
    "gcp": ("google_cloud_platform", GCP_CONN_ID),
}


def state_of(dag_run: Any) -> str:
    return str(getattr(dag_run.state, "value", dag_run.state))


def credentials_named(server: LocalServer, name: str) -> list[dict[str, Any]]:
    return [c for c in server.get("credentials/", limit=1000).json()["data"] if c["name"] == name]


@pytest.mark.parametrize("kind", ["s3", "azure", "gcp"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_example_dag_scores_cloud_to_cloud(
    kind: str,
    fmt: str,
    run_dag: Any,
    xcom_of: Any,
    stores: Stores,
    object_server: LocalServer,
    unique_key: Any,
    tmp_path: Path,
) -> None:
    deployment_id = models.DEMO_BINARY_ID if kind != "azure" else models.DEMO_REGRESSION_ID
    source_csv = demo_csv(deployment_id, tmp_path / "in.csv", 1_200, seed=4)
    source_bytes = source_csv if fmt == "csv" else csv_to_parquet(source_csv)
    source_url = stores.put(kind, unique_key(f"in.{fmt}"), source_bytes)
    target_key = unique_key(f"out.{fmt}")
    dag_id, task_id, conn_params = EXAMPLES[kind]

    run = run_dag(
        dag_id,
        {
            "deployment_id": deployment_id,
            "source_url": source_url,
            "destination_url": stores.url(kind, target_key),
            "format": fmt,
            **conn_params,
        },
    )

    assert state_of(run) == "success"
    summary = xcom_of(run, task_id)
    assert summary["status"] == "COMPLETED"
    assert summary["scored_rows"] == 1_200
    assert summary["output_location"] == stores.url(kind, target_key)
    output = stores.get(kind, target_key)
    assert output is not None
    assert assert_matches_model(object_server, deployment_id, source_csv, output, fmt=fmt) == 1_200
    conn_type, conn_id = CONN_TYPES[kind]
    mapped = credentials_named(object_server, managed_name(conn_type, conn_id))
    assert len(mapped) == 1
    job = object_server.get(f"batchPredictions/{summary['job_id']}/").json()
    assert job["jobSpec"]["intakeSettings"]["credentialId"] == mapped[0]["credentialId"]
    assert job["jobSpec"]["outputSettings"]["credentialId"] == mapped[0]["credentialId"]


def test_seed_s3_example_with_explanations(
    run_dag: Any, xcom_of: Any, stores: Stores, object_server: LocalServer, unique_key: Any, tmp_path: Path
) -> None:
    deployment_id = models.DEMO_BINARY_ID
    source_csv = demo_csv(deployment_id, tmp_path / "in.csv", 900, seed=7)
    source_url = stores.put("s3", unique_key("to_predict.csv"), source_csv)
    target_key = unique_key("predicted.csv")

    run = run_dag(
        "example_batchpred_s3_explanations",
        {
            "deployment_id": deployment_id,
            "source_url": source_url,
            "destination_url": stores.url("s3", target_key),
            "aws_conn_id": AWS_CONN_ID,
        },
    )

    assert state_of(run) == "success"
    assert xcom_of(run, "score_s3_with_explanations")["scored_rows"] == 900
    output = stores.get("s3", target_key)
    assert output is not None
    assert b"EXPLANATION_10_FEATURE_NAME" in output.split(b"\n", 1)[0]
    compared = assert_matches_model(
        object_server,
        deployment_id,
        source_csv,
        output,
        max_explanations=10,
        threshold_high=0.5,
        threshold_low=0.15,
    )
    assert compared == 900


@pytest.mark.parametrize("kind", ["azure", "gcp"])
def test_azure_and_gcs_examples_with_explanations(
    kind: str,
    run_dag: Any,
    stores: Stores,
    object_server: LocalServer,
    unique_key: Any,
    tmp_path: Path,
) -> None:
    deployment_id = models.DEMO_MULTICLASS_ID
    source_csv = demo_csv(deployment_id, tmp_path / "in.csv", 300, seed=2)
    source_url = stores.put(kind, unique_key("in.csv"), source_csv)
    target_key = unique_key("out.csv")
    dag_id, _, conn_params = EXAMPLES[kind]

    run = run_dag(
        dag_id,
        {
            "deployment_id": deployment_id,
            "source_url": source_url,
            "destination_url": stores.url(kind, target_key),
            "format": "csv",  # params of an earlier run in this process linger in the cached DAG
            **conn_params,
            "max_explanations": 3,
        },
    )

    assert state_of(run) == "success"
    output = stores.get(kind, target_key)
    assert output is not None
    assert assert_matches_model(object_server, deployment_id, source_csv, output, max_explanations=3) == 300
