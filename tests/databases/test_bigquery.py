"""BigQuery (``bqemulator``) → BigQuery through the example DAG, and the ``google_cloud_platform`` mapping.

The server must reach the emulator, so this module starts its own local server with
``BIGQUERY_EMULATOR_HOST`` and ``GOOGLE_CLOUD_PROJECT`` and points ``datarobot_default`` at it while
its tests run.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from database_helpers import DEPLOYMENT_ID, PREDICTION, demo_rows, expected_predictions, state_of

from airflow_batchpred.contract import JobStatus
from airflow_batchpred.hooks.data_stores import map_gcp_connection
from airflow_batchpred.hooks.datarobot import DataRobotHook
from airflow_batchpred.server import models

from support import LocalServer

DAG_ID = "example_batchpred_bigquery"
DATASET = "my_dataset"
ROWS = 150


@pytest.fixture(scope="module")
def bigquery_datarobot(
    bigquery_server: Any, tmp_path_factory: pytest.TempPathFactory, local_server: Any
) -> Iterator[LocalServer]:
    """A local server that reaches the emulator; ``datarobot_default`` points at it meanwhile."""
    server = LocalServer(
        data_dir=tmp_path_factory.mktemp("bq-server") / "data",
        token=secrets.token_hex(16),
        env={**bigquery_server.environ, "GOOGLE_CLOUD_PROJECT": bigquery_server.project},
    )
    server.start()
    key = "AIRFLOW_CONN_DATAROBOT_DEFAULT"
    previous = os.environ.get(key)
    os.environ[key] = json.dumps(
        {"conn_type": "datarobot", "password": server.token, "extra": {"endpoint": server.endpoint}}
    )
    os.environ["AIRFLOW_CONN_BATCHPRED_GCP"] = json.dumps(bigquery_server.airflow_connection())
    try:
        yield server
    finally:
        server.stop()
        os.environ.pop("AIRFLOW_CONN_BATCHPRED_GCP", None)
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


@pytest.fixture(scope="module")
def scoring(
    bigquery_server: Any, bigquery_datarobot: LocalServer, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    from google.cloud import bigquery

    client = bigquery_server.client()
    client.create_dataset(DATASET, exists_ok=True)
    table = demo_rows(tmp_path_factory.mktemp("bq"), ROWS, seed=17)
    schema = [bigquery.SchemaField("id", "INT64")] + [
        bigquery.SchemaField(name, "FLOAT64") for name in table.column_names[1:]
    ]
    table_id = f"{bigquery_server.project}.{DATASET}.intake_table"
    client.delete_table(table_id, not_found_ok=True)
    client.create_table(bigquery.Table(table_id, schema=schema))
    assert client.insert_rows_json(table_id, table.to_pylist()) == []
    scorer = models.ModelRegistry(Path(bigquery_datarobot.data_dir) / "models").scorer(DEPLOYMENT_ID)
    return table, expected_predictions(scorer, table)


def table_rows(bigquery_server: Any, table: str) -> list[dict[str, Any]]:
    client = bigquery_server.client()
    query = f"SELECT * FROM `{bigquery_server.project}.{DATASET}.{table}`"  # noqa: S608 - test constants
    return [dict(row) for row in client.query(query).result()]


def conf(**overrides: Any) -> dict[str, Any]:
    return {
        "deployment_id": DEPLOYMENT_ID,
        "gcp_conn_id": "batchpred_gcp",
        "dataset": DATASET,
        "intake_table": "intake_table",
        "output_table": "output_table",
        "bucket": "my-bucket",
        "passthrough_columns": ["id"],
        **overrides,
    }


def test_bigquery_to_bigquery_like_the_seed(
    run_dag: Any, bigquery_server: Any, bigquery_datarobot: LocalServer, scoring: Any
) -> None:
    _, expected = scoring
    bigquery_server.client().delete_table(
        f"{bigquery_server.project}.{DATASET}.output_table", not_found_ok=True
    )

    run = run_dag(DAG_ID, conf())

    assert state_of(run) == "success"
    rows = table_rows(bigquery_server, "output_table")
    assert sorted(int(row["id"]) for row in rows) == sorted(expected)
    for row in rows:
        assert row[PREDICTION] == pytest.approx(expected[int(row["id"])], rel=1e-9)
        assert row["prediction_status"] == "OK"
    assert set(rows[0]) == {"id", PREDICTION, "prediction_status"}


def test_existing_table_columns_matched_by_name_and_appended(
    run_dag: Any, bigquery_server: Any, bigquery_datarobot: LocalServer, scoring: Any
) -> None:
    from google.cloud import bigquery

    _, expected = scoring
    client = bigquery_server.client()
    table_id = f"{bigquery_server.project}.{DATASET}.existing_output"
    client.delete_table(table_id, not_found_ok=True)
    # Another column order, and a column the job does not write.
    schema = [
        bigquery.SchemaField("prediction_status", "STRING"),
        bigquery.SchemaField("note", "STRING"),
        bigquery.SchemaField(PREDICTION, "FLOAT64"),
        bigquery.SchemaField("id", "INT64"),
    ]
    client.create_table(bigquery.Table(table_id, schema=schema))
    assert client.insert_rows_json(table_id, [{"id": -1, "note": "kept"}]) == []

    run = run_dag(DAG_ID, conf(output_table="existing_output"))

    assert state_of(run) == "success"
    rows = table_rows(bigquery_server, "existing_output")
    assert len(rows) == ROWS + 1
    scored = [row for row in rows if row["id"] != -1]
    for row in scored:
        assert row[PREDICTION] == pytest.approx(expected[row["id"]], rel=1e-9)
        assert row["note"] is None


def test_failed_load_leaves_the_table_unchanged(
    bigquery_server: Any, bigquery_datarobot: LocalServer, scoring: Any
) -> None:
    from google.cloud import bigquery

    client = bigquery_server.client()
    table_id = f"{bigquery_server.project}.{DATASET}.typed_output"
    client.delete_table(table_id, not_found_ok=True)
    schema = [
        bigquery.SchemaField("id", "INT64"),
        bigquery.SchemaField(PREDICTION, "FLOAT64"),
        bigquery.SchemaField("prediction_status", "INT64"),  # "OK" cannot load here
    ]
    client.create_table(bigquery.Table(table_id, schema=schema))
    assert client.insert_rows_json(table_id, [{"id": -1}]) == []
    hook = DataRobotHook(retry_limit=2, retry_delay=0.05, max_retry_delay=0.5)
    try:
        side = {"type": "bigquery", "dataset": DATASET, "bucket": "my-bucket"}
        job = hook.submit_job(
            {
                "deployment_id": DEPLOYMENT_ID,
                "intake_settings": {**side, "table": "intake_table"},
                "output_settings": {**side, "table": "typed_output"},
                "include_prediction_status": True,
                "passthrough_columns": ["id"],
            }
        )
        final = hook.wait_for_job(str(job["id"]), poll_interval=0.1, timeout=120)
        missing = hook.submit_job(
            {
                "deployment_id": DEPLOYMENT_ID,
                "intake_settings": {**side, "table": "no_such_table"},
                "output_settings": {**side, "table": "typed_output"},
            }
        )
        missing_final = hook.wait_for_job(str(missing["id"]), poll_interval=0.1, timeout=120)
    finally:
        hook.close()

    assert final["status"] == JobStatus.ABORTED.value
    assert f"loading the scores into BigQuery table {table_id} failed" in final["statusDetails"]
    assert [row["id"] for row in table_rows(bigquery_server, "typed_output")] == [-1]
    assert (
        "BigQuery table batchpred-test.my_dataset.no_such_table does not exist"
        in missing_final["statusDetails"]
    )


def _service_account_key(project: str) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": f"scorer@{project}.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def test_gcp_mapping_idempotent_rotated_in_place_and_anonymous(
    local_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = DataRobotHook(retry_limit=2, retry_delay=0.05, max_retry_delay=0.5)
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_GCP_ANON",
            json.dumps({"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True}}),
        )
        assert map_gcp_connection(hook, "gcp_anon") is None

        first_key = _service_account_key("acme-scoring")
        connection = {"conn_type": "google_cloud_platform", "extra": {"keyfile_dict": json.dumps(first_key)}}
        monkeypatch.setenv("AIRFLOW_CONN_GCP_KEYED", json.dumps(connection))
        first = map_gcp_connection(hook, "gcp_keyed")
        assert first is not None
        assert map_gcp_connection(hook, "gcp_keyed") == first

        rotated = {
            "conn_type": "google_cloud_platform",
            "extra": {"keyfile_dict": json.dumps(_service_account_key("acme-scoring"))},
        }
        monkeypatch.setenv("AIRFLOW_CONN_GCP_KEYED", json.dumps(rotated))
        assert map_gcp_connection(hook, "gcp_keyed") == first
        credential = hook.request("GET", f"credentials/{first}/", what="get").json()
        assert credential["credentialType"] == "gcp"
        assert first_key["private_key"] not in json.dumps(credential)

        monkeypatch.setenv(
            "AIRFLOW_CONN_GCP_BROKEN",
            json.dumps({"conn_type": "google_cloud_platform", "extra": {"keyfile_dict": "{not json"}}),
        )
        with pytest.raises(Exception, match=r"'gcp_broken'.*keyfile_dict is not valid JSON"):
            map_gcp_connection(hook, "gcp_broken")
        monkeypatch.setenv("AIRFLOW_CONN_GCP_WRONG", json.dumps({"conn_type": "postgres", "host": "x"}))
        with pytest.raises(Exception, match="'gcp_wrong': conn_type is 'postgres'"):
            map_gcp_connection(hook, "gcp_wrong")
    finally:
        hook.close()
