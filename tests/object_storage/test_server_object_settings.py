"""The local server's object-storage adapters over plain HTTP: what is refused at job creation
(and how it is explained), anonymous S3 access, and failures that name the object but no secret."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from objstore_helpers import WASB_CONN_ID, Stores, demo_csv

from airflow_batchpred.hooks.cloud_credentials import credential_for_connection
from airflow_batchpred.hooks.datarobot import DataRobotHook
from airflow_batchpred.server import models

from support import LocalServer


def post_job(server: LocalServer, intake: dict[str, Any], output: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{server.endpoint}/batchPredictions/",
        json={"deploymentId": models.DEMO_REGRESSION_ID, "intakeSettings": intake, "outputSettings": output},
        headers=server.headers,
        timeout=30,
    )


def wait_done(server: LocalServer, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        job = server.get(f"batchPredictions/{job_id}/").json()
        if job["status"] in ("COMPLETED", "ABORTED", "FAILED"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


@pytest.fixture
def azure_credential(object_server: LocalServer) -> str:
    hook = DataRobotHook()
    try:
        return credential_for_connection(hook, "wasb", WASB_CONN_ID)
    finally:
        hook.close()


def test_gcs_without_credential_is_refused_unless_anonymous_is_allowed(object_server: LocalServer) -> None:
    response = post_job(object_server, {"type": "gcp", "url": "gs://b/in.csv"}, {"type": "localFile"})
    assert response.status_code == 422
    assert "credentialId" in response.json()["message"]
    assert "BATCHPRED_GCS_ALLOW_ANONYMOUS" in response.json()["message"]


@pytest.mark.parametrize(
    ("output", "words"),
    [
        ({"type": "s3", "url": "s3://b/out/", "partitionColumns": ["x"]}, ("partitionColumns",)),
        ({"type": "s3", "url": "s3://only-a-bucket"}, ("url", "s3://bucket/path/to/object")),
        (
            {"type": "gcp", "url": "gs://b/out.csv", "credentialId": "0" * 24},
            ("credential", "does not exist"),
        ),
    ],
)
def test_unusable_output_settings_are_refused_at_creation(
    output: dict[str, Any], words: tuple[str, ...], object_server: LocalServer
) -> None:
    response = post_job(object_server, {"type": "localFile"}, output)
    assert response.status_code in (404, 422)
    for word in words:
        assert word in response.json()["message"]


def test_a_credential_of_the_wrong_type_is_refused(object_server: LocalServer, azure_credential: str) -> None:
    response = post_job(
        object_server,
        {"type": "s3", "url": "s3://b/in.csv", "credentialId": azure_credential},
        {"type": "localFile"},
    )
    assert response.status_code == 422
    assert "'azure'" in response.json()["message"]
    assert "'s3' credential" in response.json()["message"]


def test_s3_without_credential_reads_and_writes_a_public_bucket_unsigned(
    object_server: LocalServer, stores: Stores, tmp_path: Path
) -> None:
    client = stores.s3.client()
    bucket = f"public-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=bucket, ACL="public-read-write")
    client.put_object(
        Bucket=bucket,
        Key="in.csv",
        Body=demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "in.csv", 30),
        ACL="public-read",
    )
    side = {"type": "s3", "endpointUrl": stores.s3.endpoint_url}
    response = post_job(
        object_server, {**side, "url": f"s3://{bucket}/in.csv"}, {**side, "url": f"s3://{bucket}/out.csv"}
    )
    assert response.status_code == 202, response.text
    job = wait_done(object_server, response.json()["id"])
    assert job["status"] == "COMPLETED", job["statusDetails"]
    assert int(client.head_object(Bucket=bucket, Key="out.csv")["ContentLength"]) > 0

    client.put_object(Bucket=bucket, Key="private.csv", Body=b"a\n1\n", ACL="private")
    response = post_job(object_server, {**side, "url": f"s3://{bucket}/private.csv"}, {"type": "localFile"})
    job = wait_done(object_server, response.json()["id"])
    assert job["status"] == "ABORTED"
    assert f"s3://{bucket}/private.csv" in job["statusDetails"]
    assert "403" in job["statusDetails"]


def test_missing_object_and_foreign_account_abort_with_the_url_but_no_secret(
    object_server: LocalServer, stores: Stores, azure_credential: str, unique_key: Any
) -> None:
    missing = stores.url("azure", unique_key("nowhere.csv"))
    response = post_job(
        object_server,
        {"type": "azure", "url": missing, "credentialId": azure_credential},
        {"type": "localFile"},
    )
    job = wait_done(object_server, response.json()["id"])
    assert job["status"] == "ABORTED"
    assert missing in job["statusDetails"]
    assert "BlobNotFound" in job["statusDetails"]

    foreign = "https://someoneelse.blob.core.windows.net/data/in.csv"
    response = post_job(
        object_server,
        {"type": "azure", "url": foreign, "credentialId": azure_credential},
        {"type": "localFile"},
    )
    job = wait_done(object_server, response.json()["id"])
    assert job["status"] == "ABORTED"
    assert "not in the storage account of the credential" in job["statusDetails"]
    for text in (job["statusDetails"], str(job["logs"])):
        assert stores.azure.account_key not in text
