"""A small fault campaign inside the suite (the full one is ``bench/fault_campaign.py``).

Eight jobs, two per variant (local file and S3, sync and deferrable), with 30 % of the responses
on every route faulted (429, 502, 503, 504, slow, dropped; before and after the handler ran):
every job completes, no duplicate job is created, and every output is byte-identical to the
fault-free run of the same input.
"""

from __future__ import annotations

import importlib.util
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services import MotoS3
from support import LocalServer

REPO = Path(__file__).resolve().parents[2]


def _campaign_module() -> Any:
    spec = importlib.util.spec_from_file_location("fault_campaign", REPO / "bench" / "fault_campaign.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fault_campaign", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def campaign_server(
    local_server: LocalServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServer]:
    data_dir = tmp_path_factory.mktemp("campaign") / "data"
    shutil.copytree(local_server.data_dir / "models", data_dir / "models")
    server = LocalServer(data_dir=data_dir, token=secrets.token_hex(16)).start()
    try:
        yield server
    finally:
        server.stop()


def test_every_job_completes_once_with_identical_output_under_30_percent_faults(
    campaign_server: LocalServer, s3_server: MotoS3, tmp_path: Path
) -> None:
    module = _campaign_module()
    campaign = module.Campaign(
        endpoint=campaign_server.endpoint,
        token=campaign_server.token,
        s3_client=s3_server.client(),
        s3_connection=s3_server.airflow_connection(),
        work_dir=tmp_path,
    )
    result = campaign.run(jobs=8, rate=0.3, seed=11, rows=150)
    print(result.summary())
    assert result.jobs_run == 8
    assert result.faults_injected >= 5, result.summary()
    assert result.failures == [], result.summary()
    assert result.jobs_completed == result.jobs_run
    assert result.duplicates == 0
    assert result.byte_mismatches == 0
