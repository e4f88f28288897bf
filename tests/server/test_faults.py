"""Fault injection: 429 with Retry-After, 5xx, dropped connections, before or after the handler."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import Api

from airflow_batchpred.server.models import DEMO_REGRESSION_ID

from support import LocalServer

FAULTS = "admin/faults/"
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture
def faults(api: Api) -> Iterator[Api]:
    """The shared server's fault admin; faults are cleared after the test."""
    try:
        yield api
    finally:
        api.delete(FAULTS)


def set_plan(api: Api, **plan: Any) -> dict[str, Any]:
    response = api.put(FAULTS, json=plan)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_429_carries_retry_after_and_json(faults: Api) -> None:
    set_plan(faults, rate=1.0, kinds=["429"], routes="/deployments/$", retryAfter=3)

    response = faults.get("deployments/")
    other = faults.get(f"deployments/{DEMO_REGRESSION_ID}/")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.headers["content-type"] == "application/json"
    assert "Too many requests" in response.json()["message"]
    assert other.status_code == 200
    counters = faults.get(FAULTS).json()
    assert counters["injected"] == {"429": 1}
    assert counters["plan"]["routes"] == "/deployments/$"


def test_official_client_retries_through_limited_faults(faults: Api, dr_client: Any) -> None:
    import datarobot as dr

    job = faults.create_job({"deploymentId": DEMO_REGRESSION_ID})
    set_plan(
        faults,
        rate=1.0,
        kinds=["429", "503"],
        routes=f"/batchPredictions/{job['id']}/$",
        retryAfter=0,
        limit=3,
    )

    fetched = dr.BatchPredictionJob.get(job["id"])

    assert fetched.id == job["id"]
    assert faults.get(FAULTS).json()["injectedTotal"] == 3


def test_fault_before_the_handler_creates_nothing(faults: Api) -> None:
    before = len(faults.server.jobs())
    set_plan(faults, rate=1.0, kinds=["503"], routes="/batchPredictions/$", methods=["POST"], phase="before")

    response = faults.post("batchPredictions/", json={"deploymentId": DEMO_REGRESSION_ID})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    faults.delete(FAULTS)
    assert len(faults.server.jobs()) == before


@pytest.mark.parametrize("kind", ["500", "drop"])
def test_fault_after_the_handler_really_created_the_job(faults: Api, kind: str) -> None:
    before = {job["id"] for job in faults.server.jobs()}
    set_plan(faults, rate=1.0, kinds=[kind], routes="/batchPredictions/$", methods=["POST"], phase="after")

    if kind == "drop":
        with pytest.raises(requests.ConnectionError):
            faults.post("batchPredictions/", json={"deploymentId": DEMO_REGRESSION_ID})
    else:
        response = faults.post("batchPredictions/", json={"deploymentId": DEMO_REGRESSION_ID})
        assert response.status_code == 500
        assert "injected fault" in response.json()["message"]
    faults.delete(FAULTS)

    created = [job for job in faults.server.jobs() if job["id"] not in before]
    assert len(created) == 1
    assert created[0]["jobSpec"]["deploymentId"] == DEMO_REGRESSION_ID


def test_drop_closes_the_connection_without_an_answer(faults: Api) -> None:
    set_plan(faults, rate=1.0, kinds=["drop"], routes="/deployments/$")

    with pytest.raises(requests.ConnectionError):
        faults.get("deployments/")

    assert faults.get(FAULTS).json()["injected"] == {"drop": 1}


def test_slow_answers_normally(faults: Api) -> None:
    set_plan(faults, rate=1.0, kinds=["slow"], routes="/deployments/$", slowSeconds=0.2)

    response = faults.get("deployments/")

    assert response.status_code == 200
    assert response.json()["totalCount"] == 3
    assert faults.get(FAULTS).json()["injected"] == {"slow": 1}


def test_admin_route_needs_auth_and_is_never_faulted(faults: Api) -> None:
    anonymous = requests.put(f"{faults.endpoint}/{FAULTS}", json={"rate": 1.0}, timeout=30)
    set_plan(faults, rate=1.0, kinds=["503"], routes=".*")

    admin = faults.get(FAULTS)
    other = faults.get("deployments/")

    assert anonymous.status_code == 401
    assert admin.status_code == 200
    assert admin.json()["plan"]["kinds"] == ["503"]
    assert other.status_code == 503


@pytest.mark.parametrize(
    ("plan", "text"),
    [
        ({"rate": 2}, "rate must be between 0 and 1"),
        ({"kinds": ["418"]}, "kinds must be a non-empty list"),
        ({"phase": "during"}, "phase must be 'before' or 'after'"),
        ({"routes": "("}, "not a valid regular expression"),
        ({"bogus": 1}, "unknown field(s) bogus"),
    ],
)
def test_invalid_fault_plans_are_422(faults: Api, plan: dict[str, Any], text: str) -> None:
    response = faults.put(FAULTS, json=plan)

    assert response.status_code == 422
    assert text in response.json()["message"]
    assert faults.get(FAULTS).json()["plan"] is None


def test_faults_from_the_command_line(tmp_path: Path) -> None:
    plan = {"rate": 1.0, "kinds": ["502"], "routes": "/deployments/"}
    server = LocalServer(
        data_dir=tmp_path / "data", token=secrets.token_hex(8), extra_args=("--faults", json.dumps(plan))
    )
    server.start()
    try:
        response = server.get("deployments/")
        version = requests.get(f"{server.endpoint}/version/", timeout=30)
    finally:
        server.stop()

    assert response.status_code == 502
    assert "Bad gateway" in response.json()["message"]
    assert version.status_code == 200
