"""Durability of the server's own state: SIGKILL at random points during upload, scoring and
download loses no accepted job record.

Every job the client got a 202 for is still answered after the restart; the ones that were in
flight are FAILED with a reason, the completed ones are still COMPLETED with their result.
Seeded and bounded: a handful of trials, each killing the server once at a random moment.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from reliability_helpers import wait_for

from airflow_batchpred.server import models

from support import LocalServer

TRIALS = 6
PHASES = ("upload", "scoring", "download")


@pytest.fixture(scope="module")
def server(local_server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    data_dir = tmp_path_factory.mktemp("durable") / "data"
    shutil.copytree(local_server.data_dir / "models", data_dir / "models")
    own = LocalServer(
        data_dir=data_dir, token=secrets.token_hex(16), extra_args=("--max-concurrent-jobs", "2")
    )
    own.start()
    try:
        yield own
    finally:
        own.stop()


def _create(server: LocalServer) -> dict[str, Any]:
    local = {"type": "localFile"}
    response = requests.post(
        f"{server.endpoint}/batchPredictions/",
        json={"deploymentId": models.DEMO_REGRESSION_ID, "intakeSettings": local, "outputSettings": local},
        headers=server.headers,
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def _trickle(data: bytes, rng: random.Random) -> Iterator[bytes]:
    for offset in range(0, len(data), 256 * 1024):
        yield data[offset : offset + 256 * 1024]
        time.sleep(rng.uniform(0.0, 0.03))


def _in_background(target: Any, *args: Any) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(requests.RequestException):  # the server was killed under it
            target(*args)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _upload(server: LocalServer, job: dict[str, Any], body: Any) -> None:
    requests.put(
        job["links"]["csvUpload"],
        data=body,
        headers={**server.headers, "Content-Type": "text/csv"},
        timeout=120,
    )


def _download(server: LocalServer, job: dict[str, Any]) -> None:
    with requests.get(
        f"{server.endpoint}/batchPredictions/{job['id']}/download/",
        headers=server.headers,
        stream=True,
        timeout=120,
    ) as response:
        for _ in response.iter_content(64 * 1024):
            time.sleep(0.01)


def _status(server: LocalServer, job_id: str) -> dict[str, Any]:
    return server.get(f"batchPredictions/{job_id}/").json()  # type: ignore[no-any-return]


def test_sigkill_at_random_points_loses_no_accepted_job(server: LocalServer, tmp_path: Path) -> None:
    rng = random.Random(6)
    big = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "big.csv", 120_000, seed=3).read_bytes()
    small = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "small.csv", 50, seed=4).read_bytes()
    accepted: dict[str, str] = {}  # job id -> what it was doing when the server died ("" = done)
    results: dict[str, bytes] = {}
    for trial in range(TRIALS):
        phase = PHASES[trial % len(PHASES)]
        # A finished job, which must survive with its result.
        done = _create(server)
        _upload(server, done, small)
        wait_for(lambda done=done: _status(server, done["id"])["status"] == "COMPLETED", what="a small job")
        results[done["id"]] = server.get(f"batchPredictions/{done['id']}/download/").content
        accepted[done["id"]] = ""
        waiting = _create(server)  # accepted, never given data
        accepted[waiting["id"]] = "INITIALIZING"
        job = _create(server)
        threads = [_in_background(_upload, server, job, _trickle(big, rng))]
        if phase == "upload":
            wait_for(lambda job=job: _status(server, job["id"])["status"] == "RUNNING", what="the upload")
        elif phase == "scoring":
            wait_for(lambda job=job: _status(server, job["id"])["scoredRows"] > 0, what="scoring")
        else:
            wait_for(lambda job=job: _status(server, job["id"])["scoredRows"] > 0, what="scoring")
            threads.append(_in_background(_download, server, job))
        time.sleep(rng.uniform(0.0, 0.3))
        status_at_kill = _status(server, job["id"])["status"]
        server.restart(kill=True)
        for thread in threads:
            thread.join(60)
        accepted[job["id"]] = status_at_kill if status_at_kill != "COMPLETED" else ""
        if status_at_kill == "COMPLETED":
            results[job["id"]] = b""  # finished just before the kill: checked as COMPLETED below

        # Every accepted job is still answered, whatever it was doing.
        for job_id, was in accepted.items():
            record = _status(server, job_id)
            assert record["id"] == job_id, (trial, phase, record)
            if was:
                assert record["status"] == "FAILED", (trial, phase, job_id, was, record)
                assert f"server restarted while this job was {was}" in record["statusDetails"]
            else:
                assert record["status"] == "COMPLETED", (trial, phase, job_id, record)
                if results.get(job_id):
                    download = server.get(f"batchPredictions/{job_id}/download/")
                    assert download.content == results[job_id]
        listed = {listed["id"] for listed in server.jobs()}
        assert set(accepted) <= listed
