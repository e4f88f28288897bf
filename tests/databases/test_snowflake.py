# ruff: noqa: S608 - test tables and columns are constants of this module
"""Snowflake (``fakesnow -s``) → Snowflake through the example DAG, the stage and the connector.

The tables use quoted lower-case feature names, as the model's features are named. The stage the
seed names (``my_s3_stage_in_snowflake``) is created as an *internal* stage: fakesnow cannot read an
external stage's cloud storage, so the PUT + COPY path of internal stages is what runs here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from database_helpers import DEPLOYMENT_ID, PREDICTION, demo_rows, expected_predictions, state_of

from airflow_batchpred.contract import JobStatus
from airflow_batchpred.hooks.data_stores import ConnectionMappingError, map_snowflake_connection
from airflow_batchpred.hooks.datarobot import DataRobotHook

DAG_ID = "example_batchpred_snowflake"
CONN_ID = "batchpred_snowflake"
STAGE = "my_s3_stage_in_snowflake"
ROWS = 200

DEFAULT_CONF: dict[str, Any] = {
    "deployment_id": DEPLOYMENT_ID,
    "snowflake_conn_id": CONN_ID,
    "external_stage": STAGE,
    "cloud_storage_type": "s3",
    "cloud_storage_credential_id": None,
    "source_schema": "PUBLIC",
    "source_table": "SCORING_DATA",
    "target_schema": "PUBLIC",
    "target_table": "SCORED_DATA",
    "statement_type": "insert",
    "update_columns": None,
    "where_columns": None,
    "create_table_if_not_exists": None,
}


def q(name: str) -> str:
    return '"' + name + '"'


class Snowflake:
    def __init__(self, server: Any) -> None:
        self.server = server

    def execute(self, statement: str, params: Any = None, many: bool = False) -> list[tuple[Any, ...]]:
        connection = self.server.connect()
        try:
            cursor = connection.cursor()
            if many:
                cursor.executemany(statement, params)
            else:
                cursor.execute(statement, params)
            rows = cursor.fetchall() if cursor.description else []
            connection.commit()
            return list(rows)
        finally:
            connection.close()

    def create_table(self, name: str, columns: dict[str, str]) -> None:
        definition = ", ".join(f"{q(column)} {kind}" for column, kind in columns.items())
        self.execute(f"DROP TABLE IF EXISTS PUBLIC.{name}")
        self.execute(f"CREATE TABLE PUBLIC.{name} ({definition})")

    def rows(self, name: str) -> list[dict[str, Any]]:
        connection = self.server.connect()
        try:
            cursor = connection.cursor()
            cursor.execute(f"SELECT * FROM PUBLIC.{name}")
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            connection.close()


@pytest.fixture(scope="module")
def snowflake(snowflake_server: Any) -> Snowflake:
    return Snowflake(snowflake_server)


@pytest.fixture(scope="module")
def snowflake_conn_env(snowflake_server: Any) -> Iterator[str]:
    key = f"AIRFLOW_CONN_{CONN_ID.upper()}"
    previous = os.environ.get(key)
    os.environ[key] = json.dumps(snowflake_server.airflow_connection())
    yield CONN_ID
    if previous is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = previous


def feature_columns(table: pa.Table) -> dict[str, str]:
    return {"id": "NUMBER(38, 0)", **dict.fromkeys(table.column_names[1:], "FLOAT")}


@pytest.fixture(scope="module")
def scoring(
    tmp_path_factory: pytest.TempPathFactory, snowflake: Snowflake, scorer: Any
) -> tuple[pa.Table, dict[int, float]]:
    table = demo_rows(tmp_path_factory.mktemp("sf"), ROWS, seed=13)
    snowflake.create_table("SCORING_DATA", feature_columns(table))
    marks = ", ".join(["%s"] * table.num_columns)
    columns = ", ".join(q(name) for name in table.column_names)
    snowflake.execute(
        f"INSERT INTO PUBLIC.SCORING_DATA ({columns}) VALUES ({marks})",
        [tuple(row.values()) for row in table.to_pylist()],
        many=True,
    )
    snowflake.execute(f"CREATE STAGE IF NOT EXISTS {STAGE}")
    return table, expected_predictions(scorer, table)


def assert_predictions(
    rows: list[dict[str, Any]], expected: dict[int, float], ids: set[int] | None = None
) -> None:
    assert sorted(int(row["id"]) for row in rows) == sorted(ids if ids is not None else expected)
    for row in rows:
        assert row[PREDICTION] == pytest.approx(expected[int(row["id"])], rel=1e-9), row["id"]


def run_snowflake(run_dag: Any, **conf: Any) -> Any:
    return run_dag(DAG_ID, {**DEFAULT_CONF, **conf})


def test_insert_through_the_stage_like_the_seed(
    run_dag: Any, snowflake_conn_env: str, snowflake: Snowflake, scoring: Any, xcom_of: Any
) -> None:
    table, expected = scoring
    snowflake.create_table("SCORED_DATA", {**feature_columns(table), PREDICTION: "FLOAT"})

    run = run_snowflake(run_dag)

    assert state_of(run) == "success"
    rows = snowflake.rows("SCORED_DATA")
    print("ROWS", rows[:3], len(rows))
    assert_predictions(rows, expected)
    assert rows[0]["bmi"] is not None
    assert xcom_of(run, "score_snowflake_table")["output_location"] == "snowflake:PUBLIC.SCORED_DATA"


def test_insert_update_through_a_staging_table(
    run_dag: Any, snowflake_conn_env: str, snowflake: Snowflake, scoring: Any
) -> None:
    table, expected = scoring
    snowflake.create_table("UPSERTED", {**feature_columns(table), PREDICTION: "FLOAT"})
    snowflake.execute(
        f"INSERT INTO PUBLIC.UPSERTED ({q('id')}, {q(PREDICTION)}) VALUES (1, -1), (2, -1), (999, -9)"
    )

    run = run_snowflake(
        run_dag,
        target_table="UPSERTED",
        statement_type="insertUpdate",
        where_columns=["id"],
        update_columns=[PREDICTION],
    )

    assert state_of(run) == "success"
    rows = snowflake.rows("UPSERTED")
    untouched = [row for row in rows if int(row["id"]) == 999]
    assert untouched[0][PREDICTION] == -9
    assert_predictions([row for row in rows if int(row["id"]) != 999], expected)


def test_create_table(run_dag: Any, snowflake_conn_env: str, snowflake: Snowflake, scoring: Any) -> None:
    _, expected = scoring
    snowflake.execute("DROP TABLE IF EXISTS PUBLIC.CREATED_SCORES")

    run = run_snowflake(run_dag, target_table="CREATED_SCORES", statement_type="create_table")

    assert state_of(run) == "success"
    assert_predictions(snowflake.rows("CREATED_SCORES"), expected)


@pytest.fixture(scope="module")
def hook(local_server: Any) -> Iterator[DataRobotHook]:
    hook = DataRobotHook(retry_limit=2, retry_delay=0.05, max_retry_delay=0.5)
    yield hook
    hook.close()


def _job(hook: DataRobotHook, database: Any, output: dict[str, Any]) -> dict[str, Any]:
    ids = {"data_store_id": database.data_store_id, "credential_id": database.credential_id}
    job = hook.submit_job(
        {
            "deployment_id": DEPLOYMENT_ID,
            "intake_settings": {"type": "snowflake", "table": "SCORING_DATA", "external_stage": STAGE, **ids},
            "output_settings": {"type": "snowflake", "external_stage": STAGE, **ids, **output},
            "passthrough_columns_set": "all",
        }
    )
    return hook.wait_for_job(str(job["id"]), poll_interval=0.1, timeout=120)


def test_type_mismatch_at_load_leaves_the_table_unchanged(
    hook: DataRobotHook, snowflake_conn_env: str, snowflake: Snowflake, scoring: Any
) -> None:
    table, _ = scoring
    # "age" is a float in the scores; the target wants a date.
    snowflake.create_table("MISMATCH", {**feature_columns(table), "age": "DATE", PREDICTION: "FLOAT"})
    snowflake.execute(f"INSERT INTO PUBLIC.MISMATCH ({q('id')}) VALUES (-1)")
    database = map_snowflake_connection(hook, snowflake_conn_env)

    final = _job(hook, database, {"table": "MISMATCH", "statement_type": "insert"})

    assert final["status"] == JobStatus.ABORTED.value
    assert "loading the scores into BATCHPRED.PUBLIC.MISMATCH failed" in final["statusDetails"]
    assert "Conversion Error" in final["statusDetails"]
    assert [int(row["id"]) for row in snowflake.rows("MISMATCH")] == [-1]


def test_missing_stage_and_missing_table_abort_with_clear_messages(
    hook: DataRobotHook, snowflake_conn_env: str, snowflake: Snowflake, scoring: Any
) -> None:
    database = map_snowflake_connection(hook, snowflake_conn_env)
    ids = {"data_store_id": database.data_store_id, "credential_id": database.credential_id}

    no_stage = _job(
        hook, database, {"table": "SCORED_DATA", "statement_type": "insert", "external_stage": "NO_STAGE"}
    )
    no_table = _job(hook, database, {"table": "NO_SUCH_TABLE", "statement_type": "insert"})
    job = hook.submit_job(
        {
            "deployment_id": DEPLOYMENT_ID,
            "intake_settings": {
                "type": "snowflake",
                "table": "SCORING_DATA",
                "external_stage": "NO_STAGE",
                **ids,
            },
            "output_settings": {"type": "localFile"},
        }
    )
    no_intake_stage = hook.wait_for_job(str(job["id"]), poll_interval=0.1, timeout=60)

    assert no_stage["status"] == JobStatus.ABORTED.value
    assert "external stage 'NO_STAGE' does not exist in Snowflake data store" in no_stage["statusDetails"]
    assert "table PUBLIC.NO_SUCH_TABLE does not exist in Snowflake data store" in no_table["statusDetails"]
    assert "external stage 'NO_STAGE' does not exist" in no_intake_stage["statusDetails"]


def test_snowflake_mapping_idempotent_and_rotated_in_place(
    hook: DataRobotHook, monkeypatch: pytest.MonkeyPatch, snowflake_server: Any, tmp_path: Path
) -> None:
    connection = snowflake_server.airflow_connection()
    monkeypatch.setenv("AIRFLOW_CONN_SF_MAPPED", json.dumps(connection))
    first = map_snowflake_connection(hook, "sf_mapped")
    assert map_snowflake_connection(hook, "sf_mapped") == first
    store = hook.request("GET", f"externalDataStores/{first.data_store_id}/", what="get").json()
    assert store["params"]["jdbcUrl"] == (
        f"jdbc:snowflake://127.0.0.1:{snowflake_server.port}/?account=fakesnow&warehouse=COMPUTE_WH"
        "&db=BATCHPRED&schema=PUBLIC&role=SYSADMIN&ssl=off"
    )

    monkeypatch.setenv("AIRFLOW_CONN_SF_MAPPED", json.dumps({**connection, "password": "rotated"}))
    assert map_snowflake_connection(hook, "sf_mapped") == first

    # A key pair turns the mapping into a key-pair credential (a new name is not needed: the
    # credential type differs, so the mapping refuses to reuse the basic one).
    key_file = _write_private_key(tmp_path / "rsa_key.p8", passphrase="key-pass")
    key_pair = {
        **connection,
        "password": "key-pass",
        "extra": {**connection["extra"], "private_key_file": str(key_file)},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SF_KEY_PAIR", json.dumps(key_pair))
    mapped = map_snowflake_connection(hook, "sf_key_pair")
    credential = hook.request("GET", f"credentials/{mapped.credential_id}/", what="get").json()
    assert credential["credentialType"] == "snowflake_key_pair_user_account"
    assert map_snowflake_connection(hook, "sf_key_pair") == mapped


def _write_private_key(path: Path, passphrase: str) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        )
    )
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            {"conn_type": "postgres"}, "conn_type is 'postgres'; expected 'snowflake'", id="wrong-type"
        ),
        pytest.param({"extra": {"database": "BATCHPRED"}}, "extra.account is empty", id="no-account"),
        pytest.param({"login": None}, "login is empty", id="no-login"),
        pytest.param(
            {"password": None}, "password is empty; set the password, or a key pair", id="no-password"
        ),
        pytest.param(
            {"extra": {"account": "acme", "private_key_content": "not a key"}},
            "extra.private_key_content cannot be loaded as a PEM private key",
            id="bad-key",
        ),
    ],
)
def test_bad_snowflake_connections_name_the_connection_and_field(
    hook: DataRobotHook,
    monkeypatch: pytest.MonkeyPatch,
    snowflake_server: Any,
    change: dict[str, Any],
    message: str,
) -> None:
    connection = {**snowflake_server.airflow_connection(), **change}
    monkeypatch.setenv(
        "AIRFLOW_CONN_SF_BROKEN", json.dumps({k: v for k, v in connection.items() if v is not None})
    )

    with pytest.raises(ConnectionMappingError) as caught:
        map_snowflake_connection(hook, "sf_broken")

    assert "Airflow connection 'sf_broken'" in str(caught.value)
    assert message in str(caught.value)
    assert "sf-secret-123" not in str(caught.value)


def test_a_key_pair_credential_connects_and_scores(
    hook: DataRobotHook, monkeypatch: pytest.MonkeyPatch, snowflake_server: Any, scoring: Any, tmp_path: Path
) -> None:
    """The server decrypts the mapped key with its passphrase and connects with it (fakesnow
    accepts any key: what runs is the credential's path, not Snowflake's verification)."""
    _, expected = scoring
    connection = snowflake_server.airflow_connection()
    key_file = _write_private_key(tmp_path / "scorer_key.p8", passphrase="pair-pass")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SF_SCORING_KEY",
        json.dumps(
            {
                **connection,
                "password": "pair-pass",
                "extra": {**connection["extra"], "private_key_file": str(key_file)},
            }
        ),
    )
    database = map_snowflake_connection(hook, "sf_scoring_key")

    final = _job(hook, database, {"table": "KEY_PAIR_SCORES", "statement_type": "create_table"})

    assert final["status"] == JobStatus.COMPLETED.value, final["statusDetails"]
    rows = Snowflake(snowflake_server).rows("KEY_PAIR_SCORES")
    assert_predictions(rows, expected)
