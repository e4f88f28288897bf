"""Shared test setup: an isolated Airflow home, the dags folder, and the local server.

Airflow reads its configuration at import time, so the environment is set here, at module import,
before any test module imports Airflow. Each pytest-xdist worker gets its own home, database and
server.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import LocalServer

pytest_plugins = ["conftest_services", "conftest_secrets"]

if "airflow" in sys.modules:
    raise RuntimeError(
        "Airflow was imported before tests/conftest.py set AIRFLOW_HOME: its settings would point at "
        "~/airflow. Keep Airflow imports out of pytest's ini options and early plugins."
    )

REPO_ROOT = Path(__file__).resolve().parents[1]
SESSION_DIR = Path(tempfile.mkdtemp(prefix="batchpred-tests-"))
AIRFLOW_HOME = SESSION_DIR / "airflow"
DAGS_FOLDER = SESSION_DIR / "dags"

os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}"
os.environ.setdefault("AIRFLOW__OPENLINEAGE__DISABLED", "True")
os.environ.pop("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", None)


def _link_dags() -> None:
    """Fill the dags folder with links to every example DAG and test DAG."""
    DAGS_FOLDER.mkdir(parents=True, exist_ok=True)
    for source in (REPO_ROOT / "example_dags", REPO_ROOT / "tests" / "dags"):
        for dag_file in sorted(source.glob("*.py")):
            target = DAGS_FOLDER / dag_file.name
            if not target.exists():
                target.symlink_to(dag_file)


def pytest_configure(config: pytest.Config) -> None:
    # Declared here, not in pyproject.toml: naming an Airflow class there makes pytest import
    # Airflow before the environment above exists.
    config.addinivalue_line("filterwarnings", "error::airflow.exceptions.AirflowProviderDeprecationWarning")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return SESSION_DIR


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The local batch-prediction server on loopback, shared by the session.

    Also points the default ``datarobot`` connection (``AIRFLOW_CONN_DATAROBOT_DEFAULT``) at it.
    """
    server = LocalServer(data_dir=tmp_path_factory.mktemp("server") / "data", token=secrets.token_hex(16))
    server.start()
    previous = os.environ.get("AIRFLOW_CONN_DATAROBOT_DEFAULT")
    os.environ["AIRFLOW_CONN_DATAROBOT_DEFAULT"] = datarobot_connection_json(server)
    try:
        yield server
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("AIRFLOW_CONN_DATAROBOT_DEFAULT", None)
        else:
            os.environ["AIRFLOW_CONN_DATAROBOT_DEFAULT"] = previous


def datarobot_connection_json(server: LocalServer, **extra: Any) -> str:
    """The JSON form of a ``datarobot`` connection to ``server`` (for ``AIRFLOW_CONN_*``)."""
    return json.dumps(
        {
            "conn_type": "datarobot",
            "password": server.token,
            "extra": {"endpoint": server.endpoint, **extra},
        }
    )


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata database and a dags folder holding every example and test DAG."""
    _link_dags()
    from airflow.utils import db

    db.initdb()
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def run_dag(airflow_db: Path) -> Callable[..., Any]:
    """Run a DAG from the dags folder with ``dag.test()`` and return its DagRun.

    The DAG's file is parsed afresh for every run, so nothing a run changes on the DAG object
    (params, for one) carries over into the next run.
    """
    from airflow.dag_processing.dagbag import DagBag

    files: dict[str, str] = {}

    def _run(dag_id: str, conf: dict[str, Any] | None = None, **test_kwargs: Any) -> Any:
        _link_dags()
        if dag_id not in files:
            bag = DagBag(dag_folder=str(DAGS_FOLDER))
            files.update({found_id: dag.fileloc for found_id, dag in bag.dags.items()})
            if dag_id not in files:
                raise LookupError(
                    f"DAG {dag_id!r} not found in {DAGS_FOLDER}; import errors: {bag.import_errors}"
                )
        dag = DagBag(dag_folder=files[dag_id]).dags[dag_id]
        return dag.test(run_conf=conf, **test_kwargs)

    return _run


@pytest.fixture
def xcom_of() -> Callable[..., Any]:
    """Read an XCom value written during a ``dag.test()`` run: ``xcom_of(dag_run, task_id, key)``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    def _read(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
        with create_session() as session:
            row = (
                session.query(XComModel)
                .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key)
                .one_or_none()
            )
            if row is None:
                raise LookupError(f"no XCom {key!r} for task {task_id!r} in run {dag_run.run_id}")
            return row.value

    return _read


@pytest.fixture
def task_states() -> Callable[[Any], dict[str, tuple[str | None, int]]]:
    """``task_states(dag_run)`` → ``{task_id: (state, try_number)}``."""
    from airflow.utils.session import create_session

    def _states(dag_run: Any) -> dict[str, tuple[str | None, int]]:
        with create_session() as session:
            return {
                ti.task_id: (str(getattr(ti.state, "value", ti.state)) if ti.state else None, ti.try_number)
                for ti in dag_run.get_task_instances(session=session)
            }

    return _states
