"""Airflow connection → DataRobot data store + credential: idempotent, rotated in place, clear errors.

Connections come from ``AIRFLOW_CONN_*`` variables; the mapping runs against the local server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from database_helpers import DEPLOYMENT_ID, Postgres, demo_rows
from psycopg2 import sql

from airflow_batchpred.contract import JobStatus
from airflow_batchpred.hooks.credentials import managed_name
from airflow_batchpred.hooks.data_stores import ConnectionMappingError, map_postgres_connection
from airflow_batchpred.hooks.datarobot import DataRobotHook


@pytest.fixture
def hook(local_server: Any) -> Iterator[DataRobotHook]:
    hook = DataRobotHook(retry_limit=2, retry_delay=0.05, max_retry_delay=0.5)
    yield hook
    hook.close()


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, connection: dict[str, Any]) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))


def named(hook: DataRobotHook, route: str, name_key: str, name: str) -> list[dict[str, Any]]:
    records = hook.request("GET", route, params={"limit": 1000}, what="list").json()["data"]
    return [record for record in records if record.get(name_key) == name]


# ---------------------------------------------------------------------------------------------
# postgres
# ---------------------------------------------------------------------------------------------


def test_postgres_mapping_is_idempotent(
    hook: DataRobotHook, monkeypatch: pytest.MonkeyPatch, postgres_server: Any
) -> None:
    set_connection(monkeypatch, "pg_idempotent", postgres_server.airflow_connection())

    first = map_postgres_connection(hook, "pg_idempotent")
    second = map_postgres_connection(hook, "pg_idempotent")

    assert first == second
    name = managed_name("postgres", "pg_idempotent")
    assert [c["credentialId"] for c in named(hook, "credentials/", "name", name)] == [first.credential_id]
    stores = named(hook, "externalDataStores/", "canonicalName", name)
    assert [s["id"] for s in stores] == [first.data_store_id]
    assert stores[0]["params"] == {
        "driverId": "postgresql",
        "jdbcUrl": f"jdbc:postgresql://127.0.0.1:{postgres_server.port}/{postgres_server.dbname}",
    }
    credential = hook.request("GET", f"credentials/{first.credential_id}/", what="get").json()
    assert credential["credentialType"] == "basic"
    assert postgres_server.password not in json.dumps(credential)


def test_postgres_password_rotation_updates_the_credential_in_place(
    hook: DataRobotHook,
    monkeypatch: pytest.MonkeyPatch,
    postgres_server: Any,
    postgres: Postgres,
    tmp_path: Any,
) -> None:
    """A rotated password keeps the credential id, and jobs use the new password."""
    role = "rotating_user"
    admin = postgres_server.superuser_connection(postgres_server.dbname)
    try:
        with admin.cursor() as cursor:
            if _role_exists(cursor, role):
                cursor.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            cursor.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(role)), ("first-secret",)
            )
            cursor.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(role)))
    finally:
        admin.close()
    table = demo_rows(tmp_path, 20, seed=2)
    postgres.load_scoring_table("rotation_input", table)
    postgres.execute(sql.SQL("GRANT SELECT ON public.rotation_input TO {}").format(sql.Identifier(role)))
    connection = {**postgres_server.airflow_connection(), "login": role, "password": "first-secret"}
    set_connection(monkeypatch, "pg_rotating", connection)
    before = map_postgres_connection(hook, "pg_rotating")
    assert _score(hook, before)["status"] == JobStatus.COMPLETED.value

    admin = postgres_server.superuser_connection(postgres_server.dbname)
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(role)), ("second-secret",)
            )
    finally:
        admin.close()
    stale = _score(hook, before)
    assert stale["status"] == JobStatus.ABORTED.value
    assert "password authentication failed" in stale["statusDetails"]

    set_connection(monkeypatch, "pg_rotating", {**connection, "password": "second-secret"})
    after = map_postgres_connection(hook, "pg_rotating")

    assert after == before
    assert _score(hook, after)["status"] == JobStatus.COMPLETED.value


def _role_exists(cursor: Any, role: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    return cursor.fetchone() is not None


def _score(hook: DataRobotHook, mapped: Any) -> dict[str, Any]:
    ids = {"data_store_id": mapped.data_store_id, "credential_id": mapped.credential_id}
    job = hook.submit_job(
        {
            "deployment_id": DEPLOYMENT_ID,
            "intake_settings": {"type": "jdbc", "table": "rotation_input", **ids},
            "output_settings": {
                "type": "jdbc",
                "table": "rotation_output",
                "statement_type": "insert",
                "create_table_if_not_exists": True,
                **ids,
            },
        }
    )
    return hook.wait_for_job(str(job["id"]), poll_interval=0.1, timeout=120)


def test_postgres_host_change_updates_the_data_store_in_place(
    hook: DataRobotHook, monkeypatch: pytest.MonkeyPatch, postgres_server: Any
) -> None:
    connection = postgres_server.airflow_connection()
    set_connection(monkeypatch, "pg_moving", connection)
    before = map_postgres_connection(hook, "pg_moving")
    set_connection(monkeypatch, "pg_moving", {**connection, "host": "db.internal", "port": 6543})

    after = map_postgres_connection(hook, "pg_moving")

    assert after == before
    store = hook.request("GET", f"externalDataStores/{after.data_store_id}/", what="get").json()
    assert store["params"]["jdbcUrl"] == f"jdbc:postgresql://db.internal:6543/{postgres_server.dbname}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"conn_type": "mysql"}, "conn_type is 'mysql'; expected 'postgres'", id="wrong-type"),
        pytest.param({"host": None}, "host is empty", id="no-host"),
        pytest.param({"schema": None}, "schema is empty; put the database name", id="no-database"),
        pytest.param({"login": None}, "login is empty", id="no-login"),
        pytest.param({"password": None}, "password is empty", id="no-password"),
    ],
)
def test_bad_postgres_connections_name_the_connection_and_field(
    hook: DataRobotHook,
    monkeypatch: pytest.MonkeyPatch,
    postgres_server: Any,
    change: dict[str, Any],
    message: str,
) -> None:
    connection = {**postgres_server.airflow_connection(), **change}
    set_connection(monkeypatch, "pg_broken", {k: v for k, v in connection.items() if v is not None})

    with pytest.raises(ConnectionMappingError) as caught:
        map_postgres_connection(hook, "pg_broken")

    assert "Airflow connection 'pg_broken'" in str(caught.value)
    assert message in str(caught.value)
    assert postgres_server.password not in str(caught.value)
    assert not named(hook, "credentials/", "name", managed_name("postgres", "pg_broken"))


def test_unknown_postgres_connection_is_named(hook: DataRobotHook) -> None:
    with pytest.raises(ConnectionMappingError, match="'pg_nowhere': not found"):
        map_postgres_connection(hook, "pg_nowhere")
