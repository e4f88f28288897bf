"""Fixtures of the object-storage tests: a local server that reaches the stand-ins, buckets in S3
(moto), Azure Blob (Azurite) and GCS (gcp-storage-emulator), and Airflow connections to them.

The stand-ins come from ``tests/conftest_services.py``. The local server is this package's own
(started with ``STORAGE_EMULATOR_HOST``, which the shared server lacks); every test here points
``datarobot_default`` at it. Connections (``AIRFLOW_CONN_*``):

* ``aws_batchpred``: keys of the moto server, ``endpoint_url`` in extra;
* ``wasb_batchpred``: Azurite's connection string;
* ``gcp_batchpred``: a freshly generated service-account key in ``keyfile_dict``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator

import pytest
from objstore_helpers import (
    AWS_CONN_ID,
    BUCKET,
    GCP_CONN_ID,
    SERVER_CHUNK_ROWS,
    WASB_CONN_ID,
    Stores,
    datarobot_connection,
    gcp_connection,
    service_account_key,
)

from services import AzuriteBlob, GCSEmulator, MotoS3
from support import LocalServer


@pytest.fixture(scope="session")
def stores(s3_server: MotoS3, azurite: AzuriteBlob, gcs_server: GCSEmulator) -> Stores:
    s3_server.create_bucket(BUCKET)
    azurite.create_container(BUCKET)
    gcs_server.create_bucket(BUCKET)
    return Stores(s3_server, azurite, gcs_server)


@pytest.fixture(scope="session")
def object_server(tmp_path_factory: pytest.TempPathFactory, gcs_server: GCSEmulator) -> Iterator[LocalServer]:
    """A local server of its own, started with ``STORAGE_EMULATOR_HOST`` (and small chunks)."""
    server = LocalServer(
        data_dir=tmp_path_factory.mktemp("object-server") / "data",
        token=secrets.token_hex(16),
        env={"STORAGE_EMULATOR_HOST": gcs_server.endpoint, "BATCHPRED_CHUNK_ROWS": str(SERVER_CHUNK_ROWS)},
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcp_key() -> dict[str, str]:
    return service_account_key()


@pytest.fixture(scope="session")
def connection_secrets(stores: Stores, gcp_key: dict[str, str]) -> list[str]:
    """Every secret value held by the test connections (what must never leak)."""
    return [
        stores.s3.secret_access_key,
        stores.azure.account_key,
        stores.azure.connection_string,
        gcp_key["private_key"],
        *[line for line in gcp_key["private_key"].splitlines() if len(line) > 20],
        gcp_key["private_key_id"],
    ]


@pytest.fixture(autouse=True)
def cloud_connections(
    monkeypatch: pytest.MonkeyPatch,
    object_server: LocalServer,
    stores: Stores,
    aws_connection_json: str,
    wasb_connection_json: str,
    gcp_key: dict[str, str],
) -> None:
    """``datarobot_default`` → this package's server; the three cloud connections → the stand-ins."""
    monkeypatch.setenv("AIRFLOW_CONN_DATAROBOT_DEFAULT", datarobot_connection(object_server))
    monkeypatch.setenv(f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}", aws_connection_json)
    monkeypatch.setenv(f"AIRFLOW_CONN_{WASB_CONN_ID.upper()}", wasb_connection_json)
    monkeypatch.setenv(f"AIRFLOW_CONN_{GCP_CONN_ID.upper()}", json.dumps(gcp_connection(gcp_key)))


@pytest.fixture
def unique_key() -> Callable[[str], str]:
    """``unique_key("in.csv")`` → ``"t-<random>/in.csv"`` (tests share buckets)."""
    prefix = f"t-{secrets.token_hex(4)}"
    return lambda name: f"{prefix}/{name}"
