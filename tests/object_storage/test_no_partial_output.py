"""A job that fails or is aborted leaves no output object, even after parts were uploaded."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from objstore_helpers import AWS_CONN_ID, BUCKET, GCP_CONN_ID, WASB_CONN_ID, Stores, demo_csv

from airflow_batchpred.hooks.cloud_credentials import resolve_settings_credentials
from airflow_batchpred.hooks.datarobot import DataRobotHook
from airflow_batchpred.server import models
from airflow_batchpred.server.adapters._object_store import DEFAULT_PART_SIZE

from support import LocalServer

CONNECTIONS = {
    "s3": ("aws_conn_id", AWS_CONN_ID),
    "azure": ("wasb_conn_id", WASB_CONN_ID),
    "gcp": ("gcp_conn_id", GCP_CONN_ID),
}
EXAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "s3": ("example_batchpred_s3", {"aws_conn_id": AWS_CONN_ID}),
    "azure": ("example_batchpred_azure", {"wasb_conn_id": WASB_CONN_ID, "max_explanations": 0}),
    "gcp": ("example_batchpred_gcs", {"gcp_conn_id": GCP_CONN_ID, "max_explanations": 0}),
}


@pytest.fixture
def hook() -> Iterator[DataRobotHook]:
    hook = DataRobotHook(retry_limit=2, retry_delay=0.05)
    yield hook
    hook.close()


def state_of(dag_run: Any) -> str:
    return str(getattr(dag_run.state, "value", dag_run.state))


def without_column(data: bytes, column: str) -> bytes:
    rows = list(csv.reader(io.StringIO(data.decode())))
    index = rows[0].index(column)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([row[:index] + row[index + 1 :] for row in rows])
    return out.getvalue().encode()


def with_failing_rows(good: bytes, bad_rows: int) -> bytes:
    """``good`` followed by ``bad_rows`` rows whose first feature is not a number."""
    lines = good.rstrip(b"\n").split(b"\n")
    template = lines[1].split(b",")
    bad = b",".join([b"not-a-number", *template[1:]])
    return b"\n".join([*lines, *([bad] * bad_rows)]) + b"\n"


def no_pending_s3_uploads(stores: Stores, key: str) -> bool:
    uploads = stores.s3.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    return not [upload for upload in uploads if upload["Key"] == key]


@pytest.mark.parametrize("kind", ["s3", "azure", "gcp"])
def test_missing_feature_column_aborts_the_dag_run_and_writes_nothing(
    kind: str, run_dag: Any, stores: Stores, unique_key: Any, tmp_path: Path
) -> None:
    data = without_column(demo_csv(models.DEMO_BINARY_ID, tmp_path / "in.csv", 200), "mean_radius")
    source = stores.put(kind, unique_key("in.csv"), data)
    target_key = unique_key("out.csv")
    dag_id, params = EXAMPLES[kind]

    run = run_dag(
        dag_id,
        {
            "deployment_id": models.DEMO_BINARY_ID,
            "source_url": source,
            "destination_url": stores.url(kind, target_key),
            "format": "csv",
            **params,
        },
    )

    assert state_of(run) == "failed"
    assert stores.get(kind, target_key) is None
    assert target_key not in stores.keys(kind)


def _submit(hook: DataRobotHook, kind: str, source: str, target: str, **options: Any) -> str:
    conn_key, conn_id = CONNECTIONS[kind]
    job = hook.submit_job(
        {
            "deployment_id": models.DEMO_BINARY_ID,
            "intake_settings": resolve_settings_credentials(
                hook, {"type": kind, "url": source, conn_key: conn_id}
            ),
            "output_settings": resolve_settings_credentials(
                hook, {"type": kind, "url": target, conn_key: conn_id}
            ),
            "passthrough_columns_set": "all",
            **options,
        }
    )
    return str(job["id"])


@pytest.mark.parametrize("kind", ["s3", "azure", "gcp"])
def test_rows_failing_after_parts_were_uploaded_leave_no_object(
    kind: str, hook: DataRobotHook, stores: Stores, unique_key: Any, tmp_path: Path
) -> None:
    good = demo_csv(models.DEMO_BINARY_ID, tmp_path / "in.csv", 60_000, seed=3)
    source = stores.put(kind, unique_key("in.csv"), with_failing_rows(good, 70_000))
    target_key = unique_key("out.csv")

    job = hook.wait_for_job(
        _submit(hook, kind, source, stores.url(kind, target_key)), poll_interval=0.2, timeout=300
    )

    assert job["status"] == "ABORTED"
    assert "rows failed" in job["statusDetails"]
    assert job["jobOutputSize"] > DEFAULT_PART_SIZE, "no part was uploaded before the abort"
    assert stores.get(kind, target_key) is None
    if kind == "s3":
        # The job reads ABORTED as soon as the DELETE is handled; the worker thread cancels the
        # multipart upload when it next checks the abort flag, a moment later.
        assert _eventually(lambda: no_pending_s3_uploads(stores, target_key))


@pytest.mark.parametrize("kind", ["s3", "azure", "gcp"])
def test_delete_mid_job_leaves_no_object(
    kind: str,
    hook: DataRobotHook,
    stores: Stores,
    object_server: LocalServer,
    unique_key: Any,
    tmp_path: Path,
) -> None:
    data = demo_csv(models.DEMO_BINARY_ID, tmp_path / "in.csv", 120_000, seed=5)
    source = stores.put(kind, unique_key("in.csv"), data)
    target_key = unique_key("out.csv")
    job_id = _submit(hook, kind, source, stores.url(kind, target_key), max_explanations=5)

    deadline = time.monotonic() + 120
    while True:
        job = hook.get_job(job_id)
        assert job["status"] in ("INITIALIZING", "RUNNING"), "the job ended before the DELETE"
        if (job.get("jobOutputSize") or 0) > DEFAULT_PART_SIZE:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    hook.cancel_job(job_id)
    job = hook.wait_for_job(job_id, poll_interval=0.2, timeout=60)

    assert job["status"] == "ABORTED"
    assert job["scoredRows"] < 120_000
    assert stores.get(kind, target_key) is None
    if kind == "s3":
        # The job reads ABORTED as soon as the DELETE is handled; the worker thread cancels the
        # multipart upload when it next checks the abort flag, a moment later.
        assert _eventually(lambda: no_pending_s3_uploads(stores, target_key))


def _eventually(condition: Any, *, within: float = 15.0) -> bool:
    """Whether ``condition()`` holds within ``within`` seconds (checked every 0.1 s)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
