"""Benchmark: score one big CSV object S3 → S3 through the local server, with flat server memory.

Starts ``moto_server`` (S3) and the local batch-prediction server on 127.0.0.1, streams a CSV of
``--size-mb`` MiB into moto with a multipart upload (generated block by block, never held whole
in memory), creates an ``s3`` credential, submits an S3 → S3 job, and samples the server's RSS
(psutil, every ``--sample-seconds``) until the job ends. The wall time runs from the job POST to
COMPLETED. Results go to the ``## Object storage (issue 4)`` section of ``bench/RESULTS.md``
(other sections are left as they are).

    .venv/bin/python bench/bench_object_store.py --size-mb 1024    # the 1 GB run
    .venv/bin/python bench/bench_object_store.py --size-mb 20      # smoke run, well under a minute
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import psutil
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support import free_port, wait_for_http  # noqa: E402

RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## Object storage (issue 4)"
BUCKET = "bench"
MIB = 1024 * 1024
UPLOAD_PART = 16 * MIB
KEY_ID, SECRET = "bench-key-id", secrets.token_hex(16)


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            args, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(15)


def demo_block(deployment_id: str, work: Path) -> tuple[bytes, bytes, int]:
    """``(header line, a block of data rows, rows in the block)`` of demo scoring data."""
    from airflow_batchpred.server import models

    path = models.write_demo_csv(deployment_id, work / "block.csv", 50_000, seed=1)
    data = path.read_bytes()
    path.unlink()
    header, _, body = data.partition(b"\n")
    return header + b"\n", body, body.count(b"\n")


def upload_csv(client: Any, key: str, size: int, header: bytes, block: bytes, block_rows: int) -> int:
    """Stream about ``size`` bytes of CSV into ``key`` with a multipart upload; returns the row count."""
    upload = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    parts: list[dict[str, Any]] = []
    rows, sent = 0, 0
    buffer = io.BytesIO()
    buffer.write(header)
    while sent + buffer.tell() < size:
        buffer.write(block)
        rows += block_rows
        if buffer.tell() >= UPLOAD_PART:
            number = len(parts) + 1
            answer = client.upload_part(
                Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=number, Body=buffer.getvalue()
            )
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            sent += buffer.tell()
            buffer = io.BytesIO()
    if buffer.tell():
        number = len(parts) + 1
        answer = client.upload_part(
            Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=number, Body=buffer.getvalue()
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    client.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    return rows


class RssSampler(threading.Thread):
    """Peak RSS of a process (and its children), sampled until stopped."""

    def __init__(self, pid: int, every: float) -> None:
        super().__init__(daemon=True)
        self._process = psutil.Process(pid)
        self._every = every
        self._halt = threading.Event()
        self.peak = 0
        self.samples = 0

    def rss(self) -> int:
        total = self._process.memory_info().rss
        for child in self._process.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += child.memory_info().rss
        return total

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, self.rss())
            self.samples += 1
            self._halt.wait(self._every)

    def stop(self) -> None:
        self._halt.set()
        self.join()


@dataclass
class Result:
    size_bytes: int
    rows: int
    deployment: str
    wall_seconds: float
    idle_rss: int
    peak_rss: int
    samples: int
    output_bytes: int
    status: str
    upload_seconds: float


def run(size_mb: int, deployment_id: str, sample_seconds: float, keep: bool) -> Result:
    work = Path(tempfile.mkdtemp(prefix="bench-objstore-"))
    venv_bin = Path(sys.executable).parent
    moto_port, server_port = free_port(), free_port()
    moto = start([str(venv_bin / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)], work / "moto.log")
    token = secrets.token_hex(16)
    server = start(
        [
            sys.executable,
            "-m",
            "airflow_batchpred.server",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(server_port),
            "--data-dir",
            str(work / "data"),
            "--token",
            token,
        ],
        work / "server.log",
    )
    endpoint = f"http://127.0.0.1:{server_port}/api/v2"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        wait_for_http(f"http://127.0.0.1:{moto_port}/moto-api/", process=moto, timeout=120)
        wait_for_http(f"{endpoint}/version/", process=server, timeout=120, headers=headers)
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{moto_port}",
            region_name="us-east-1",
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        )
        s3.create_bucket(Bucket=BUCKET)
        header, block, block_rows = demo_block(deployment_id, work)
        began = time.monotonic()
        rows = upload_csv(s3, "in.csv", size_mb * MIB, header, block, block_rows)
        upload_seconds = time.monotonic() - began
        size = int(s3.head_object(Bucket=BUCKET, Key="in.csv")["ContentLength"])

        credential = requests.post(
            f"{endpoint}/credentials/",
            json={
                "name": "bench",
                "credentialType": "s3",
                "awsAccessKeyId": KEY_ID,
                "awsSecretAccessKey": SECRET,
            },
            headers=headers,
            timeout=30,
        ).json()["credentialId"]
        side = {"type": "s3", "credentialId": credential, "endpointUrl": f"http://127.0.0.1:{moto_port}"}
        sampler = RssSampler(server.pid, sample_seconds)
        idle = sampler.rss()
        sampler.start()
        began = time.monotonic()
        job = requests.post(
            f"{endpoint}/batchPredictions/",
            json={
                "deploymentId": deployment_id,
                "intakeSettings": {**side, "url": f"s3://{BUCKET}/in.csv"},
                "outputSettings": {**side, "url": f"s3://{BUCKET}/out.csv"},
            },
            headers=headers,
            timeout=60,
        ).json()
        while True:
            job = requests.get(
                f"{endpoint}/batchPredictions/{job['id']}/", headers=headers, timeout=60
            ).json()
            if job["status"] in ("COMPLETED", "ABORTED", "FAILED"):
                break
            time.sleep(0.5)
        wall = time.monotonic() - began
        sampler.stop()
        if job["status"] != "COMPLETED":
            raise RuntimeError(f"job ended {job['status']}: {job.get('statusDetails')}")
        output = int(s3.head_object(Bucket=BUCKET, Key="out.csv")["ContentLength"])
        if job["scoredRows"] != rows:
            raise RuntimeError(f"scored {job['scoredRows']} rows of {rows}")
        return Result(
            size,
            rows,
            deployment_id,
            wall,
            idle,
            sampler.peak,
            sampler.samples,
            output,
            job["status"],
            upload_seconds,
        )
    finally:
        stop(server)
        stop(moto)
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def record(result: Result, command: str) -> None:
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    row = (
        f"| {result.size_bytes / MIB:,.0f} MiB | {result.rows:,} | {result.wall_seconds:,.1f} | "
        f"{result.size_bytes / MIB / result.wall_seconds:,.1f} | {result.idle_rss / MIB:,.0f} | "
        f"{result.peak_rss / MIB:,.0f} | {result.output_bytes / MIB:,.0f} MiB | "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC | `{command}` |"
    )
    intro = (
        f"{SECTION}\n\n"
        "S3 → S3 through the local server (`bench/bench_object_store.py`): the CSV object is streamed\n"
        "into `moto_server` with a multipart upload, then scored by an S3 → S3 job (ranged streaming\n"
        "read, 8 MiB multipart output completed at commit). Wall time = job POST to COMPLETED. Server\n"
        "RSS sampled with psutil (process + children) every 0.2 s; idle = after start, before the job.\n"
        f"Deployment: the demo regression deployment ({result.deployment}).\n\n"
        f"- Machine: nproc {os.cpu_count()}, {cpu}, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM; "
        f"load average at the end {load} (moto, the server and the benchmark share the 2 cores)\n"
        f"- Software: Python {platform.python_version()}, boto3 {boto3.__version__}\n\n"
        "| input | rows | wall s | MiB/s | idle RSS MiB | peak RSS MiB | output | when | command |\n"
        "|---|---:|---:|---:|---:|---:|---|---|---|\n"
    )
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    match = re.search(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
    rows = []
    if match:
        rows = [line for line in match.group(0).splitlines() if line.startswith("| ") and "MiB |" in line]
        rows = [line for line in rows if "`" in line and not line.startswith("| input")]
    section = intro + "\n".join([*rows, row]) + "\n\n"
    text = (
        text[: match.start()] + section + text[match.end() :] if match else text.rstrip() + "\n\n" + section
    )
    RESULTS.write_text(text.rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the CSV object in MiB")
    parser.add_argument(
        "--deployment", default="64f0a1d3e5b7c9d1e3f50001", help="deployment id (demo regression)"
    )
    parser.add_argument("--sample-seconds", type=float, default=0.2)
    parser.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    result = run(args.size_mb, args.deployment, args.sample_seconds, args.keep)
    print(result)
    if not args.no_record:
        command = ".venv/bin/python bench/bench_object_store.py " + " ".join(sys.argv[1:])
        record(result, command.strip())


if __name__ == "__main__":
    main()
