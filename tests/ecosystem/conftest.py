"""Fixtures of the ecosystem tests (OpenLineage, Assets): connections to the stand-ins, demo data.

The local server (``local_server``), S3 (moto) and PostgreSQL stand-ins come from
``tests/conftest.py`` and ``tests/conftest_services.py``; the shared server reaches both directly.
"""

from __future__ import annotations

import os

import pytest


def _reread_airflow_settings() -> None:
    """Point Airflow at the temporary home of ``tests/conftest.py``.

    ``pyproject.toml``'s ``filterwarnings`` names an Airflow warning class, so pytest imports Airflow
    before ``tests/conftest.py`` sets ``AIRFLOW_HOME``. Same work-around as ``tests/provider/conftest.py``.
    """
    from airflow import settings
    from airflow.configuration import conf

    if os.path.expanduser(conf.get("core", "dags_folder")) != settings.DAGS_FOLDER or (
        conf.get("database", "sql_alchemy_conn") != settings.SQL_ALCHEMY_CONN
    ):
        os.makedirs(os.environ["AIRFLOW_HOME"], exist_ok=True)
        settings.configure_vars()
        settings.reconfigure_orm()


_reread_airflow_settings()

#: Connection ids the ecosystem tests set (``AIRFLOW_CONN_*``).
AWS_CONN_ID = "aws_ecosystem"
POSTGRES_CONN_ID = "postgres_ecosystem"


@pytest.fixture
def aws_conn(monkeypatch: pytest.MonkeyPatch, aws_connection_json: str) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}", aws_connection_json)
    return AWS_CONN_ID


@pytest.fixture
def postgres_conn(monkeypatch: pytest.MonkeyPatch, postgres_connection_json: str) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{POSTGRES_CONN_ID.upper()}", postgres_connection_json)
    return POSTGRES_CONN_ID
