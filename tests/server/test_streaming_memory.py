"""Uploads, scoring and downloads stream: server memory stays flat for a large upload."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import Api

from airflow_batchpred.server.models import DEMO_REGRESSION_ID, write_demo_csv

from support import LocalServer

UPLOAD_BYTES = 256 * 1024 * 1024
#: Allowed growth of the server's RSS; the upload is more than twice this size.
RSS_GROWTH_LIMIT = 120 * 1024 * 1024


@pytest.mark.slow
def test_large_upload_keeps_server_memory_flat(api: Api, local_server: LocalServer, tmp_path: Path) -> None:
    sample = write_demo_csv(DEMO_REGRESSION_ID, tmp_path / "sample.csv", 100_000, seed=30).read_bytes()
    header, rows = sample.split(b"\n", 1)
    assert local_server.service is not None
    assert local_server.service.process is not None
    server = psutil.Process(local_server.service.process.pid)
    baseline = server.memory_info().rss
    peak = [baseline]
    sampling = threading.Event()

    def sample_rss() -> None:
        while not sampling.is_set():
            peak[0] = max(peak[0], server.memory_info().rss)
            time.sleep(0.05)

    def body() -> Iterator[bytes]:
        yield header + b"\n"
        sent = 0
        while sent < UPLOAD_BYTES:
            yield rows
            sent += len(rows)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    job = api.create_job({"deploymentId": DEMO_REGRESSION_ID})
    downloaded = [0]

    def download() -> None:
        api.wait(job["id"], until=lambda j: "download" in j["links"])
        with api.get(f"batchPredictions/{job['id']}/download/", stream=True) as response:
            for chunk in response.iter_content(chunk_size=1 << 20):
                downloaded[0] += len(chunk)

    reader = threading.Thread(target=download, daemon=True)
    reader.start()
    upload = api.upload(job, body())
    reader.join(timeout=600)
    final = api.wait(job["id"], timeout=600)
    sampling.set()
    sampler.join(timeout=5)

    rows_per_copy = rows.count(b"\n")
    assert upload.status_code == 202
    assert final["status"] == "COMPLETED"
    assert final["scoredRows"] >= rows_per_copy * (UPLOAD_BYTES // len(rows))
    assert downloaded[0] == final["jobOutputSize"]
    assert peak[0] - baseline < RSS_GROWTH_LIMIT, f"RSS grew by {(peak[0] - baseline) >> 20} MiB"
