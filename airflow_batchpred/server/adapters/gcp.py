"""``gcp`` intake and output: one object in Google Cloud Storage (``gs://bucket/path``).

The credential (``credentialType: gcp``) holds ``gcpKey``, a service-account key (the JSON object,
or its text). Requests go to the GCS JSON API: ranged media downloads pinned to the object's
generation for intake; a resumable upload session for output, sent in 8 MiB chunks and finalized
(the object appears) only when the job completes, cancelled otherwise.

Local-server settings (environment of the server process):

* ``STORAGE_EMULATOR_HOST`` (e.g. ``http://127.0.0.1:9023``): talk to a GCS emulator instead of
  ``https://storage.googleapis.com``. The key is still required and checked (it must parse as a
  service-account key), but no OAuth token is requested: emulators accept unauthenticated calls.
* ``BATCHPRED_GCS_ALLOW_ANONYMOUS=true``: accept jobs without ``credentialId`` and read/write
  anonymously (public buckets, emulators). Off by default, so a missing credential is reported
  at job creation instead of turning into anonymous access by accident.

Needs ``google-auth`` (extra ``google``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import requests

from airflow_batchpred.server.adapters import azure as _azure  # noqa: F401 - registers ``azure``
from airflow_batchpred.server.adapters import s3 as _s3  # noqa: F401 - registers ``s3``
from airflow_batchpred.server.adapters._object_store import (
    ObjectStore,
    ObjectStoreIntake,
    ObjectStoreOutput,
    require,
)
from airflow_batchpred.server.adapters.base import register_intake, register_output
from airflow_batchpred.server.errors import ApiError

if TYPE_CHECKING:
    from airflow_batchpred.server.services import Services

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
ALLOW_ANONYMOUS_ENV = "BATCHPRED_GCS_ALLOW_ANONYMOUS"
GCS_API = "https://storage.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
_CHUNK_BYTES = 1024 * 1024
_TIMEOUT = (10.0, 120.0)
_CONTENT_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
_KEY_FIELDS = ("type", "project_id", "private_key", "client_email")


class GCSHttpError(Exception):
    """GCS answered an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def split_gs_url(url: str) -> tuple[str, str]:
    """``gs://bucket/some/object.csv`` → ``("bucket", "some/object.csv")``."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme != "gs" or not parts.netloc or not name:
        raise ValueError(f"a GCS url looks like gs://bucket/path/to/object, got {url!r}")
    return parts.netloc, name


def anonymous_allowed() -> bool:
    return os.environ.get(ALLOW_ANONYMOUS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def api_base() -> str:
    emulator = os.environ.get(EMULATOR_ENV, "").strip()
    if not emulator:
        return GCS_API
    return (emulator if "://" in emulator else f"http://{emulator}").rstrip("/")


def service_account_info(key: Any) -> dict[str, Any]:
    """The service-account key as a dict; :class:`ValueError` names what is wrong (never the key)."""
    if isinstance(key, str):
        try:
            key = json.loads(key)
        except ValueError:
            raise ValueError("the credential's gcpKey is not valid JSON") from None
    if not isinstance(key, Mapping):
        raise ValueError("the credential's gcpKey must be a service-account key (a JSON object)")
    missing = [field for field in _KEY_FIELDS if not key.get(field)]
    if missing:
        raise ValueError(f"the credential's gcpKey lacks {', '.join(missing)}")
    if key["type"] != "service_account":
        raise ValueError(f"the credential's gcpKey has type {key['type']!r}, not 'service_account'")
    return dict(key)


def gcs_session(secrets: Mapping[str, Any]) -> requests.Session:
    """An HTTP session for GCS: OAuth with the key, or plain for an emulator / anonymous access."""
    key = secrets.get("gcpKey")
    if not key:
        if not anonymous_allowed():
            raise ValueError(
                f"GCS access needs a gcp credential (credentialId); set {ALLOW_ANONYMOUS_ENV}=true on "
                "the server to allow anonymous access"
            )
        return requests.Session()
    require("google.oauth2.service_account", "google", "GCS intake/output")
    from google.oauth2 import service_account

    try:
        credentials = service_account.Credentials.from_service_account_info(
            service_account_info(key), scopes=SCOPES
        )
    except ValueError as exc:
        # The library's messages about a bad private key never quote the key itself.
        raise ValueError(f"the credential's gcpKey cannot be used: {exc}") from None
    if os.environ.get(EMULATOR_ENV):
        return requests.Session()
    from google.auth.transport.requests import AuthorizedSession

    return AuthorizedSession(credentials)  # type: ignore[no-untyped-call]


class GCSObject(ObjectStore):
    """One GCS object over the JSON API."""

    service = "GCS"
    transient_errors = (
        ConnectionError,
        TimeoutError,
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
    )

    def __init__(self, url: str, secrets: Mapping[str, Any], fmt: str) -> None:
        super().__init__(url, secrets)
        self.bucket, self.name = split_gs_url(url)
        self._session = gcs_session(secrets)
        self._base = api_base()
        self._content_type = _CONTENT_TYPES.get(fmt, "application/octet-stream")
        self._session_url: str | None = None

    @property
    def _object_path(self) -> str:
        return f"b/{quote(self.bucket, safe='')}/o/{quote(self.name, safe='')}"

    def _check(self, response: requests.Response, *ok: int) -> requests.Response:
        if response.status_code in ok:
            return response
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:300] or response.reason
        response.close()
        raise GCSHttpError(response.status_code, str(message))

    def stat(self) -> tuple[int, str | None]:
        response = self._session.get(f"{self._base}/storage/v1/{self._object_path}", timeout=_TIMEOUT)
        meta = self._check(response, 200).json()
        return int(meta["size"]), str(meta.get("generation") or "") or None

    def open_range(self, start: int, end: int | None, version: str | None) -> Iterator[bytes]:
        params = {"alt": "media", **({"generation": version} if version else {})}
        headers = {"Range": f"bytes={start}-{'' if end is None else end - 1}"}
        response = self._check(
            self._session.get(
                f"{self._base}/download/storage/v1/{self._object_path}",
                params=params,
                headers=headers,
                stream=True,
                timeout=_TIMEOUT,
            ),
            200,
            206,
        )
        with response:
            yield from response.iter_content(chunk_size=_CHUNK_BYTES)

    def begin_upload(self) -> None:
        response = self._session.post(
            f"{self._base}/upload/storage/v1/b/{quote(self.bucket, safe='')}/o",
            params={"uploadType": "resumable", "name": self.name},
            json={"name": self.name, "contentType": self._content_type},
            headers={"X-Upload-Content-Type": self._content_type},
            timeout=_TIMEOUT,
        )
        self._session_url = self._check(response, 200, 201).headers["Location"]

    def _put_chunk(self, data: bytes, offset: int, total: int | None) -> None:
        assert self._session_url is not None
        if data:
            content_range = f"bytes {offset}-{offset + len(data) - 1}/{'*' if total is None else total}"
        else:
            content_range = f"bytes */{total}"
        response = self._session.put(
            self._session_url, data=data, headers={"Content-Range": content_range}, timeout=_TIMEOUT
        )
        self._check(response, 308) if total is None else self._check(response, 200, 201)

    def upload_part(self, number: int, data: bytes, offset: int) -> None:
        self._put_chunk(data, offset, None)

    def complete_upload(self, last: bytes, offset: int) -> None:
        self._put_chunk(last, offset, offset + len(last))
        self._session_url = None

    def put_small(self, data: bytes) -> None:
        response = self._session.post(
            f"{self._base}/upload/storage/v1/b/{quote(self.bucket, safe='')}/o",
            params={"uploadType": "media", "name": self.name},
            data=data,
            headers={"Content-Type": self._content_type},
            timeout=_TIMEOUT,
        )
        self._check(response, 200, 201)

    def abort_upload(self) -> None:
        if self._session_url is not None:
            # GCS answers 499 to a cancelled session; any answer means the session is gone.
            self._session.delete(self._session_url, timeout=_TIMEOUT).close()
            self._session_url = None


def _open(settings: Any, secrets: Mapping[str, Any]) -> GCSObject:
    return GCSObject(settings.url, secrets, settings.format or "csv")


def _check_access(settings: Any, field: str) -> None:
    if not settings.credential_id and not anonymous_allowed():
        raise ApiError(
            422,
            f"{field}.credentialId is required for GCS (a gcp credential holding a service-account "
            f"key); the server allows anonymous GCS access only with {ALLOW_ANONYMOUS_ENV}=true",
            {field: {"credentialId": "required"}},
        )


@register_intake
class GCPIntake(ObjectStoreIntake):
    """Reads ``intakeSettings.url`` (``gs://bucket/object``) as CSV or parquet."""

    type = "gcp"
    credential_type = "gcp"
    parse_url = staticmethod(split_gs_url)

    @classmethod
    def check(cls, settings: Any, services: Services) -> None:
        super().check(settings, services)
        _check_access(settings, "intakeSettings")

    @classmethod
    def open_store(cls, settings: Any, secrets: Mapping[str, Any]) -> ObjectStore:
        return _open(settings, secrets)


@register_output
class GCPOutput(ObjectStoreOutput):
    """Writes ``outputSettings.url`` (``gs://bucket/object``) as CSV or parquet."""

    type = "gcp"
    credential_type = "gcp"
    parse_url = staticmethod(split_gs_url)

    @classmethod
    def check(cls, settings: Any, services: Services) -> None:
        super().check(settings, services)
        _check_access(settings, "outputSettings")

    @classmethod
    def open_store(cls, settings: Any, secrets: Mapping[str, Any]) -> ObjectStore:
        return _open(settings, secrets)
