"""End to end through a real Airflow 3: trigger the example DAG over the REST API and inspect it.

The stack (``airflow_stack.py``) runs api-server, scheduler, dag-processor and triggerer as separate
processes with the provider installed, plus the local batch-prediction server. Everything is
checked through HTTP: Airflow's public REST API (``/api/v2``), the UI's own endpoint for the
connection form (``/ui/connections/hook_meta``) and the local server's job API.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from airflow_stack import EXAMPLE_DAG_ID, AirflowStack

from airflow_batchpred.server.models import DEMO_REGRESSION_ID, write_demo_csv

from support import LOOPBACK

# One Airflow stack per session: with pytest-xdist, run with --dist loadgroup to keep these together.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real_airflow")]

TASK_ID = "score_local_file"
ROWS = 500
LINK_NAME = "DataRobot Batch Prediction Job"


def _data_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def finished_run(airflow_stack: AirflowStack) -> dict[str, Any]:
    """Trigger ``example_batchpred_local_file`` over the REST API and wait for it to finish."""
    input_file = airflow_stack.data_dir / "input.csv"
    output_file = airflow_stack.data_dir / "predictions.csv"
    write_demo_csv(DEMO_REGRESSION_ID, input_file, ROWS, seed=8)
    airflow_stack.wait_for_dag(EXAMPLE_DAG_ID)
    started = time.monotonic()
    run = airflow_stack.trigger(
        EXAMPLE_DAG_ID,
        {
            "input_file": str(input_file),
            "output_file": str(output_file),
            "deployment_id": DEMO_REGRESSION_ID,
            "max_explanations": 3,
        },
    )
    finished = airflow_stack.wait_for_run(EXAMPLE_DAG_ID, run["dag_run_id"], timeout=120)
    airflow_stack.timings["dag_run_s"] = time.monotonic() - started
    assert airflow_stack.server is not None
    return {"run": finished, "input_file": input_file, "output_file": output_file}


def test_dag_run_succeeds_and_writes_every_row(airflow_stack: AirflowStack, finished_run: dict) -> None:
    run = finished_run["run"]
    assert run["state"] == "success", run
    assert run["conf"]["deployment_id"] == DEMO_REGRESSION_ID

    response = airflow_stack.api(
        "GET", f"/api/v2/dags/{EXAMPLE_DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/{TASK_ID}"
    )
    assert response.status_code == 200, response.text
    task_instance = response.json()
    assert task_instance["state"] == "success"
    assert task_instance["operator"] == "DataRobotLocalFileBatchPredictionOperator"

    rows = _data_rows(finished_run["output_file"])
    assert len(rows) == ROWS
    inputs = _data_rows(finished_run["input_file"])
    # passthrough_columns_set="all": every input column comes back, row for row.
    assert [row[name] for row in rows for name in inputs[0]] == [
        row[name] for row in inputs for name in inputs[0]
    ]
    prediction_columns = [name for name in rows[0] if name.endswith("_PREDICTION")]
    assert prediction_columns, list(rows[0])
    assert all(row[prediction_columns[0]] != "" for row in rows)


def test_task_log_over_rest(airflow_stack: AirflowStack, finished_run: dict) -> None:
    """The task log, read through the REST API, tells which job ran and how it ended."""
    assert airflow_stack.server is not None
    run_id = finished_run["run"]["dag_run_id"]
    response = airflow_stack.api(
        "GET",
        f"/api/v2/dags/{EXAMPLE_DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/logs/1",
        params={"full_content": "true"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    events = [str(entry.get("event")) for entry in response.json()["content"] if isinstance(entry, dict)]
    job_lines = [event for event in events if event.startswith("Batch prediction job ")]
    assert len(job_lines) == 1, events
    assert f"{airflow_stack.server.endpoint}/batchPredictions/" in job_lines[0]
    completed = [event for event in events if " COMPLETED: " in event]
    assert completed, events
    assert f"{ROWS} rows scored, 0 failed" in completed[-1]


def test_extra_link_points_at_the_completed_job(airflow_stack: AirflowStack, finished_run: dict) -> None:
    assert airflow_stack.server is not None
    run_id = finished_run["run"]["dag_run_id"]
    response = airflow_stack.api(
        "GET", f"/api/v2/dags/{EXAMPLE_DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/links"
    )
    assert response.status_code == 200, response.text
    links = response.json()["extra_links"]
    assert set(links) == {LINK_NAME}, links
    url = links[LINK_NAME]
    prefix = f"{airflow_stack.server.endpoint}/batchPredictions/"
    assert url, links
    assert url.startswith(prefix), url
    assert url.endswith("/"), url
    job_id = url[len(prefix) :].rstrip("/")
    assert job_id, url
    assert "/" not in job_id, url

    job = airflow_stack.server.get(f"batchPredictions/{job_id}/")
    assert job.status_code == 200, job.text
    body = job.json()
    assert body["id"] == job_id
    assert body["status"] == "COMPLETED"
    assert body["links"]["self"] == url
    assert body["jobSpec"]["deploymentId"] == DEMO_REGRESSION_ID
    assert body["scoredRows"] == ROWS


def test_connection_form_metadata(airflow_stack: AirflowStack) -> None:
    """The endpoint the UI's "Add Connection" form reads lists ``datarobot`` with its fields."""
    response = airflow_stack.api("GET", "/ui/connections/hook_meta")
    assert response.status_code == 200, response.text
    entries = {entry["connection_type"]: entry for entry in response.json()}
    assert "datarobot" in entries, sorted(entries)
    meta = entries["datarobot"]
    assert meta["hook_name"] == "DataRobot"
    assert meta["hook_class_name"] == "airflow_batchpred.hooks.datarobot.DataRobotHook"

    standard = meta["standard_fields"]
    assert standard is not None, meta
    assert standard["password"]["hidden"] is False
    assert standard["password"]["title"] == "API Token"
    assert (standard["password"]["placeholder"] or "").startswith("DataRobot API key"), standard
    for hidden in ("host", "port", "login", "url_schema"):
        assert standard[hidden]["hidden"] is True, (hidden, standard[hidden])

    extra = meta["extra_fields"]
    assert extra is not None, meta
    assert {"endpoint", "timeout_seconds", "verify_ssl"} <= set(extra), sorted(extra)
    endpoint = extra["endpoint"]
    assert endpoint["schema"]["title"] == "Endpoint", endpoint
    assert endpoint["schema"]["type"] == "string", endpoint
    assert "/api/v2" in (endpoint.get("description") or ""), endpoint


def test_connection_created_over_rest_hides_the_token(airflow_stack: AirflowStack) -> None:
    assert airflow_stack.server is not None
    token = "e2e-" + airflow_stack.marker + "-token"
    extra = {"endpoint": airflow_stack.server.endpoint, "timeout_seconds": 30}
    created = airflow_stack.api(
        "POST",
        "/api/v2/connections",
        json={
            "connection_id": "datarobot_e2e",
            "conn_type": "datarobot",
            "password": token,
            "extra": json.dumps(extra),
        },
    )
    assert created.status_code == 201, created.text
    assert token not in created.text

    fetched = airflow_stack.api("GET", "/api/v2/connections/datarobot_e2e")
    assert fetched.status_code == 200, fetched.text
    body = fetched.json()
    assert token not in fetched.text
    assert body["conn_type"] == "datarobot"
    assert body["password"] == "***"
    assert json.loads(body["extra"]) == extra

    listed = airflow_stack.api("GET", "/api/v2/connections")
    assert listed.status_code == 200, listed.text
    assert token not in listed.text
    assert "datarobot_e2e" in {conn["connection_id"] for conn in listed.json()["connections"]}


def test_every_listening_socket_is_on_loopback(airflow_stack: AirflowStack) -> None:
    pids = airflow_stack.pids()
    assert {component.process.pid for component in airflow_stack.components.values()} <= pids
    listening = [
        (conn.pid, conn.laddr.ip, conn.laddr.port)
        for conn in psutil.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids
    ]
    ports = {port for _, _, port in listening}
    assert airflow_stack.api_port in ports, listening
    assert airflow_stack.server is not None
    assert airflow_stack.server.port in ports, listening
    assert all(ip == LOOPBACK for _, ip, _ in listening), listening
