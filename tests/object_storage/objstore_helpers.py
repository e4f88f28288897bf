"""Helpers of the object-storage tests: the stand-in stores, scoring data, row-by-row checks."""

from __future__ import annotations

import csv
import io
import json
import math
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from services import GCP_PROJECT, AzuriteBlob, GCSEmulator, MotoS3
from support import LocalServer

BUCKET = "batchpred-data"
AWS_CONN_ID = "aws_batchpred"
WASB_CONN_ID = "wasb_batchpred"
GCP_CONN_ID = "gcp_batchpred"
#: Small scoring chunks, so a DELETE lands mid-job and several parts are uploaded.
SERVER_CHUNK_ROWS = 5_000


def datarobot_connection(server: LocalServer) -> str:
    """``AIRFLOW_CONN_DATAROBOT_DEFAULT`` JSON for ``server``."""
    return json.dumps(
        {"conn_type": "datarobot", "password": server.token, "extra": {"endpoint": server.endpoint}}
    )


def service_account_key(project: str = GCP_PROJECT) -> dict[str, str]:
    """A syntactically real service-account key with a fresh RSA private key (never used for OAuth)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": f"batchpred-tests@{project}.iam.gserviceaccount.com",
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def gcp_connection(key: dict[str, str] | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"project": GCP_PROJECT}
    if key is not None:
        extra["keyfile_dict"] = json.dumps(key)
    return {"conn_type": "google_cloud_platform", "extra": extra}


@dataclass
class Stores:
    """The three stand-ins, with one bucket/container each, and helpers to put and get objects."""

    s3: MotoS3
    azure: AzuriteBlob
    gcs: GCSEmulator

    def url(self, kind: str, key: str) -> str:
        if kind == "s3":
            return f"s3://{BUCKET}/{key}"
        if kind == "azure":
            return f"{self.azure.blob_endpoint}/{BUCKET}/{key}"
        return f"gs://{BUCKET}/{key}"

    def put(self, kind: str, key: str, data: bytes) -> str:
        if kind == "s3":
            self.s3.client().put_object(Bucket=BUCKET, Key=key, Body=data)
        elif kind == "azure":
            self.azure.client().get_blob_client(BUCKET, key).upload_blob(data, overwrite=True)
        else:
            self.gcs.client().bucket(BUCKET).blob(key).upload_from_string(data)
        return self.url(kind, key)

    def get(self, kind: str, key: str) -> bytes | None:
        """The object's bytes, or ``None`` when it does not exist."""
        if kind == "s3":
            client = self.s3.client()
            try:
                return bytes(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
            except client.exceptions.NoSuchKey:
                return None
        if kind == "azure":
            from azure.core.exceptions import ResourceNotFoundError

            try:
                return bytes(self.azure.client().get_blob_client(BUCKET, key).download_blob().readall())
            except ResourceNotFoundError:
                return None
        blob = self.gcs.client().bucket(BUCKET).get_blob(key)
        return None if blob is None else bytes(blob.download_as_bytes())

    def keys(self, kind: str) -> list[str]:
        if kind == "s3":
            listing = self.s3.client().list_objects_v2(Bucket=BUCKET)
            return [item["Key"] for item in listing.get("Contents", [])]
        if kind == "azure":
            return [blob.name for blob in self.azure.client().get_container_client(BUCKET).list_blobs()]
        return [blob.name for blob in self.gcs.client().list_blobs(BUCKET)]


# ---------------------------------------------------------------------------------------------
# Scoring data and the row-by-row comparison with the model
# ---------------------------------------------------------------------------------------------


def demo_csv(deployment_id: str, path: Path, rows: int, *, seed: int = 0) -> bytes:
    from airflow_batchpred.server import models

    models.write_demo_csv(deployment_id, path, rows, seed=seed)
    return path.read_bytes()


def csv_to_parquet(data: bytes) -> bytes:
    table = pa_csv.read_csv(io.BytesIO(data))
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=max(1, table.num_rows // 3))
    return sink.getvalue()


def output_rows(data: bytes, fmt: str) -> list[dict[str, Any]]:
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data)).to_pylist()
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def assert_matches_model(
    server: LocalServer,
    deployment_id: str,
    input_csv: bytes,
    output: bytes,
    *,
    fmt: str = "csv",
    passthrough: tuple[str, ...] = (),
    **score_options: Any,
) -> int:
    """Score ``input_csv`` in process with the server's model; compare every output cell.

    :return: the number of rows compared.
    """
    from airflow_batchpred.server.models import ModelRegistry, ScoreOptions

    strings = pa_csv.read_csv(
        io.BytesIO(input_csv),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in input_csv.split(b"\n", 1)[0].decode().split(",")}
        ),
    )
    scorer = ModelRegistry(Path(server.data_dir) / "models").scorer(deployment_id)
    expected: dict[str, list[Any]] = {}
    for batch in strings.to_batches():
        scored = scorer.score(batch, ScoreOptions(**score_options)).table
        for name in scored.column_names:
            expected.setdefault(name, []).extend(scored.column(name).to_pylist())
    source_rows = strings.to_pylist()
    rows = output_rows(output, fmt)
    assert len(rows) == len(source_rows) == strings.num_rows
    assert expected, "the model produced no columns"
    for index, (source, row) in enumerate(zip(source_rows, rows, strict=True)):
        for name in passthrough:
            assert _number(row[name]) == pytest.approx(_number(source[name])), (index, name)
        for name, values in expected.items():
            want, got = values[index], row[name]
            if want is None or (isinstance(want, float) and math.isnan(want)):
                assert got in ("", None), (index, name, got)
            elif isinstance(want, int | float) and not isinstance(want, bool):
                assert _number(got) == pytest.approx(want, rel=1e-9, abs=1e-12), (index, name, got)
            elif _number(want) is not None and _number(got) is not None:
                assert _number(got) == pytest.approx(_number(want), rel=1e-9), (index, name)
            else:
                assert str(got) == str(want), (index, name, got)
    return len(rows)


def scan_for_secrets(texts: dict[str, str], secret_values: list[str]) -> list[str]:
    """``["where: which secret prefix"]`` for every secret found in any of ``texts``."""
    found = []
    for where, text in texts.items():
        for value in secret_values:
            if value and value in text:
                found.append(f"{where}: {value[:6]}...")
    return found
