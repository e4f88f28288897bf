"""``azure`` intake and output: one blob in Azure Blob Storage.

The url is the blob's URL: ``https://<account>.blob.core.windows.net/<container>/<blob>``, or the
path-style form of emulators and custom endpoints, ``http://127.0.0.1:10000/<account>/<container>/
<blob>``. The credential (``credentialType: azure``) holds ``azureConnectionString``; the blob
service it names (its ``BlobEndpoint``, e.g. Azurite's) is what the server talks to, so the url
must lie inside that account. Without ``credentialId`` the blob is read anonymously (public
containers). Reads are ranged downloads pinned to the blob's ETag; output blocks are staged as they
fill and committed (the blob appears) only when the job completes; staged blocks of a job that
fails are never committed and expire on their own.

Needs ``azure-storage-blob`` (extra ``microsoft-azure``).
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow_batchpred.server.adapters._object_store import (
    ObjectStore,
    ObjectStoreIntake,
    ObjectStoreOutput,
    require,
)
from airflow_batchpred.server.adapters.base import register_intake, register_output

_CHUNK_BYTES = 4 * 1024 * 1024
_CONTENT_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def _path_style(host: str) -> bool:
    """Emulators and custom endpoints put the account in the path (``/<account>/<container>/...``)."""
    if host in ("localhost",) or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def split_blob_url(url: str) -> tuple[str, str, str]:
    """``(account URL, container, blob name)`` of a blob URL (host-style or path-style)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    segments = [unquote(segment) for segment in parts.path.lstrip("/").split("/")]
    form = "https://<account>.blob.core.windows.net/<container>/<path/to/blob>"
    if _path_style(host):
        if len(segments) < 3 or not all(segments[:2]) or not segments[-1]:
            raise ValueError(
                f"a path-style blob url looks like http://host:port/<account>/<container>/<blob>, got {url!r}"
            )
        account_url = f"{parts.scheme}://{parts.netloc}/{segments[0]}"
        return account_url, segments[1], "/".join(segments[2:])
    if len(segments) < 2 or not segments[0] or not segments[-1]:
        raise ValueError(f"an Azure blob url looks like {form}, got {url!r}")
    return f"{parts.scheme}://{parts.netloc}", segments[0], "/".join(segments[1:])


def _same_account(url_a: str, url_b: str) -> bool:
    return url_a.rstrip("/").lower() == url_b.rstrip("/").lower()


class AzureBlob(ObjectStore):
    """One block blob, read with ranged downloads and written with staged blocks."""

    service = "Azure Blob Storage"

    def __init__(self, url: str, secrets: Mapping[str, Any], fmt: str) -> None:
        super().__init__(url, secrets)
        blob_module = require("azure.storage.blob", "microsoft-azure", "Azure intake/output")
        from azure.core.exceptions import IncompleteReadError, ServiceRequestError, ServiceResponseError

        self.transient_errors = (
            ConnectionError,
            TimeoutError,
            IncompleteReadError,
            ServiceRequestError,
            ServiceResponseError,
        )
        account_url, container, blob_name = split_blob_url(url)
        sizes = {"max_single_get_size": _CHUNK_BYTES, "max_chunk_get_size": _CHUNK_BYTES}
        connection_string = secrets.get("azureConnectionString")
        if connection_string:
            service = blob_module.BlobServiceClient.from_connection_string(connection_string, **sizes)
            if not _same_account(service.url, account_url):
                raise ValueError(
                    f"the url {url} is not in the storage account of the credential (its blob endpoint "
                    f"is {service.primary_endpoint.rstrip('/')}); use a url of that account or another "
                    "credential"
                )
        else:
            service = blob_module.BlobServiceClient(account_url=account_url, credential=None, **sizes)
        self._blob = service.get_blob_client(container, blob_name)
        self._module = blob_module
        self._content_type = _CONTENT_TYPES.get(fmt, "application/octet-stream")
        self._blocks: list[str] = []

    def reason(self, exc: BaseException) -> str:
        code = getattr(exc, "error_code", None)
        message = str(getattr(exc, "reason", None) or exc).splitlines()[0]
        return f"{code}: {message}" if code else f"{type(exc).__name__}: {message}"

    def stat(self) -> tuple[int, str | None]:
        properties = self._blob.get_blob_properties()
        return int(properties.size), properties.etag

    def open_range(self, start: int, end: int | None, version: str | None) -> Iterator[bytes]:
        from azure.core import MatchConditions

        conditions: dict[str, Any] = {}
        if version:
            conditions = {"etag": version, "match_condition": MatchConditions.IfNotModified}
        downloader = self._blob.download_blob(
            offset=start, length=None if end is None else end - start, max_concurrency=1, **conditions
        )
        yield from downloader.chunks()

    def begin_upload(self) -> None:
        self._blocks = []

    def upload_part(self, number: int, data: bytes, offset: int) -> None:
        # Block ids of one blob must all have the same length.
        block_id = base64.b64encode(f"batchpred-{number:08d}".encode()).decode()
        self._blob.stage_block(block_id, data, length=len(data))
        self._blocks.append(block_id)

    def complete_upload(self, last: bytes, offset: int) -> None:
        if last:
            self.upload_part(len(self._blocks) + 1, last, offset)
        self._blob.commit_block_list(
            [self._module.BlobBlock(block_id=block_id) for block_id in self._blocks],
            content_settings=self._module.ContentSettings(content_type=self._content_type),
        )

    def put_small(self, data: bytes) -> None:
        self._blob.upload_blob(
            data,
            overwrite=True,
            content_settings=self._module.ContentSettings(content_type=self._content_type),
        )

    def abort_upload(self) -> None:
        # Uncommitted blocks cannot be deleted one by one; never committed, they stay invisible
        # (an existing blob keeps its old content) and the service discards them after a week.
        self._blocks = []


def _open(settings: Any, secrets: Mapping[str, Any]) -> AzureBlob:
    return AzureBlob(settings.url, secrets, settings.format or "csv")


@register_intake
class AzureIntake(ObjectStoreIntake):
    """Reads the blob at ``intakeSettings.url`` as CSV or parquet."""

    type = "azure"
    credential_type = "azure"
    parse_url = staticmethod(split_blob_url)

    @classmethod
    def open_store(cls, settings: Any, secrets: Mapping[str, Any]) -> ObjectStore:
        return _open(settings, secrets)


@register_output
class AzureOutput(ObjectStoreOutput):
    """Writes the blob at ``outputSettings.url`` as CSV or parquet."""

    type = "azure"
    credential_type = "azure"
    parse_url = staticmethod(split_blob_url)

    @classmethod
    def open_store(cls, settings: Any, secrets: Mapping[str, Any]) -> ObjectStore:
        return _open(settings, secrets)
