"""Fixtures of the database tests: scoring tables in real databases, and the expected scores.

The PostgreSQL, fakesnow and BigQuery stand-ins come from ``conftest_services.py``; the Airflow
connections the example DAGs use are set as ``AIRFLOW_CONN_*`` variables here. Helpers live in
``database_helpers.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from database_helpers import DEPLOYMENT_ID, POSTGRES_CONN_ID, Postgres

from airflow_batchpred.server import models


@pytest.fixture(scope="session")
def scorer(local_server: Any) -> models.Scorer:
    """The server's regression model, loaded in process to compute the expected scores."""
    return models.ModelRegistry(Path(local_server.data_dir) / "models").scorer(DEPLOYMENT_ID)


@pytest.fixture(scope="session")
def postgres_conn_env(postgres_server: Any, local_server: Any) -> Iterator[str]:
    """``AIRFLOW_CONN_BATCHPRED_POSTGRES`` pointing at the PostgreSQL stand-in."""
    key = f"AIRFLOW_CONN_{POSTGRES_CONN_ID.upper()}"
    previous = os.environ.get(key)
    os.environ[key] = json.dumps(postgres_server.airflow_connection())
    yield POSTGRES_CONN_ID
    if previous is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = previous


@pytest.fixture(scope="session")
def postgres(postgres_server: Any) -> Postgres:
    return Postgres(postgres_server)
