"""Fixtures of the provider tests: a hook on the local server, fault injection, busy workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from batchpred_helpers import BusyWorkers, Faults

from airflow_batchpred.hooks.datarobot import DataRobotHook


@pytest.fixture
def hook(local_server: Any) -> Iterator[DataRobotHook]:
    """A hook on the local server with fast retries."""
    hook = DataRobotHook(retry_limit=3, retry_delay=0.05, max_retry_delay=2.0)
    yield hook
    hook.close()


@pytest.fixture
def faults(local_server: Any) -> Iterator[Faults]:
    injector = Faults(local_server)
    injector.clear()
    yield injector
    injector.clear()


@pytest.fixture
def jobs_of(local_server: Any) -> Callable[[str], list[dict[str, Any]]]:
    """Every job the server holds for a deployment (``GET batchPredictions/?deploymentId=``)."""

    def _jobs(deployment_id: str) -> list[dict[str, Any]]:
        return local_server.jobs(deploymentId=deployment_id)

    return _jobs


@pytest.fixture
def busy_workers(hook: DataRobotHook, local_server: Any, tmp_path: Path) -> Iterator[BusyWorkers]:
    from airflow_batchpred.server import models

    sample = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "blocker.csv", 1, seed=3)
    header, row = sample.read_bytes().splitlines(keepends=True)[:2]
    with BusyWorkers(hook, models.DEMO_REGRESSION_ID, header, row) as busy:
        yield busy
