"""Fixtures for the real-Airflow end-to-end test: one Airflow stack per session."""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from airflow_stack import AirflowStack

log = logging.getLogger(__name__)

_STACKS: list[AirflowStack] = []


@pytest.fixture(scope="session")
def airflow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """A real Airflow (api-server, scheduler, dag-processor, triggerer) plus the local server.

    Teardown fails if any process of the stack had to be killed after the process groups were
    stopped (a leftover).
    """
    base_dir: Path = tmp_path_factory.mktemp("airflow-e2e")
    stack = AirflowStack(
        base_dir=base_dir,
        parallelism=2,
        # Not deferrable: Airflow 3.3.2 can fail a resumed deferred task when the scheduler drains
        # the stale "success" of its defer exit after the resumed attempt is RUNNING
        # (apache/airflow#72716, seen here on a loaded 2-core machine). The triggerer still runs.
        deferrable=False,
    ).start()
    _STACKS.append(stack)
    try:
        yield stack
    finally:
        stack.stop()
        _STACKS.remove(stack)
        log.info("Airflow stack timings: %s", stack.timings)
        assert stack.leftovers == [], f"processes left after stop (killed): {stack.leftovers}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    """On a failure while a stack runs, attach the tails of every component's log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _STACKS:
        for stack in _STACKS:
            report.sections.append((f"Airflow stack logs ({stack.base_dir})", stack.log_tails()))
