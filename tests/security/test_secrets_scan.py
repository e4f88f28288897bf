"""The suite-wide secrets scan (``tests/conftest_secrets.py``) really finds a planted secret."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import conftest_secrets
from conftest_secrets import SecretScanner

from support import LocalServer

PLANTED = "planted-Secret-0123456789"


def _sqlite(path: Path, ddl: str, insert: str, *rows: tuple[Any, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    connection.execute(ddl)
    connection.executemany(insert, rows)
    connection.commit()
    connection.close()


def _clean_places(root: Path) -> tuple[Path, Path]:
    home = root / "airflow"
    (home / "logs" / "dag_id=d" / "run_id=r").mkdir(parents=True)
    (home / "logs" / "dag_id=d" / "run_id=r" / "attempt=1.log").write_text("scored 10 rows\n")
    _sqlite(
        home / "airflow.db",
        "CREATE TABLE xcom (dag_id TEXT, task_id TEXT, key TEXT, value TEXT)",
        "INSERT INTO xcom VALUES (?, ?, ?, ?)",
        ("d", "t", "return_value", json.dumps({"job_id": "abc"})),
    )
    _sqlite(
        home / "airflow.db",
        "CREATE TABLE rendered_task_instance_fields (dag_id TEXT, task_id TEXT, rendered_fields TEXT)",
        "INSERT INTO rendered_task_instance_fields VALUES (?, ?, ?)",
        ("d", "t", json.dumps({"deployment_id": "x"})),
    )
    server_dir = root / "server" / "data"
    _sqlite(
        server_dir / "batchpred.sqlite3",
        "CREATE TABLE records (kind TEXT, id TEXT, created TEXT, body TEXT, secret TEXT)",
        "INSERT INTO records VALUES (?, ?, ?, ?, ?)",
        # The secret column is where the server keeps credential secrets: not a leak.
        ("credential", "c1", "now", json.dumps({"name": "pg"}), json.dumps({"password": PLANTED})),
    )
    (root / "server" / "data-server.log").write_text("GET /api/v2/version/ 200\n")
    return home, server_dir


def _scanner() -> SecretScanner:
    scanner = SecretScanner()
    scanner.add(PLANTED, "planted test secret")
    return scanner


def test_clean_places_have_no_findings(tmp_path: Path) -> None:
    home, _ = _clean_places(tmp_path)
    scanner = _scanner()
    assert scanner.scan_places(airflow_homes=[home], search_roots=[tmp_path]) == []


def _plant(path: Path, table: str | None = None) -> None:
    if table is None:
        path.write_text(path.read_text() + f"token={PLANTED}\n")
        return
    connection = sqlite3.connect(path)
    column = {"xcom": "value", "rendered_task_instance_fields": "rendered_fields", "records": "body"}[table]
    connection.execute(f"UPDATE {table} SET {column} = ?", (json.dumps({"leak": PLANTED}),))  # noqa: S608
    connection.commit()
    connection.close()


def test_a_secret_planted_in_any_place_is_found_and_located(tmp_path: Path) -> None:
    places = {
        "task log": (lambda home, server: home / "logs" / "dag_id=d" / "run_id=r" / "attempt=1.log", None),
        "xcom": (lambda home, server: home / "airflow.db", "xcom"),
        "rendered": (lambda home, server: home / "airflow.db", "rendered_task_instance_fields"),
        "job json": (lambda home, server: server / "batchpred.sqlite3", "records"),
        "server log": (lambda home, server: server.parent / "data-server.log", None),
    }
    for name, (where, table) in places.items():
        root = tmp_path / name.replace(" ", "-")
        home, server_dir = _clean_places(root)
        target = where(home, server_dir)
        _plant(target, table)
        findings = _scanner().scan_places(airflow_homes=[home], search_roots=[root])
        assert findings, f"planted secret in the {name} was not found"
        assert all(str(target) in finding.location for finding in findings), findings
        assert all(PLANTED not in str(finding) for finding in findings), "a finding must not print the secret"
        if table is not None:
            assert (table if table != "records" else "credential record c1") in findings[0].location


def test_captured_output_and_exception_text_are_scanned() -> None:
    scanner = _scanner()
    assert scanner.scan_text("all good", "t::x (call): Captured stdout call") == []
    found = scanner.scan_text(f"ValueError: bad password {PLANTED!r}", "t::x (call): failure text")
    assert [finding.location for finding in found] == ["t::x (call): failure text"]
    # URL-encoded forms count too.
    scanner.add("p@ss/word:with-specials", "url secret")
    assert scanner.scan_text("postgresql://u:p%40ss%2Fword%3Awith-specials@h/db", "log")


def test_connection_secrets_are_collected_from_every_shape() -> None:
    scanner = SecretScanner()
    scanner.add_connection(
        json.dumps(
            {
                "conn_type": "wasb",
                "password": "wasb-password-1",
                "extra": {
                    "connection_string": "DefaultEndpointsProtocol=http;AccountName=a;"
                    "AccountKey=azure-key-123==;",
                    "keyfile_dict": json.dumps({"private_key": "-----BEGIN PRIVATE KEY-----abc"}),
                    "aws_access_key_id": "not-a-secret-id",
                    "region_name": "us-east-1",
                },
            }
        ),
        "connection x",
    )
    scanner.add_connection("postgresql://user:uri-password-9@127.0.0.1:5432/db", "connection y")
    assert set(scanner.secrets) == {
        "wasb-password-1",
        "azure-key-123==",
        "-----BEGIN PRIVATE KEY-----abc",
        "uri-password-9",
    }


def test_the_session_scanner_collects_the_fixtures_secrets(
    local_server: LocalServer, aws_connection_json: str, postgres_connection_json: str
) -> None:
    known = conftest_secrets.SCANNER.secrets
    assert local_server.token in known
    assert json.loads(aws_connection_json)["password"] in known
    assert json.loads(postgres_connection_json)["password"] in known
    assert Path(local_server.data_dir) in conftest_secrets.SCANNER.server_dirs
