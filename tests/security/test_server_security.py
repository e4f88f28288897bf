"""Server security: auth on every route but ``version/``, loopback by default, no path escapes,
bounded JSON bodies, and no unpickling without the server operator's opt-in."""

from __future__ import annotations

import http.client
import os
import pickle
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import pytest
import requests
from fastapi.routing import APIRoute
from sklearn.linear_model import LinearRegression

from airflow_batchpred.server.app import create_app
from airflow_batchpred.server.config import ServerSettings
from airflow_batchpred.server.models import DEMO_REGRESSION_ID, ModelRegistry, UnsafeModelError

from support import LOOPBACK, LocalServer, ServiceProcess, free_port, wait_for_http

PUBLIC_API_ROUTES = {"/api/v2/version/"}
#: Not API routes: the interactive documentation and the schema it reads (no data, no secrets).
PUBLIC_DOC_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect"}
ANY_ID = "0" * 24


def _every_route(local_server: LocalServer, tmp_path: Path) -> list[tuple[str, str]]:
    """(method, path) of every route the application has, read from the app itself."""
    settings = ServerSettings(data_dir=tmp_path / "walk", tokens=("walk-token-0123",))
    app = create_app(settings, models=ModelRegistry(local_server.data_dir / "models"))
    routes: list[tuple[str, str]] = []
    for route in app.routes:
        methods = sorted(getattr(route, "methods", None) or {"GET"})
        for method in methods:
            if method != "HEAD":
                routes.append((method, route.path))  # type: ignore[attr-defined]
    assert sum(isinstance(route, APIRoute) for route in app.routes) >= 30
    return routes


def test_every_route_but_version_needs_the_token(local_server: LocalServer, tmp_path: Path) -> None:
    routes = _every_route(local_server, tmp_path)
    unauthenticated: set[str] = set()
    for method, template in routes:
        path = re.sub(r"\{[^}]+\}", ANY_ID, template)
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-0000"},
            {"Authorization": f"Basic {local_server.token}"},  # right token, wrong scheme
            {"Authorization": "Token "},
        ):
            response = requests.request(method, f"{local_server.url}{path}", headers=headers, timeout=30)
            if response.status_code != 401:
                unauthenticated.add(template)
                continue
            assert response.headers["content-type"] == "application/json", (method, path)
            assert "Authorization: Token <token>" in response.json()["message"]
            assert "Bearer" in response.headers["www-authenticate"]
    assert unauthenticated == PUBLIC_API_ROUTES | PUBLIC_DOC_ROUTES
    assert requests.get(f"{local_server.endpoint}/version/", timeout=30).status_code == 200
    # The schema says the same: one security scheme everywhere but version/.
    document = requests.get(f"{local_server.url}/openapi.json", timeout=30).json()
    assert document["security"] == [{"apiToken": []}]
    open_operations = {
        path
        for path, operations in document["paths"].items()
        for op in operations.values()
        if op.get("security") == []
    }
    assert open_operations == PUBLIC_API_ROUTES


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                found.add(address)
    return found


def test_the_server_binds_loopback_by_default(local_server: LocalServer, tmp_path: Path) -> None:
    shutil.copytree(local_server.data_dir / "models", tmp_path / "data" / "models")  # no retraining
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BATCHPRED_")}
    args = [
        *(os.sys.executable, "-m", "airflow_batchpred.server", "serve"),  # type: ignore[attr-defined]
        *("--port", str(port), "--data-dir", str(tmp_path / "data"), "--token", "bind-token-0123"),
    ]
    service = ServiceProcess(args, tmp_path / "serve.log", env=env).start()
    try:
        wait_for_http(
            f"http://{LOOPBACK}:{port}/api/v2/version/", process=service.process, log_file=service.log_file
        )
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
    finally:
        service.stop()
    assert ServerSettings().host == "127.0.0.1"


def _raw(server: LocalServer, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """Send ``path`` exactly as written (no client-side normalisation of ``..``)."""
    connection = http.client.HTTPConnection(LOOPBACK, server.port, timeout=30)
    try:
        headers = {**server.headers, "Content-Type": "text/csv"}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _tree(root: Path) -> set[Path]:
    return {path for path in root.rglob("*")} if root.exists() else set()


TRAVERSALS = [
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "..%2F..",
    "%2Fetc%2Fpasswd",
    "..",
    "%2E%2E",
    "abcdef0123456789abcdef01%2F..%2F..",
]


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_ids_in_paths_cannot_escape_the_data_dir(own_server: LocalServer, bad: str) -> None:
    outside = own_server.data_dir.parent
    before = _tree(outside) - _tree(own_server.data_dir)
    for method, template in (
        ("GET", "/api/v2/batchPredictions/{}/"),
        ("PUT", "/api/v2/batchPredictions/{}/csvUpload/"),
        ("PUT", f"/api/v2/batchPredictions/{ANY_ID}/csvUpload/part/{{}}/"),
        ("GET", "/api/v2/batchPredictions/{}/download/"),
        ("GET", "/api/v2/datasets/{}/versions/"),
        ("GET", "/api/v2/credentials/{}/"),
        ("DELETE", "/api/v2/externalDataStores/{}/"),
    ):
        status, body = _raw(own_server, method, template.format(bad), b"a,b\n1,2\n")
        assert status in (404, 422), (method, template, bad, status, body)
        assert b"does not exist" in body or b"not found" in body.lower() or b"Not found" in body
    after = _tree(outside) - _tree(own_server.data_dir)
    assert {path for path in after - before if not path.name.endswith(".log")} == set()


def test_dataset_file_names_cannot_place_files_outside(own_server: LocalServer, tmp_path: Path) -> None:
    escape_dir = tmp_path / "escape"
    escape_dir.mkdir()
    (escape_dir / "link").symlink_to(tmp_path)  # a symlink a name might try to go through
    names = [
        "../../escape.csv",
        str(escape_dir / "absolute.csv"),
        "link/../../via-link.csv",
        "..\\..\\win.csv",
    ]
    for name in names:
        response = requests.post(
            f"{own_server.endpoint}/datasets/fromFile/",
            headers=own_server.headers,
            files={"file": (name, b"a,b\n1,2\n", "text/csv")},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        version = requests.get(
            f"{own_server.endpoint}/datasets/{response.json()['catalogId']}/",
            headers=own_server.headers,
            timeout=30,
        ).json()
        stored = list((own_server.data_dir / "datasets").rglob(f"{version['versionId']}.csv"))
        assert len(stored) == 1
        assert stored[0].resolve().is_relative_to(own_server.data_dir.resolve())
    for escaped in ("escape.csv", "absolute.csv", "via-link.csv", "win.csv"):
        assert not list(tmp_path.parent.rglob(escaped)), escaped


@pytest.fixture
def real_objects(api_session: requests.Session, local_server: LocalServer) -> dict[str, str]:
    local = {"type": "localFile"}
    job = api_session.post(
        f"{local_server.endpoint}/batchPredictions/",
        json={"deploymentId": DEMO_REGRESSION_ID, "intakeSettings": local, "outputSettings": local},
        timeout=30,
    )
    credential = api_session.post(
        f"{local_server.endpoint}/credentials/",
        json={
            "name": f"limit-{secrets.token_hex(4)}",
            "credentialType": "basic",
            "user": "u",
            "password": "p",
        },
        timeout=30,
    )
    store = api_session.post(
        f"{local_server.endpoint}/externalDataStores/",
        json={
            "type": "jdbc",
            "canonicalName": f"limit-{secrets.token_hex(4)}",
            "params": {"driverId": "postgres", "jdbcUrl": "jdbc:postgresql://127.0.0.1:9/db"},
        },
        timeout=30,
    )
    assert job.status_code == 202, job.text
    assert credential.status_code == 201, credential.text
    assert store.ok, store.text
    return {
        "job": job.json()["id"],
        "credential": credential.json()["credentialId"],
        "store": store.json()["id"],
    }


@pytest.fixture
def api_session(local_server: LocalServer) -> Iterator[requests.Session]:
    session = requests.Session()
    session.headers.update(local_server.headers)
    yield session
    session.close()


def _chunks(total: int) -> Iterator[bytes]:
    yield b'{"name": "'
    sent = 0
    while sent < total:
        yield b"x" * 65536
        sent += 65536
    yield b'"}'


def test_every_json_body_is_limited_with_413(
    api_session: requests.Session, local_server: LocalServer, real_objects: dict[str, str]
) -> None:
    routes = [
        ("POST", "batchPredictions/"),
        ("POST", "batchPredictions/fromExisting/"),
        ("PATCH", f"batchPredictions/{real_objects['job']}/"),
        ("POST", "credentials/"),
        ("PATCH", f"credentials/{real_objects['credential']}/"),
        ("POST", "externalDataStores/"),
        ("PATCH", f"externalDataStores/{real_objects['store']}/"),
        ("PUT", "admin/faults/"),
    ]
    jobs_before = len(local_server.jobs())
    oversized = 2 * 1024 * 1024
    for method, path in routes:
        url = f"{local_server.endpoint}/{path}"
        declared = api_session.request(
            method,
            url,
            data=b'{"name": "' + b"x" * oversized + b'"}',
            headers={"Content-Type": "application/json"},
        )
        # Chunked, without Content-Length: the limit holds while the body streams in.
        streamed = api_session.request(
            method, url, data=_chunks(oversized), headers={"Content-Type": "application/json"}
        )
        for response in (declared, streamed):
            assert response.status_code == 413, (method, path, response.status_code, response.text[:200])
            assert response.headers["content-type"] == "application/json"
            assert "larger than the limit of 1048576 bytes" in response.json()["message"]
    assert len(local_server.jobs()) == jobs_before
    faults = api_session.get(f"{local_server.endpoint}/admin/faults/").json()
    assert faults["plan"] is None


class _Marker:
    """Unpickling this runs ``Path.touch`` on the marker: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_model_files_are_never_unpickled_without_the_opt_in(tmp_path: Path) -> None:
    marker = tmp_path / "pickle-ran"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Marker(marker)))
    registry = ModelRegistry(tmp_path / "models")
    with pytest.raises(UnsafeModelError, match="allow_unsafe"):
        registry.register(evil, target_name="y", target_type="Regression")
    assert not marker.exists()

    # A pickle model registered with the opt-in, swapped for the evil file, then served without it.
    model = LinearRegression().fit([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]], [0.0, 1.0, 2.0])
    benign = tmp_path / "benign.joblib"
    joblib.dump(model, benign)
    unsafe = ModelRegistry(tmp_path / "models", allow_unsafe=True)
    info = unsafe.register(benign, target_name="y", target_type="Regression", feature_names=["a", "b"])
    stored = next((tmp_path / "models").glob(f"{info.id}.pkl"))
    stored.write_bytes(pickle.dumps(_Marker(marker)))
    safe = ModelRegistry(tmp_path / "models")
    with pytest.raises(UnsafeModelError, match="allow_unsafe"):
        safe.scorer(info.id)
    assert not marker.exists()
    # The opt-in really does load it (which is why it is an opt-in).
    with pytest.raises(Exception):  # noqa: PT011 - the evil object is not a model
        ModelRegistry(tmp_path / "models", allow_unsafe=True).scorer(info.id)
    assert marker.exists()
