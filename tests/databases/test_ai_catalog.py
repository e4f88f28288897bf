"""AI Catalog dataset → local file (the example DAG) and dataset → PostgreSQL, against the local server."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
import requests
from database_helpers import DEPLOYMENT_ID, PREDICTION, Postgres, demo_rows, expected_predictions, state_of

from airflow_batchpred.hooks.data_stores import map_postgres_connection
from airflow_batchpred.hooks.datarobot import DataRobotHook


def upload_dataset(
    local_server: Any, table: pa.Table, name: str, dataset_id: str | None = None
) -> dict[str, Any]:
    """``POST datasets/fromFile/`` (or a new version of ``dataset_id``); returns the dataset JSON."""
    sink = io.BytesIO()
    pa_csv.write_csv(table, sink)
    route = f"datasets/{dataset_id}/versions/fromFile/" if dataset_id else "datasets/fromFile/"
    response = requests.post(
        f"{local_server.endpoint}/{route}",
        headers=local_server.headers,
        files={"file": (f"{name}.csv", sink.getvalue(), "text/csv")},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    created = response.json()
    dataset = requests.get(
        f"{local_server.endpoint}/datasets/{created['catalogId']}/", headers=local_server.headers, timeout=30
    ).json()
    assert dataset["versionId"] == created["catalogVersionId"]
    return dict(dataset)


@pytest.fixture
def hook(local_server: Any) -> Iterator[DataRobotHook]:
    hook = DataRobotHook(retry_limit=2, retry_delay=0.05, max_retry_delay=0.5)
    yield hook
    hook.close()


def test_catalog_dataset_to_local_file_like_the_seed(
    run_dag: Any, local_server: Any, scorer: Any, tmp_path: Path, xcom_of: Any
) -> None:
    table = demo_rows(tmp_path, 250, seed=21)
    dataset = upload_dataset(local_server, table, "to_predict")
    output = tmp_path / "catalog-scored.csv"

    run = run_dag(
        "example_batchpred_ai_catalog",
        {
            "deployment_id": DEPLOYMENT_ID,
            "dataset_id": dataset["datasetId"],
            "dataset_version_id": None,
            "output_file": str(output),
        },
    )

    assert state_of(run) == "success"
    with output.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = expected_predictions(scorer, table)
    assert len(rows) == 250
    # No passthrough columns (as in the seed): rows come back in input order.
    for identifier, row in zip(table["id"].to_pylist(), rows, strict=True):
        assert float(row[PREDICTION]) == pytest.approx(expected[identifier], rel=1e-9)
    summary = xcom_of(run, "score_catalog_dataset")
    assert summary["scored_rows"] == 250
    job = requests.get(
        f"{local_server.endpoint}/batchPredictions/{summary['job_id']}/",
        headers=local_server.headers,
        timeout=30,
    ).json()
    # The operator pinned the latest version, as the official client does.
    assert job["jobSpec"]["intakeSettings"]["datasetVersionId"] == dataset["versionId"]
    assert job["intakeDatasetDisplayName"]


def test_catalog_dataset_version_to_postgres(
    run_dag: Any,
    local_server: Any,
    hook: DataRobotHook,
    postgres_conn_env: str,
    postgres: Postgres,
    scorer: Any,
    tmp_path: Path,
) -> None:
    first = demo_rows(tmp_path, 40, seed=31)
    dataset = upload_dataset(local_server, first, "versions")
    upload_dataset(
        local_server, demo_rows(tmp_path, 60, seed=32), "versions", dataset_id=dataset["datasetId"]
    )
    database = map_postgres_connection(hook, postgres_conn_env)
    postgres.execute("DROP TABLE IF EXISTS public.catalog_scores")

    run = run_dag(
        "batchpred_dataset_to_postgres",
        {
            "deployment_id": DEPLOYMENT_ID,
            "dataset_id": dataset["datasetId"],
            "dataset_version_id": dataset["versionId"],
            "output_settings": {
                "type": "jdbc",
                "data_store_id": database.data_store_id,
                "credential_id": database.credential_id,
                "table": "catalog_scores",
                "statement_type": "create_table",
            },
        },
    )

    assert state_of(run) == "success"
    rows = postgres.rows("catalog_scores")
    expected = expected_predictions(scorer, first)
    # Version 1 (40 rows) was scored, not the 60-row latest version.
    assert sorted(int(row["id"]) for row in rows) == sorted(expected)
    for row in rows:
        assert row[PREDICTION] == pytest.approx(expected[int(row["id"])], rel=1e-9)


def test_unknown_dataset_fails_the_task_before_any_job(
    run_dag: Any, local_server: Any, tmp_path: Path, task_states: Any
) -> None:
    before = len(local_server.jobs())
    run = run_dag(
        "example_batchpred_ai_catalog",
        {
            "deployment_id": DEPLOYMENT_ID,
            "dataset_id": "0123456789abcdef01234567",
            "dataset_version_id": None,
            "output_file": str(tmp_path / "never.csv"),
        },
    )

    assert state_of(run) == "failed"
    assert len(local_server.jobs()) == before
    assert not (tmp_path / "never.csv").exists()
