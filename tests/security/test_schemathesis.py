"""Schemathesis against the server's own OpenAPI document: no 500, no response that breaks it.

A private server (so fuzzed jobs, credentials and datasets do not disturb other tests) is fuzzed
operation by operation with bounded, derandomized examples: data that fits the schema and data
that does not, with random ids and with ids of real objects (a job, a multipart job, a credential,
a data store, a dataset and its version, a deployment) so the handlers' real logic runs. The fault
admin route is left out: a fuzzed fault plan would inject the 500s this test looks for.

Job bodies get their own strategy on top of the schema's: a valid local-file job with random JSON
in the fields the contract parses, so the settings parser sees every kind of wrong value.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from security_helpers import server_with_models_of

from airflow_batchpred.server import models

from support import LocalServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 15
JOB_FIELDS = (
    "passthroughColumns",
    "passthroughColumnsSet",
    "maxExplanations",
    "thresholdHigh",
    "thresholdLow",
    "predictionThreshold",
    "csvSettings",
    "chunkSize",
    "numConcurrent",
    "timeseriesSettings",
    "columnNamesRemapping",
    "explanationAlgorithm",
    "includeProbabilities",
    "includeProbabilitiesClasses",
    "intakeSettings",
    "outputSettings",
    "abortOnError",
    "skipDriftTracking",
    "predictionInstance",
)
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    _json_leaf,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def fuzzed_server(
    local_server: LocalServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServer]:
    server = server_with_models_of(local_server, tmp_path_factory.mktemp("fuzzed") / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _real_ids(server: LocalServer, tmp_path: Path) -> dict[str, str]:
    """Create one object of every kind; return path-parameter name → its id."""
    session = requests.Session()
    session.headers.update(server.headers)
    api = server.endpoint
    local = {"type": "localFile"}
    body = {"deploymentId": models.DEMO_REGRESSION_ID, "intakeSettings": local, "outputSettings": local}
    job = session.post(f"{api}/batchPredictions/", json=body, timeout=30).json()
    multipart = {**body, "intakeSettings": {"type": "localFile", "multipart": True}}
    session.post(f"{api}/batchPredictions/", json=multipart, timeout=30).raise_for_status()
    credential = session.post(
        f"{api}/credentials/",
        json={"name": "fuzz", "credentialType": "basic", "user": "u", "password": "fuzz-password-1"},
        timeout=30,
    )
    credential.raise_for_status()
    store = session.post(
        f"{api}/externalDataStores/",
        json={
            "type": "jdbc",
            "canonicalName": "fuzz",
            "params": {"driverId": "postgres", "jdbcUrl": "jdbc:postgresql://127.0.0.1:9/db"},
        },
        timeout=30,
    )
    sample = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "fuzz.csv", 5, seed=1)
    with sample.open("rb") as handle:
        dataset = session.post(f"{api}/datasets/fromFile/", files={"file": handle}, timeout=30)
    dataset.raise_for_status()
    ids = {
        "job_id": job["id"],
        "credential_id": credential.json()["credentialId"],
        "dataset_id": dataset.json()["catalogId"],
        "version_id": dataset.json()["catalogVersionId"],
        "status_id": dataset.json()["statusId"],
        "deployment_id": models.DEMO_REGRESSION_ID,
        "part_number": "0",
    }
    if store.ok:
        ids["data_store_id"] = store.json()["id"]
    return ids


def _job_bodies() -> st.SearchStrategy[dict[str, Any]]:
    base = {
        "deploymentId": models.DEMO_REGRESSION_ID,
        "intakeSettings": {"type": "localFile"},
        "outputSettings": {"type": "localFile"},
    }
    return st.dictionaries(st.sampled_from(JOB_FIELDS), JSON_VALUES, min_size=1, max_size=3).map(
        lambda changes: {**base, **changes}
    )


def test_the_server_survives_schemathesis(fuzzed_server: LocalServer, tmp_path: Path) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json")
    real = _real_ids(fuzzed_server, tmp_path)
    headers = fuzzed_server.headers
    failures: list[str] = []
    tested = 0

    def with_real_ids(case: Any) -> Any:
        for name in list(case.path_parameters or {}):
            if name in real:
                case.path_parameters[name] = real[name]
        return case

    for result in schema.get_all_operations():
        operation = result.ok()
        if "/admin/" in operation.path:
            continue
        strategies = [
            operation.as_strategy(mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        if operation.path_parameters:
            strategies.append(operation.as_strategy(GenerationMode.POSITIVE).map(with_real_ids))
            strategies.append(operation.as_strategy(GenerationMode.NEGATIVE).map(with_real_ids))
        if operation.method.upper() == "POST" and operation.path.endswith("/batchPredictions/"):
            strategies.append(
                st.tuples(operation.as_strategy(GenerationMode.POSITIVE), _job_bodies()).map(
                    lambda pair: _with_body(*pair)
                )
            )

        @hypothesis.given(case=st.one_of(strategies))
        @hypothesis.settings(
            max_examples=EXAMPLES * len(strategies),
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.generate],
        )
        def exercise(case: Any) -> None:
            nonlocal tested
            tested += 1
            response = case.call(headers=headers, timeout=30)
            case.validate_response(response, checks=CHECKS)

        try:
            exercise()
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")

    assert tested > 500
    assert not failures, "\n\n".join(failures)
    # Whatever was thrown at it, the server still answers and still knows the real job.
    job = requests.get(
        f"{fuzzed_server.endpoint}/batchPredictions/{real['job_id']}/", headers=headers, timeout=30
    )
    assert job.status_code == 200, job.text
    assert job.json()["id"] == real["job_id"]


def _with_body(case: Any, body: dict[str, Any]) -> Any:
    case.body = body
    case.media_type = "application/json"
    return case
