"""Fixtures of the server tests: the official client and a plain HTTP session on the shared
server, a private restartable server, and helpers to wait for jobs and compare predictions."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
import requests

from airflow_batchpred.contract import TERMINAL_STATUSES
from airflow_batchpred.server.models import ModelRegistry, ScoreOptions, prediction_column

from support import LocalServer


class Api:
    """A ``requests`` session bound to a server's API base, with its token."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.endpoint = server.endpoint
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {server.token}"

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.endpoint}/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, self.url(path), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post("batchPredictions/", json=body)
        assert response.status_code == 202, response.text
        return response.json()  # type: ignore[no-any-return]

    def upload(self, job: dict[str, Any], data: Any, content_type: str = "text/csv") -> requests.Response:
        return self.put(job["links"]["csvUpload"], data=data, headers={"Content-Type": content_type})

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.get(f"batchPredictions/{job_id}/")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def wait(
        self, job_id: str, until: Callable[[dict[str, Any]], bool] | None = None, timeout: float = 120.0
    ) -> dict[str, Any]:
        """Poll the job until ``until(job)`` (default: a terminal status); fail after ``timeout``."""
        until = until or (lambda job: job["status"] in {s.value for s in TERMINAL_STATUSES})
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if until(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} never reached the expected state: {job}")
            time.sleep(0.05)

    def score_csv(self, body: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
        """Create a local-file job, upload ``data``, wait for the end; return job and result."""
        job = self.create_job(body)
        response = self.upload(job, data)
        assert response.status_code == 202, response.text
        final = self.wait(job["id"])
        assert final["status"] == "COMPLETED", final
        result = self.get(f"batchPredictions/{job['id']}/download/")
        assert result.status_code == 200, result.text
        return final, result.content


@pytest.fixture(scope="session")
def api(local_server: LocalServer) -> Api:
    return Api(local_server)


@pytest.fixture(scope="session")
def dr_client(local_server: LocalServer) -> Any:
    """The official ``datarobot`` client configured for the shared local server."""
    import datarobot as dr

    return dr.Client(endpoint=local_server.endpoint, token=local_server.token)


@pytest.fixture(scope="session")
def registry(local_server: LocalServer) -> ModelRegistry:
    """The server's own model files, loaded in process through the models package."""
    return ModelRegistry(local_server.data_dir / "models")


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[LocalServer]:
    """A server of this test alone (it may be restarted or killed)."""
    server = LocalServer(data_dir=tmp_path / "data", token=secrets.token_hex(16))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def read_strings(source: Path | bytes, **parse: Any) -> pa.Table:
    """Read a CSV with every column as text (the server's view of the input)."""
    data = source.read_bytes() if isinstance(source, Path) else source
    header = pa_csv.read_csv(pa.BufferReader(data), parse_options=pa_csv.ParseOptions(**parse)).column_names
    return pa_csv.read_csv(
        pa.BufferReader(data),
        parse_options=pa_csv.ParseOptions(**parse),
        convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(header, pa.string())),
    )


def expected_predictions(
    registry: ModelRegistry, deployment_id: str, inputs: pa.Table, **options: Any
) -> pa.Table:
    """Score ``inputs`` in process with the same model the server uses."""
    batch = inputs.combine_chunks().to_batches()[0]
    return registry.scorer(deployment_id).score(batch, ScoreOptions(**options)).table


def assert_close(actual: Any, expected: Any, tolerance: float = 1e-9) -> None:
    actual_values = np.asarray([float(v) for v in actual], dtype=float)
    expected_values = np.asarray([float(v) for v in expected], dtype=float)
    assert actual_values.shape == expected_values.shape
    np.testing.assert_allclose(actual_values, expected_values, rtol=0, atol=tolerance)


def target_column(registry: ModelRegistry, deployment_id: str) -> str:
    info = registry.get(deployment_id)
    assert info is not None
    return prediction_column(info.target_name)
