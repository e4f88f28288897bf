"""``s3`` intake and output: one object in Amazon S3 or an S3-compatible store (``endpointUrl``).

The credential (``credentialType: s3``) holds ``awsAccessKeyId``, ``awsSecretAccessKey`` and
optionally ``awsSessionToken``. Without ``credentialId`` requests are unsigned (public buckets).
The region comes from ``AWS_DEFAULT_REGION`` (default ``us-east-1``); boto3 follows S3's redirects
to a bucket's own region. With ``endpointUrl`` (MinIO, moto, Ceph ...) path-style addressing is
used. Reads are ranged GETs pinned to the object's ETag; output is a multipart upload completed
only when the job completes (aborted otherwise), or one PUT when smaller than a part.

Needs ``boto3`` (extra ``amazon``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow_batchpred.server.adapters._object_store import (
    ObjectStore,
    ObjectStoreIntake,
    ObjectStoreOutput,
    require,
)
from airflow_batchpred.server.adapters.base import register_intake, register_output

_STREAM_CHUNK_BYTES = 1024 * 1024
_CONTENT_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/key.csv`` → ``("bucket", "some/key.csv")``."""
    parts = urlsplit(url)
    key = parts.path.lstrip("/")
    if not parts.netloc or not key:
        raise ValueError(f"an S3 url looks like s3://bucket/path/to/object, got {url!r}")
    return parts.netloc, key


def s3_client(secrets: Mapping[str, Any], endpoint_url: str | None) -> Any:
    """A boto3 S3 client signed with the credential's keys (unsigned without a credential)."""
    boto3 = require("boto3", "amazon", "S3 intake/output")
    from botocore import UNSIGNED
    from botocore.config import Config

    options: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 5}}
    if endpoint_url:
        options["s3"] = {"addressing_style": "path"}
    if not secrets.get("awsAccessKeyId"):
        options["signature_version"] = UNSIGNED
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
        aws_access_key_id=secrets.get("awsAccessKeyId") or None,
        aws_secret_access_key=secrets.get("awsSecretAccessKey") or None,
        aws_session_token=secrets.get("awsSessionToken") or None,
        config=Config(**options),
    )


class S3Object(ObjectStore):
    """One S3 object, read with ranged GETs and written with a multipart upload."""

    service = "S3"

    def __init__(self, url: str, secrets: Mapping[str, Any], endpoint_url: str | None, fmt: str) -> None:
        super().__init__(url, secrets)
        self.bucket, self.key = split_s3_url(url)
        self._client = s3_client(secrets, endpoint_url)
        self._content_type = _CONTENT_TYPES.get(fmt, "application/octet-stream")
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        from botocore.exceptions import (
            ConnectionClosedError,
            IncompleteReadError,
            ReadTimeoutError,
            ResponseStreamingError,
        )
        from urllib3.exceptions import ProtocolError

        self.transient_errors = (
            ConnectionError,
            TimeoutError,
            ConnectionClosedError,
            IncompleteReadError,
            ReadTimeoutError,
            ResponseStreamingError,
            ProtocolError,
        )

    def reason(self, exc: BaseException) -> str:
        response = getattr(exc, "response", None)
        if isinstance(response, dict) and "Error" in response:
            error = response["Error"]
            return f"{error.get('Code')}: {error.get('Message') or 'no message'}"
        return super().reason(exc)

    def stat(self) -> tuple[int, str | None]:
        head = self._client.head_object(Bucket=self.bucket, Key=self.key)
        return int(head["ContentLength"]), head.get("ETag")

    def open_range(self, start: int, end: int | None, version: str | None) -> Iterator[bytes]:
        byte_range = f"bytes={start}-{'' if end is None else end - 1}"
        extra = {"IfMatch": version} if version else {}
        body = self._client.get_object(Bucket=self.bucket, Key=self.key, Range=byte_range, **extra)["Body"]
        try:
            yield from body.iter_chunks(chunk_size=_STREAM_CHUNK_BYTES)
        finally:
            body.close()

    def begin_upload(self) -> None:
        created = self._client.create_multipart_upload(
            Bucket=self.bucket, Key=self.key, ContentType=self._content_type
        )
        self._upload_id = created["UploadId"]

    def upload_part(self, number: int, data: bytes, offset: int) -> None:
        answer = self._client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=data
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def complete_upload(self, last: bytes, offset: int) -> None:
        if last:
            self.upload_part(len(self._parts) + 1, last, offset)
        self._client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._upload_id = None

    def put_small(self, data: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=self.key, Body=data, ContentType=self._content_type)

    def abort_upload(self) -> None:
        if self._upload_id is not None:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
            self._upload_id = None


def _open(settings: Any, secrets: Mapping[str, Any]) -> S3Object:
    return S3Object(settings.url, secrets, settings.endpoint_url, settings.format or "csv")


@register_intake
class S3Intake(ObjectStoreIntake):
    """Reads ``intakeSettings.url`` (``s3://bucket/key``) as CSV or parquet."""

    type = "s3"
    credential_type = "s3"
    parse_url = staticmethod(split_s3_url)

    @classmethod
    def open_store(cls, settings: Any, secrets: Mapping[str, Any]) -> ObjectStore:
        return _open(settings, secrets)


@register_output
class S3Output(ObjectStoreOutput):
    """Writes ``outputSettings.url`` (``s3://bucket/key``) as CSV or parquet."""

    type = "s3"
    credential_type = "s3"
    parse_url = staticmethod(split_s3_url)

    @classmethod
    def open_store(cls, settings: Any, secrets: Mapping[str, Any]) -> ObjectStore:
        return _open(settings, secrets)
