"""Session fixtures for the stand-ins of ``services.py`` (registered from ``conftest.py``).

Each stand-in starts the first time a test asks for its fixture and stops when the session ends,
failed tests or not. Under pytest-xdist every worker starts its own, each on its own free port.
When a test fails, the tail of every running stand-in's log is attached to its report.

The ``*_connection_json`` fixtures give Airflow connections in the JSON form that
``AIRFLOW_CONN_<ID>`` environment variables take, in the shapes the Apache providers' hooks read::

    monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", aws_connection_json)
    S3Hook(aws_conn_id="aws_test").load_string(...)

The Google fixtures (``gcs_server``, ``bigquery_server``) also set ``STORAGE_EMULATOR_HOST`` /
``BIGQUERY_EMULATOR_HOST`` for the session, as the Google hooks and clients find the emulators
only through them; the previous values are restored at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

from services import (
    AzuriteBlob,
    BigQueryEmulator,
    FakesnowServer,
    GCSEmulator,
    MotoS3,
    PostgresServer,
    StandIn,
    gcp_airflow_connection,
    started_stand_ins,
    tail,
)

S = TypeVar("S", bound=StandIn)


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run(stand_in: S, environ: dict[str, str] | None = None) -> Generator[S, None, None]:
    """Start ``stand_in``, yield it, and always stop it and remove its data."""
    try:
        stand_in.start()
        with _environ(environ or {}):
            yield stand_in
    finally:
        stand_in.cleanup()


@pytest.fixture(scope="session")
def s3_server() -> Generator[MotoS3, None, None]:
    """S3 (``moto_server``) on 127.0.0.1."""
    yield from _run(MotoS3())


@pytest.fixture(scope="session")
def azurite() -> Generator[AzuriteBlob, None, None]:
    """Azure Blob Storage (Azurite) on 127.0.0.1."""
    yield from _run(AzuriteBlob())


@pytest.fixture(scope="session")
def gcs_server() -> Generator[GCSEmulator, None, None]:
    """GCS (``gcp-storage-emulator``) on 127.0.0.1; sets ``STORAGE_EMULATOR_HOST`` for the session."""
    server = GCSEmulator()
    yield from _run(server, {"STORAGE_EMULATOR_HOST": server.endpoint})


@pytest.fixture(scope="session")
def postgres_server() -> Generator[PostgresServer, None, None]:
    """A real PostgreSQL server on 127.0.0.1 with a password user and its own database."""
    yield from _run(PostgresServer())


@pytest.fixture(scope="session")
def snowflake_server() -> Generator[FakesnowServer, None, None]:
    """Snowflake (``fakesnow -s``) on 127.0.0.1; connect with ``snowflake_server.connect()``."""
    yield from _run(FakesnowServer())


@pytest.fixture(scope="session")
def bigquery_server() -> Generator[BigQueryEmulator, None, None]:
    """BigQuery (``bqemulator``) on 127.0.0.1; sets ``BIGQUERY_EMULATOR_HOST`` for the session."""
    server = BigQueryEmulator()
    yield from _run(server, {"BIGQUERY_EMULATOR_HOST": server.endpoint})


def _json(connection: dict[str, Any]) -> str:
    return json.dumps(connection)


@pytest.fixture(scope="session")
def aws_connection_json(s3_server: MotoS3) -> str:
    """An ``aws`` connection to the S3 stand-in (keys in login/password; endpoint and region in extra)."""
    return _json(s3_server.airflow_connection())


@pytest.fixture(scope="session")
def wasb_connection_json(azurite: AzuriteBlob) -> str:
    """A ``wasb`` connection to Azurite (``connection_string`` in extra)."""
    return _json(azurite.airflow_connection())


@pytest.fixture(scope="session")
def gcp_connection_json() -> str:
    """An anonymous ``google_cloud_platform`` connection (project id in extra).

    It names no endpoint: request ``gcs_server`` and/or ``bigquery_server`` as well, whose
    environment variables route the Google hooks to the emulators.
    """
    return _json(gcp_airflow_connection())


@pytest.fixture(scope="session")
def postgres_connection_json(postgres_server: PostgresServer) -> str:
    """A ``postgres`` connection to the PostgreSQL stand-in (database name in ``schema``)."""
    return _json(postgres_server.airflow_connection())


@pytest.fixture(scope="session")
def snowflake_connection_json(snowflake_server: FakesnowServer) -> str:
    """A ``snowflake`` connection to the fakesnow server (account, database, warehouse in extra).

    ``SnowflakeHook`` ignores its host, port and extra ``protocol``; see ``FakesnowServer``.
    """
    return _json(snowflake_server.airflow_connection())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the log tail of every running stand-in to a failed test's report."""
    report = yield
    if report.failed:
        for service in started_stand_ins():
            report.sections.append(
                (f"stand-in log: {service.name} ({service.log_file})", tail(service.log_file))
            )
    return report
