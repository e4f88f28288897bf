"""Synapse: payloads checked against the contract, the T-SQL the dialect generates, and the adapter's
whole path run against PostgreSQL (no Synapse or SQL Server stand-in installs here).

The gap, stated plainly: no test talks T-SQL to a server, checks ``sys.external_data_sources``,
or exercises PolyBase/``COPY`` through the external data source.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from database_helpers import DEPLOYMENT_ID, PREDICTION, Postgres, demo_rows, expected_predictions, state_of
from psycopg2 import sql

from airflow_batchpred.contract import (
    SettingsValidationError,
    SynapseIntake,
    SynapseOutput,
    parse_job_settings,
)
from airflow_batchpred.hooks.data_stores import map_postgres_connection, map_synapse_connection
from airflow_batchpred.hooks.datarobot import DataRobotHook
from airflow_batchpred.server.adapters._sql import TableRef, parse_jdbc_url
from airflow_batchpred.server.adapters.synapse import TSqlDialect

#: The seed's Synapse settings (snake_case, as DAG authors and the official client write them).
SEED_INTAKE = {
    "type": "synapse",
    "table": "SCORING_DATA",
    "schema": "PUBLIC",
    "external_data_source": "some_datastore",
    "data_store_id": "64f0a1d3e5b7c9d1e3f5aaaa",
    "credential_id": "64f0a1d3e5b7c9d1e3f5bbbb",
    "cloud_storage_credential_id": "64f0a1d3e5b7c9d1e3f5cccc",
}
SEED_OUTPUT = {**SEED_INTAKE, "table": "SCORED_DATA", "statement_type": "insert"}


@pytest.fixture
def hook(local_server: Any) -> Iterator[DataRobotHook]:
    hook = DataRobotHook(retry_limit=2, retry_delay=0.05, max_retry_delay=0.5)
    yield hook
    hook.close()


# ---------------------------------------------------------------------------------------------
# Payloads
# ---------------------------------------------------------------------------------------------


def test_seed_payload_parses_and_goes_out_camel_case() -> None:
    settings = parse_job_settings(
        {"deployment_id": DEPLOYMENT_ID, "intake_settings": SEED_INTAKE, "output_settings": SEED_OUTPUT}
    )

    assert isinstance(settings.intake_settings, SynapseIntake)
    assert isinstance(settings.output_settings, SynapseOutput)
    wire = settings.to_wire()
    assert wire["intakeSettings"]["externalDataSource"] == "some_datastore"
    assert wire["intakeSettings"]["cloudStorageCredentialId"] == "64f0a1d3e5b7c9d1e3f5cccc"
    assert wire["outputSettings"]["statementType"] == "insert"


@pytest.mark.parametrize("spelling", ["insertUpdate", "insert_update"])
def test_statement_type_spellings_are_normalised(spelling: str) -> None:
    output = {**SEED_OUTPUT, "statement_type": spelling, "where_columns": ["id"]}
    settings = parse_job_settings({"deployment_id": DEPLOYMENT_ID, "output_settings": output})
    assert settings.output_settings.statement_type == "insert_update"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"external_data_source": None}, "output_settings.external_data_source"),
        ({"statement_type": "merge"}, "output_settings.statement_type"),
        ({"statement_type": "update", "where_columns": ["id"]}, "output_settings"),
        ({"commit_interval": 60}, "output_settings.commit_interval"),
    ],
)
def test_invalid_synapse_payloads_are_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    output = {key: value for key, value in {**SEED_OUTPUT, **change}.items() if value is not None}
    with pytest.raises(SettingsValidationError) as caught:
        parse_job_settings({"deployment_id": DEPLOYMENT_ID, "output_settings": output})
    assert any(path.startswith(field) for path, _ in caught.value.problems), caught.value.problems


def test_server_refuses_a_synapse_output_without_external_data_source(local_server: Any) -> None:
    output = {key: value for key, value in SEED_OUTPUT.items() if key != "external_data_source"}
    response = requests.post(
        f"{local_server.endpoint}/batchPredictions/",
        headers=local_server.headers,
        json={"deploymentId": DEPLOYMENT_ID, "outputSettings": output},
        timeout=30,
    )
    assert response.status_code == 422
    assert "external" in response.text.lower()


# ---------------------------------------------------------------------------------------------
# The T-SQL dialect (statements only: no server to run them)
# ---------------------------------------------------------------------------------------------


def test_tsql_quotes_identifiers_with_brackets() -> None:
    dialect = TSqlDialect()
    assert dialect.quote(None, "scored data") == "[scored data]"
    assert dialect.quote(None, "odd]name") == "[odd]]name]"
    assert dialect.qualified(None, TableRef(schema="dbo", name="SCORED_DATA")) == "[dbo].[SCORED_DATA]"


def test_tsql_update_and_upsert_statements() -> None:
    dialect = TSqlDialect()
    update = dialect.update_from_staging(None, "[dbo].[T]", "#batchpred_staging", ["p"], ["id", "k"])
    insert = dialect.insert_missing_from_staging(None, "[dbo].[T]", "#batchpred_staging", ["id", "p"], ["id"])

    assert update == (
        "UPDATE t SET t.[p] = s.[p] FROM [dbo].[T] AS t INNER JOIN #batchpred_staging AS s "
        "ON t.[id] = s.[id] AND t.[k] = s.[k]"
    )
    assert insert == (
        "INSERT INTO [dbo].[T] ([id], [p]) SELECT s.[id], s.[p] FROM #batchpred_staging AS s "
        "WHERE NOT EXISTS (SELECT 1 FROM [dbo].[T] AS t WHERE t.[id] = s.[id])"
    )
    assert dialect.placeholder == "?"
    assert not dialect.transactional_ddl


def test_sqlserver_jdbc_url_is_parsed() -> None:
    location = parse_jdbc_url(
        "jdbc:sqlserver://pool.sql.azuresynapse.net:1433;databaseName=scoring;encrypt=true"
    )
    assert (location.scheme, location.host, location.port, location.database) == (
        "sqlserver",
        "pool.sql.azuresynapse.net",
        1433,
        "scoring",
    )
    assert location.params["encrypt"] == "true"


# ---------------------------------------------------------------------------------------------
# The adapter's path, against PostgreSQL
# ---------------------------------------------------------------------------------------------


def test_synapse_to_synapse_over_the_postgres_stand_in(
    run_dag: Any, hook: DataRobotHook, postgres_conn_env: str, postgres: Postgres, scorer: Any, tmp_path: Any
) -> None:
    table = demo_rows(tmp_path, 80, seed=41)
    postgres.execute("CREATE SCHEMA IF NOT EXISTS dbo")
    postgres.load_scoring_table("SCORING_DATA", table, schema="dbo")
    target = sql.Identifier("dbo", "SCORED_DATA")
    postgres.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
    postgres.execute(
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
            target, sql.Identifier("dbo", "SCORING_DATA")
        )
    )
    postgres.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN {} DOUBLE PRECISION").format(target, sql.Identifier(PREDICTION))
    )
    postgres.execute(
        sql.SQL("INSERT INTO {} (id, {}) VALUES (1, -1), (-5, -5)").format(target, sql.Identifier(PREDICTION))
    )
    database = map_postgres_connection(hook, postgres_conn_env)

    run = run_dag(
        "example_batchpred_synapse",
        {
            "deployment_id": DEPLOYMENT_ID,
            "synapse_conn_id": None,
            "data_store_id": database.data_store_id,
            "credential_id": database.credential_id,
            "external_data_source": "some_datastore",
            "cloud_storage_credential_id": None,
            "source_schema": "dbo",
            "source_table": "SCORING_DATA",
            "target_schema": "dbo",
            "target_table": "SCORED_DATA",
            "statement_type": "insertUpdate",
            "update_columns": [PREDICTION],
            "where_columns": ["id"],
        },
    )

    assert state_of(run) == "success"
    rows = {row["id"]: row[PREDICTION] for row in postgres.rows("SCORED_DATA", schema="dbo")}
    expected = expected_predictions(scorer, table)
    assert rows.pop(-5) == -5
    assert set(rows) == set(expected)
    for key, value in rows.items():
        assert value == pytest.approx(expected[key], rel=1e-9)


def test_synapse_connection_maps_to_a_sqlserver_data_store(
    hook: DataRobotHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = {
        "conn_type": "mssql",
        "host": "pool.sql.azuresynapse.net",
        "port": 1433,
        "schema": "scoring",
        "login": "scorer",
        "password": "synapse-secret",
    }
    monkeypatch.setenv("AIRFLOW_CONN_SYNAPSE_POOL", json.dumps(connection))

    first = map_synapse_connection(hook, "synapse_pool")
    again = map_synapse_connection(hook, "synapse_pool")

    assert first == again
    store = hook.request("GET", f"externalDataStores/{first.data_store_id}/", what="get").json()
    assert store["params"] == {
        "driverId": "sqlserver",
        "jdbcUrl": "jdbc:sqlserver://pool.sql.azuresynapse.net:1433;databaseName=scoring;encrypt=true",
    }
    monkeypatch.setenv("AIRFLOW_CONN_SYNAPSE_POOL", json.dumps({**connection, "schema": None}))
    with pytest.raises(ValueError, match="'synapse_pool': schema is empty"):
        map_synapse_connection(hook, "synapse_pool")
