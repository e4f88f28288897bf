"""A DELETE stops a running multi-chunk job promptly; a restarted server still answers for every
job it accepted, and jobs that were in flight end FAILED with the reason."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from conftest import Api

from airflow_batchpred.server.models import DEMO_REGRESSION_ID, write_demo_csv

from support import LocalServer


def trickle(path: Path, piece: int = 64 * 1024, pause: float = 0.03) -> Iterator[bytes]:
    """The file in small pieces with pauses: an upload that keeps its job RUNNING for a while."""
    with path.open("rb") as handle:
        while data := handle.read(piece):
            yield data
            time.sleep(pause)


def upload_in_background(api: Api, job: dict[str, Any], data: Any) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(api.upload(job, data))
        except requests.RequestException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_delete_aborts_a_running_multi_chunk_job_within_two_seconds(
    api: Api, local_server: LocalServer, tmp_path: Path
) -> None:
    source = write_demo_csv(DEMO_REGRESSION_ID, tmp_path / "big.csv", 200_000, seed=21)
    job = api.create_job({"deploymentId": DEMO_REGRESSION_ID})
    thread, outcome = upload_in_background(api, job, trickle(source))
    # More rows scored than one chunk holds (20 000): the job is running through several chunks.
    running = api.wait(job["id"], until=lambda j: j["status"] == "RUNNING" and j["scoredRows"] > 20_000)
    partial = local_server.data_dir / "jobs" / job["id"] / "result.csv.partial"
    assert partial.exists()

    asked = time.monotonic()
    response = api.delete(f"batchPredictions/{job['id']}/")
    aborted = api.wait(job["id"], until=lambda j: j["status"] == "ABORTED", timeout=2.0)
    while partial.exists() and time.monotonic() - asked < 2.0:
        time.sleep(0.02)
    elapsed = time.monotonic() - asked

    assert response.status_code == 202
    assert elapsed < 2.0
    assert not partial.exists(), "the runner did not discard the half-written output"
    assert "aborted by request" in aborted["statusDetails"]
    assert aborted["scoredRows"] >= running["scoredRows"]
    thread.join(timeout=30)
    assert isinstance(outcome[0], requests.RequestException) or outcome[0].status_code == 422
    again = api.delete(f"batchPredictions/{job['id']}/")
    assert again.status_code == 409
    assert "already aborted" in again.json()["message"]


def test_restart_keeps_every_job_and_fails_the_ones_in_flight(
    private_server: LocalServer, tmp_path: Path
) -> None:
    api = Api(private_server)
    small = write_demo_csv(DEMO_REGRESSION_ID, tmp_path / "small.csv", 40, seed=1)
    completed, result = api.score_csv({"deploymentId": DEMO_REGRESSION_ID}, small.read_bytes())
    waiting = api.create_job({"deploymentId": DEMO_REGRESSION_ID})
    big = write_demo_csv(DEMO_REGRESSION_ID, tmp_path / "big.csv", 200_000, seed=2)
    running = api.create_job({"deploymentId": DEMO_REGRESSION_ID})
    thread, _outcome = upload_in_background(api, running, trickle(big, pause=0.05))
    api.wait(running["id"], until=lambda j: j["status"] == "RUNNING" and j["scoredRows"] > 0)

    private_server.restart(kill=True)
    thread.join(timeout=30)

    jobs = {job["id"]: job for job in private_server.jobs()}
    assert set(jobs) == {completed["id"], waiting["id"], running["id"]}
    assert jobs[completed["id"]]["status"] == "COMPLETED"
    assert jobs[completed["id"]]["scoredRows"] == 40
    for interrupted, was in ((waiting, "INITIALIZING"), (running, "RUNNING")):
        job = jobs[interrupted["id"]]
        assert job["status"] == "FAILED"
        assert f"server restarted while this job was {was}" in job["statusDetails"]
        assert "Resubmit" in job["statusDetails"]
        assert job["links"]["self"].startswith(private_server.endpoint)
    again = Api(private_server).get(f"batchPredictions/{completed['id']}/download/")
    assert again.status_code == 200
    assert again.content == result
