"""The same input gives byte-identical output however the upload arrives.

Found by the re-attach trials: the server scored the reader's blocks as they came, and the
last digit of some predictions depended on where a row fell in its block, so a retried task's
output differed from the first run's. The runner now scores fixed chunks of rows.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from airflow_batchpred.server import models

from support import LocalServer


def _score(server: LocalServer, body: object) -> bytes:
    local = {"type": "localFile"}
    job = requests.post(
        f"{server.endpoint}/batchPredictions/",
        json={"deploymentId": models.DEMO_REGRESSION_ID, "intakeSettings": local, "outputSettings": local},
        headers=server.headers,
        timeout=30,
    ).json()
    upload = requests.put(
        job["links"]["csvUpload"],
        data=body,
        headers={**server.headers, "Content-Type": "text/csv"},
        timeout=120,
    )
    assert upload.status_code == 202, upload.text
    for _ in range(1200):
        status = server.get(f"batchPredictions/{job['id']}/").json()["status"]
        if status in ("COMPLETED", "ABORTED", "FAILED"):
            break
        time.sleep(0.05)
    assert status == "COMPLETED"
    download = server.get(f"batchPredictions/{job['id']}/download/")
    assert download.status_code == 200
    return download.content


def _trickle(data: bytes, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    offset = 0
    while offset < len(data):
        size = rng.choice([1, 7, 100, 4096, 65536, 300_000])
        yield data[offset : offset + size]
        offset += size
        if rng.random() < 0.05:
            time.sleep(0.01)


def test_output_is_byte_identical_however_the_upload_arrives(
    local_server: LocalServer, tmp_path: Path
) -> None:
    source = models.write_demo_csv(
        models.DEMO_REGRESSION_ID, tmp_path / "in.csv", 45_000, seed=4
    ).read_bytes()
    reference = _score(local_server, source)
    assert reference.count(b"\n") == 45_001
    for seed in range(3):
        assert _score(local_server, _trickle(source, seed)) == reference, f"trickle {seed} differs"
