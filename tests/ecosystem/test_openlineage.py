"""OpenLineage events of real DAG runs: S3 → S3 and PostgreSQL → PostgreSQL through the local server.

Each run happens in a child process (``lineage_runner.py``) with OpenLineage enabled and the
``file`` transport; the test reads the emitted events back and checks the dataset names
(OpenLineage naming conventions), the deployment job facet and the job run facet.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_batchpred.server import models

RUNNER = Path(__file__).with_name("lineage_runner.py")
REPO_ROOT = Path(__file__).resolve().parents[2]


def run_with_lineage(dag_id: str, conf: dict[str, Any], events_file: Path) -> list[dict[str, Any]]:
    """Run ``dag_id`` with OpenLineage on; return the events it wrote to ``events_file``."""
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "batchpred-tests",
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
    }
    result = subprocess.run(
        [sys.executable, str(RUNNER), dag_id, json.dumps(conf)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "STATE success" in result.stdout, output[-5000:]
    assert events_file.exists(), f"no OpenLineage events written:\n{output[-5000:]}"
    return [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]


def task_event(events: list[dict[str, Any]], dag_id: str, task_id: str, event_type: str) -> dict[str, Any]:
    wanted = f"{dag_id}.{task_id}"
    found = [e for e in events if e["job"]["name"] == wanted and e["eventType"] == event_type]
    assert len(found) == 1, [(e["job"]["name"], e["eventType"]) for e in events]
    return found[0]


def names(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def assert_job_facets(event: dict[str, Any], deployment_id: str, job_id: str, rows: int) -> None:
    deployment = event["job"]["facets"]["datarobotDeployment"]
    assert deployment["deploymentId"] == deployment_id
    assert deployment["endpoint"].endswith("/api/v2")
    job = event["run"]["facets"]["datarobotBatchPredictionJob"]
    assert job["jobId"] == job_id
    assert job["status"] == "COMPLETED"
    assert job["scoredRows"] == rows
    assert job["jobUrl"].endswith(f"/batchPredictions/{job_id}/")


def test_s3_to_s3_run_emits_s3_datasets(
    airflow_db: Path, local_server: Any, s3_server: Any, aws_conn: str, tmp_path: Path
) -> None:
    bucket = s3_server.create_bucket(f"lineage-{secrets.token_hex(4)}")
    source = models.write_demo_csv(models.DEMO_BINARY_ID, tmp_path / "in.csv", 50, seed=3)
    s3_server.client().put_object(Bucket=bucket, Key="data/to_predict.csv", Body=source.read_bytes())
    events_file = tmp_path / "events.jsonl"

    events = run_with_lineage(
        "example_batchpred_s3",
        {
            "deployment_id": models.DEMO_BINARY_ID,
            "source_url": f"s3://{bucket}/data/to_predict.csv",
            "destination_url": f"s3://{bucket}/scored/predicted.csv",
            "aws_conn_id": aws_conn,
            "endpoint_url": "",
            "format": "csv",
        },
        events_file,
    )

    complete = task_event(events, "example_batchpred_s3", "score_s3", "COMPLETE")
    assert names(complete["inputs"]) == [(f"s3://{bucket}", "data/to_predict.csv")]
    assert names(complete["outputs"]) == [(f"s3://{bucket}", "scored/predicted.csv")]
    job_id = complete["run"]["facets"]["datarobotBatchPredictionJob"]["jobId"]
    assert_job_facets(complete, models.DEMO_BINARY_ID, job_id, 50)
    # The object the output dataset names is really there.
    s3_server.client().head_object(Bucket=bucket, Key="scored/predicted.csv")


def load_table(postgres_server: Any, schema: str, table: str, source: Path) -> None:
    from psycopg2 import sql

    with source.open(newline="") as handle:
        header = next(csv.reader(handle))
    connection = postgres_server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            columns = sql.SQL(", ").join(
                sql.SQL("{} DOUBLE PRECISION").format(sql.Identifier(name)) for name in header
            )
            cursor.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(schema, table), columns))
            with source.open("rb") as data:
                cursor.copy_expert(
                    sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv, HEADER true)")
                    .format(sql.Identifier(schema, table))
                    .as_string(cursor),
                    data,
                )
        connection.commit()
    finally:
        connection.close()


def test_postgres_to_postgres_run_emits_postgres_datasets(
    airflow_db: Path, local_server: Any, postgres_server: Any, postgres_conn: str, tmp_path: Path
) -> None:
    schema = f"lineage_{secrets.token_hex(3)}"
    source = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "rows.csv", 40, seed=5)
    load_table(postgres_server, schema, "scoring_data", source)
    events_file = tmp_path / "events.jsonl"

    events = run_with_lineage(
        "example_batchpred_jdbc_postgres",
        {
            "deployment_id": models.DEMO_REGRESSION_ID,
            "postgres_conn_id": postgres_conn,
            "source_schema": schema,
            "source_table": "scoring_data",
            "source_query": None,
            "target_schema": schema,
            "target_table": "scored_data",
            "statement_type": "create_table",
            "update_columns": None,
            "where_columns": None,
            "create_table_if_not_exists": None,
            "commit_interval": None,
        },
        events_file,
    )

    complete = task_event(events, "example_batchpred_jdbc_postgres", "score_postgres_table", "COMPLETE")
    namespace = f"postgres://{postgres_server.host}:{postgres_server.port}"
    database = postgres_server.dbname
    assert names(complete["inputs"]) == [(namespace, f"{database}.{schema}.scoring_data")]
    assert names(complete["outputs"]) == [(namespace, f"{database}.{schema}.scored_data")]
    job_id = complete["run"]["facets"]["datarobotBatchPredictionJob"]["jobId"]
    assert_job_facets(complete, models.DEMO_REGRESSION_ID, job_id, 40)


@pytest.mark.parametrize(
    ("jdbc_url", "schema", "expected"),
    [
        (
            "jdbc:postgresql://db.example:5433/sales",
            "public",
            ("postgres://db.example:5433", "sales.public.t"),
        ),
        (
            "jdbc:postgresql://db.example/sales?sslmode=require",
            None,
            ("postgres://db.example:5432", "sales.public.t"),
        ),
        (
            "jdbc:snowflake://MyOrg-Acct.snowflakecomputing.com/?warehouse=W&db=DB&schema=S",
            "PUBLIC",
            ("snowflake://myorg-acct", "DB.PUBLIC.t"),
        ),
        (
            "jdbc:sqlserver://pool.sql.azuresynapse.net:1433;databaseName=dw;encrypt=true",
            "dbo",
            ("sqlserver://pool.sql.azuresynapse.net:1433", "dbo.t"),
        ),
    ],
)
def test_jdbc_urls_map_to_openlineage_names(
    jdbc_url: str, schema: str | None, expected: tuple[str, str]
) -> None:
    from airflow_batchpred.utils.openlineage import jdbc_dataset

    assert jdbc_dataset(jdbc_url, schema, "t") == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://acct.blob.core.windows.net/data/in/x.csv",
            ("wasbs://data@acct.dfs.core.windows.net", "in/x.csv"),
        ),
        (
            "http://127.0.0.1:10000/devstoreaccount1/data/x.csv",
            ("wasbs://data@devstoreaccount1.dfs.core.windows.net", "x.csv"),
        ),
    ],
)
def test_azure_blob_urls_map_to_wasbs_names(url: str, expected: tuple[str, str]) -> None:
    from airflow_batchpred.utils.openlineage import azure_blob_dataset

    assert azure_blob_dataset(url) == expected
