"""PostgreSQL jobs that fail or are aborted: a clear ``statusDetails`` and the target table untouched.

Jobs are submitted with the hook (the operator adds nothing here) on the data store and credential
mapped from the ``batchpred_postgres`` connection. Every target starts with sentinel rows, and
must hold exactly those rows afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests
from database_helpers import DEPLOYMENT_ID, PREDICTION, Postgres, demo_rows
from psycopg2 import sql

from airflow_batchpred.contract import JobStatus
from airflow_batchpred.hooks.data_stores import MappedDataStore, map_postgres_connection
from airflow_batchpred.hooks.datarobot import DataRobotHook
from airflow_batchpred.server.adapters._sql import FETCH_ROWS

SENTINELS = [(-1, -1.0), (-2, -2.0), (-3, -3.0)]
#: Rows of the big table: enough chunks that a DELETE lands while the job writes.
BIG_ROWS = 300_000


@pytest.fixture(scope="module")
def hook(local_server: Any) -> Iterator[DataRobotHook]:
    hook = DataRobotHook(retry_limit=2, retry_delay=0.05, max_retry_delay=0.5)
    yield hook
    hook.close()


@pytest.fixture(scope="module")
def database(hook: DataRobotHook, postgres_conn_env: str) -> MappedDataStore:
    return map_postgres_connection(hook, postgres_conn_env)


@pytest.fixture(scope="module")
def small_table(tmp_path_factory: pytest.TempPathFactory, postgres: Postgres) -> pa.Table:
    table = demo_rows(tmp_path_factory.mktemp("pg-fail"), 50, seed=11)
    postgres.load_scoring_table("failure_input", table)
    return table


def create_target(
    postgres: Postgres, name: str, features: list[str], schema: str = "public", **types: str
) -> None:
    """``schema.name`` with ``id``, the features, the prediction (and ``types`` overrides), plus sentinels."""
    column_types = {
        "id": "BIGINT",
        **dict.fromkeys(features, "DOUBLE PRECISION"),
        PREDICTION: "DOUBLE PRECISION",
    }
    column_types.update(types)
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(kind))
        for column, kind in column_types.items()
    )
    target = sql.Identifier(schema, name)
    postgres.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
    postgres.execute(sql.SQL("CREATE TABLE {} ({})").format(target, columns))
    for key, value in SENTINELS:
        postgres.execute(
            sql.SQL("INSERT INTO {} (id, {}) VALUES (%s, %s)").format(target, sql.Identifier(PREDICTION)),
            (key, value),
        )


def sentinels_only(postgres: Postgres, name: str, schema: str = "public") -> bool:
    rows = postgres.rows(name, f'id, "{PREDICTION}"', schema=schema)
    return sorted((row["id"], row[PREDICTION]) for row in rows) == sorted(SENTINELS)


def jdbc(database: MappedDataStore, **settings: Any) -> dict[str, Any]:
    return {
        "type": "jdbc",
        "data_store_id": database.data_store_id,
        "credential_id": database.credential_id,
        **settings,
    }


def run_job(
    hook: DataRobotHook, intake: dict[str, Any], output: dict[str, Any], **options: Any
) -> dict[str, Any]:
    job = hook.submit_job(
        {
            "deployment_id": DEPLOYMENT_ID,
            "intake_settings": intake,
            "output_settings": output,
            "passthrough_columns_set": "all",
            **options,
        }
    )
    return hook.wait_for_job(str(job["id"]), poll_interval=0.1, timeout=300)


def test_delete_while_writing_leaves_the_target_table_unchanged(
    hook: DataRobotHook, database: MappedDataStore, postgres: Postgres, tmp_path: Path
) -> None:
    table = demo_rows(tmp_path, BIG_ROWS, seed=5)
    postgres.load_scoring_table("big_input", table)
    create_target(postgres, "big_scored", table.column_names[1:])

    job = hook.submit_job(
        {
            "deployment_id": DEPLOYMENT_ID,
            "intake_settings": jdbc(database, table="big_input", schema="public"),
            "output_settings": jdbc(database, table="big_scored", schema="public", statement_type="insert"),
            "passthrough_columns_set": "all",
        }
    )
    job_id = str(job["id"])
    # Wait until scored rows have been written into the (uncommitted) transaction, then abort.
    running = hook.wait_for_job(
        job_id, poll_interval=0.02, timeout=120, until=lambda j: j.get("scoredRows", 0) > 0
    )
    assert running["status"] == JobStatus.RUNNING.value, running
    assert hook.cancel_job(job_id)
    final = hook.wait_for_job(job_id, poll_interval=0.1, timeout=60)

    assert final["status"] == JobStatus.ABORTED.value
    assert 0 < final["scoredRows"] < BIG_ROWS
    assert sentinels_only(postgres, "big_scored")


def test_type_mismatch_in_a_late_chunk_rolls_back_the_earlier_chunks(
    hook: DataRobotHook, database: MappedDataStore, postgres: Postgres, tmp_path: Path
) -> None:
    table = demo_rows(tmp_path, 30_000, seed=9)
    # A text column whose values are numbers until row 25 000 of 30 000.
    postgres.load_scoring_table("mismatch_input", table)
    postgres.execute("ALTER TABLE public.mismatch_input ADD COLUMN label TEXT")
    postgres.execute(
        "UPDATE public.mismatch_input SET label = CASE WHEN id < 25000 THEN id::text ELSE %s END",
        ("not-a-number",),
    )
    create_target(postgres, "mismatch_scored", table.column_names[1:], label="INTEGER")

    final = run_job(
        hook,
        jdbc(database, table="mismatch_input", schema="public"),
        jdbc(database, table="mismatch_scored", schema="public", statement_type="insert"),
    )

    assert final["status"] == JobStatus.ABORTED.value
    details = final["statusDetails"]
    assert "writing to public.mismatch_scored failed" in details
    assert 'invalid input syntax for type integer: "not-a-number"' in details
    assert "column label" in details
    assert final["scoredRows"] >= 20_000  # earlier chunks were written, then rolled back
    assert sentinels_only(postgres, "mismatch_scored")


@pytest.mark.parametrize(
    ("side", "settings", "message"),
    [
        pytest.param(
            "intake",
            {"table": "no_such_table", "schema": "public"},
            "table public.no_such_table does not exist in PostgreSQL data store",
            id="missing-intake-table",
        ),
        pytest.param(
            "intake",
            {"table": "failure_input", "schema": "no_such_schema"},
            "schema 'no_such_schema' does not exist in PostgreSQL data store",
            id="wrong-intake-schema",
        ),
        pytest.param(
            "intake",
            {"query": "SELECT * FROM public.failure_input WHERE no_such_column > 0"},
            'reading the intake query failed: column "no_such_column" does not exist',
            id="bad-intake-query",
        ),
        pytest.param(
            "output",
            {"table": "no_such_table", "schema": "public", "statement_type": "insert"},
            "table public.no_such_table does not exist in PostgreSQL data store",
            id="missing-output-table",
        ),
        pytest.param(
            "output",
            {"table": "failure_target", "schema": "no_such_schema", "statement_type": "insert"},
            "schema 'no_such_schema' does not exist in PostgreSQL data store",
            id="wrong-output-schema",
        ),
        pytest.param(
            "output",
            {
                "table": "failure_target",
                "schema": "public",
                "statement_type": "update",
                "where_columns": ["id"],
                "update_columns": ["no_such_column"],
            },
            "statementType update: updateColumns no_such_column not among the output columns",
            id="missing-update-columns",
        ),
        pytest.param(
            "output",
            {
                "table": "failure_target",
                "schema": "public",
                "statement_type": "insert_update",
                "where_columns": ["key"],
            },
            "statementType insert_update: whereColumns key not among the output columns",
            id="missing-where-columns",
        ),
        pytest.param(
            "output",
            {"table": "failure_target", "schema": "public", "statement_type": "create_table"},
            "table public.failure_target already exists",
            id="create-existing-table",
        ),
    ],
)
def test_bad_settings_abort_with_a_clear_message_and_write_nothing(
    hook: DataRobotHook,
    database: MappedDataStore,
    postgres: Postgres,
    small_table: pa.Table,
    side: str,
    settings: dict[str, Any],
    message: str,
) -> None:
    create_target(postgres, "failure_target", small_table.column_names[1:])
    intake = jdbc(database, table="failure_input", schema="public")
    output = jdbc(database, table="failure_target", schema="public", statement_type="insert")
    if side == "intake":
        intake = jdbc(database, **settings)
    else:
        output = jdbc(database, **settings)

    final = run_job(hook, intake, output)

    assert final["status"] == JobStatus.ABORTED.value
    assert message in final["statusDetails"], final["statusDetails"]
    assert sentinels_only(postgres, "failure_target")


@pytest.mark.parametrize("unknown", ["data_store_id", "credential_id"])
def test_unknown_data_store_or_credential_aborts_naming_it(
    hook: DataRobotHook, database: MappedDataStore, postgres: Postgres, small_table: pa.Table, unknown: str
) -> None:
    create_target(postgres, "failure_target", small_table.column_names[1:])
    output = jdbc(database, table="failure_target", schema="public", statement_type="insert")
    output[unknown] = "0123456789abcdef01234567"

    final = run_job(hook, jdbc(database, table="failure_input", schema="public"), output)

    assert final["status"] == JobStatus.ABORTED.value
    kind = "data store" if unknown == "data_store_id" else "credential"
    assert f"{kind} 0123456789abcdef01234567 does not exist" in final["statusDetails"]
    assert sentinels_only(postgres, "failure_target")


def test_wrong_password_aborts_without_revealing_it(
    hook: DataRobotHook, database: MappedDataStore, postgres: Postgres, small_table: pa.Table
) -> None:
    create_target(postgres, "failure_target", small_table.column_names[1:])
    wrong = hook.request(
        "POST",
        "credentials/",
        json_body={
            "name": f"wrong-password-{time.time_ns()}",
            "credentialType": "basic",
            "user": "batchpred",
            "password": "not-the-password-xyz",
        },
        what="create credential",
    ).json()

    final = run_job(
        hook,
        jdbc(database, table="failure_input", schema="public"),
        {
            **jdbc(database, table="failure_target", schema="public", statement_type="insert"),
            "credential_id": wrong["credentialId"],
        },
    )

    assert final["status"] == JobStatus.ABORTED.value
    assert "cannot connect to PostgreSQL data store" in final["statusDetails"]
    assert "password authentication failed" in final["statusDetails"]
    assert "not-the-password-xyz" not in str(final)
    assert sentinels_only(postgres, "failure_target")


def test_update_without_update_columns_is_refused_at_submission(
    local_server: Any, database: MappedDataStore
) -> None:
    """The contract rejects it before any job exists (422 naming the field)."""
    response = requests.post(
        f"{local_server.endpoint}/batchPredictions/",
        headers=local_server.headers,
        json={
            "deploymentId": DEPLOYMENT_ID,
            "intakeSettings": {
                "type": "jdbc",
                "dataStoreId": database.data_store_id,
                "table": "failure_input",
            },
            "outputSettings": {
                "type": "jdbc",
                "dataStoreId": database.data_store_id,
                "table": "failure_target",
                "statementType": "update",
                "whereColumns": ["id"],
            },
        },
        timeout=30,
    )
    assert response.status_code == 422
    assert "update_columns" in response.text or "updateColumns" in response.text


def test_commit_interval_keeps_whole_chunks_committed_before_a_late_failure(
    hook: DataRobotHook, database: MappedDataStore, postgres: Postgres, tmp_path: Path
) -> None:
    """With ``commitInterval`` the documented partial commits happen: whole chunks, then rollback."""
    rows = 200_000
    table = demo_rows(tmp_path, rows, seed=19)
    postgres.load_scoring_table("interval_input", table)
    postgres.execute("ALTER TABLE public.interval_input ADD COLUMN label TEXT")
    postgres.execute(
        "UPDATE public.interval_input SET label = CASE WHEN id <= %s THEN id::text ELSE 'not-a-number' END",
        (rows - 1_000,),
    )
    create_target(postgres, "interval_scored", table.column_names[1:], label="INTEGER")

    final = run_job(
        hook,
        jdbc(database, table="interval_input", schema="public"),
        jdbc(database, table="interval_scored", schema="public", statement_type="insert", commit_interval=1),
    )

    assert final["status"] == JobStatus.ABORTED.value
    assert "since the last commitInterval commit" in final["statusDetails"]
    written = postgres.execute("SELECT count(*) FROM public.interval_scored WHERE id > 0")[0][0]
    assert 0 < written < rows
    assert written % FETCH_ROWS == 0  # commits happen between chunks, never inside one
    assert sentinels_only_among(postgres, "interval_scored")


def sentinels_only_among(postgres: Postgres, name: str) -> bool:
    rows = postgres.execute(f'SELECT id, "{PREDICTION}" FROM public.{name} WHERE id < 0')  # noqa: S608
    return sorted(rows) == sorted(SENTINELS)
