"""Hook for the DataRobot Batch Prediction API (sync ``requests`` and async ``aiohttp`` in one class).

.. seealso::
    ``/work/shared/datarobot-batch-api.md`` (§2 jobs, §4 local-file flows, §7 retries).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import platform
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

import aiohttp
import requests
from airflow.sdk import BaseHook
from requests.exceptions import ConnectTimeout
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from airflow_batchpred import __version__
from airflow_batchpred.contract import (
    TERMINAL_STATUSES,
    JobSettings,
    JobStatus,
    Route,
    parse_job_settings,
)
from airflow_batchpred.exceptions import (
    DataRobotAmbiguousSubmitError,
    DataRobotApiError,
    DataRobotConnectionError,
    DataRobotError,
    DataRobotJobFailedError,
    DataRobotRequestError,
    DataRobotTimeoutError,
)

if TYPE_CHECKING:
    from airflow.sdk import Connection

#: Statuses retried for any request: the server says it did not process the request.
NOT_PROCESSED_STATUSES = frozenset({429, 503})
#: Statuses retried for idempotent requests (GET, DELETE) on top of :data:`NOT_PROCESSED_STATUSES`.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_ENDPOINT_PATH = "/api/v2"
DEFAULT_PART_SIZE = 5 * 1024 * 1024
DOWNLOAD_CHUNK_SIZE = 1024 * 1024
UPLOAD_BLOCK_SIZE = 1024 * 1024
#: First wait between polls for the download link (doubling up to the poll interval).
LINK_POLL_INITIAL_INTERVAL = 0.1
#: Upload and download bodies may legitimately pause for long while the job queues or scores.
STREAM_READ_TIMEOUT = 660.0

ProgressCallback = Callable[[Mapping[str, Any]], None]


def _user_agent() -> str:
    from airflow import __version__ as airflow_version

    return (
        f"airflow-provider-batchpred/{__version__} airflow/{airflow_version} "
        f"python/{platform.python_version()}"
    )


def job_status(job: Mapping[str, Any]) -> JobStatus | None:
    """Return the job's status as a :class:`JobStatus`, or ``None`` if the server sent something else."""
    try:
        return JobStatus(str(job.get("status")))
    except ValueError:
        return None


def is_terminal(job: Mapping[str, Any]) -> bool:
    return job_status(job) in TERMINAL_STATUSES


def job_url(job: Mapping[str, Any]) -> str | None:
    """The absolute URL of a job (``links.self``), used by the extra link."""
    links = job.get("links") or {}
    url = links.get("self")
    return str(url) if url else None


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _is_subset(sent: Any, echoed: Any) -> bool:
    """Whether every value we sent appears unchanged in the server's echo (which adds defaults)."""
    if isinstance(sent, Mapping):
        return isinstance(echoed, Mapping) and all(
            key in echoed and _is_subset(value, echoed[key]) for key, value in sent.items()
        )
    if isinstance(sent, list):
        return (
            isinstance(echoed, list)
            and len(sent) == len(echoed)
            and all(_is_subset(a, b) for a, b in zip(sent, echoed, strict=True))
        )
    if isinstance(sent, bool) or isinstance(echoed, bool):
        return sent is echoed
    if isinstance(sent, int | float) and isinstance(echoed, int | float):
        return float(sent) == float(echoed)
    return bool(sent == echoed)


def _request_never_sent(exc: requests.RequestException) -> bool:
    """Whether a transport error happened before any byte of the request left this machine."""
    if isinstance(exc, ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    # NewConnectionError (refused, unreachable, DNS) subclasses ConnectTimeoutError in urllib3 2.
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


class _RetryAfterOrBackoff(wait_base):
    """Wait what the server's ``Retry-After`` asks for, else exponential backoff with jitter."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)
        self._maximum = maximum

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self._maximum)
        return float(self._backoff(retry_state))


class _LargeBlockAdapter(requests.adapters.HTTPAdapter):
    """Send file bodies in 1 MiB blocks: urllib3 reads and sends 16 KiB at a time by default."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("blocksize", UPLOAD_BLOCK_SIZE)
        super().init_poolmanager(*args, **kwargs)


@dataclass(frozen=True)
class ConnectionDetails:
    """What the hook needs from the Airflow connection."""

    endpoint: str
    token: str
    timeout_seconds: float
    verify_ssl: bool


class DataRobotHook(BaseHook):
    """Talk to the DataRobot Batch Prediction API.

    Sync methods use a ``requests.Session`` (one per thread); the ``a_``-prefixed async twins use one
    ``aiohttp.ClientSession`` for as long as the hook is entered with ``async with hook:``.

    Retries use exponential backoff with jitter and honour ``Retry-After``. Idempotent requests
    (GET, DELETE) are retried on connection errors, 429 and 5xx. A request that creates or feeds a
    job (job POST, CSV upload) is retried only when it provably never reached the server (the
    connection could not be opened) or the server answered 429/503; after any other failure the
    job POST is *looked up* instead of re-sent, so a job is never started twice.

    :param datarobot_conn_id: the ``datarobot`` connection (endpoint + API token).
    :param timeout_seconds: read timeout of each request; default from the connection, else 60.
    :param retry_limit: how many times a request is attempted in total (at least 1).
    :param retry_delay: first backoff delay in seconds (doubles per attempt, plus jitter).
    :param max_retry_delay: upper bound of one wait, including a server's ``Retry-After``.
    :param connect_timeout: seconds to open a TCP/TLS connection.
    """

    conn_name_attr = "datarobot_conn_id"
    default_conn_name = "datarobot_default"
    conn_type = "datarobot"
    hook_name = "DataRobot"

    def __init__(
        self,
        datarobot_conn_id: str = default_conn_name,
        *,
        timeout_seconds: float | None = None,
        retry_limit: int = 5,
        retry_delay: float = 1.0,
        max_retry_delay: float = 60.0,
        connect_timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if retry_limit < 1:
            raise ValueError(f"retry_limit must be at least 1 (attempts in total), got {retry_limit}")
        if retry_delay < 0 or max_retry_delay < 0:
            raise ValueError("retry_delay and max_retry_delay must not be negative")
        self.datarobot_conn_id = datarobot_conn_id
        self.timeout_seconds = timeout_seconds
        self.retry_limit = retry_limit
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.connect_timeout = connect_timeout
        self._details: ConnectionDetails | None = None
        self._local = threading.local()
        self._a_session: aiohttp.ClientSession | None = None

    # -----------------------------------------------------------------------------------------
    # Connection
    # -----------------------------------------------------------------------------------------

    def _details_from_connection(self, conn: Connection, extra: Mapping[str, Any]) -> ConnectionDetails:
        conn_id = self.datarobot_conn_id
        endpoint = extra.get("endpoint") or extra.get("extra__http__endpoint")
        if not endpoint and conn.host and "://" in conn.host:
            endpoint = conn.host
            if not endpoint.rstrip("/").endswith(DEFAULT_ENDPOINT_PATH):
                endpoint = endpoint.rstrip("/") + DEFAULT_ENDPOINT_PATH
        if not endpoint:
            raise DataRobotConnectionError(
                f"Connection {conn_id!r} has no endpoint: set its 'endpoint' field (extra), e.g. "
                "https://app.datarobot.com/api/v2"
            )
        if not str(endpoint).lower().startswith(("http://", "https://")):
            raise DataRobotConnectionError(
                f"Connection {conn_id!r}: endpoint must start with http:// or https://, "
                f"e.g. https://app.datarobot.com/api/v2 (got {endpoint!r})"
            )
        token = conn.password or extra.get("api_key") or extra.get("extra__http__api_key")
        if not token:
            raise DataRobotConnectionError(
                f"Connection {conn_id!r} has no API token: put the DataRobot API key in its "
                "'API Token' (password) field"
            )
        timeout = self.timeout_seconds or extra.get("timeout_seconds") or 60
        try:
            timeout_seconds = float(timeout)
        except (TypeError, ValueError):
            raise DataRobotConnectionError(
                f"Connection {conn_id!r}: timeout_seconds must be a number, got {timeout!r}"
            ) from None
        verify = extra.get("verify_ssl", True)
        verify_ssl = verify if isinstance(verify, bool) else str(verify).lower() not in ("false", "0", "no")
        try:
            from airflow.sdk.log import mask_secret

            mask_secret(str(token))
        except Exception:  # masking is best effort outside a running task
            self.log.debug("Could not register the API token with the secrets masker")
        return ConnectionDetails(
            endpoint=str(endpoint).rstrip("/"),
            token=str(token),
            timeout_seconds=timeout_seconds,
            verify_ssl=verify_ssl,
        )

    @property
    def details(self) -> ConnectionDetails:
        """Endpoint, token and options of the connection (looked up once per hook)."""
        if self._details is None:
            conn = self.get_connection(self.datarobot_conn_id)
            self._details = self._details_from_connection(conn, conn.extra_dejson)
        return self._details

    async def a_details(self) -> ConnectionDetails:
        """Async twin of :attr:`details`, safe inside the triggerer's event loop."""
        if self._details is None:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            conn = await get_async_connection(self.datarobot_conn_id, hook=self)
            extra = await get_async_extra_dejson(conn)
            self._details = self._details_from_connection(conn, extra)
        return self._details

    def copy(self) -> DataRobotHook:
        """A hook with the same connection and settings but its own HTTP sessions.

        ``on_kill`` uses it: the main thread may be inside a request on the original session.
        """
        clone = DataRobotHook(
            self.datarobot_conn_id,
            timeout_seconds=self.timeout_seconds,
            retry_limit=self.retry_limit,
            retry_delay=self.retry_delay,
            max_retry_delay=self.max_retry_delay,
            connect_timeout=self.connect_timeout,
        )
        clone._details = self._details
        return clone

    def _headers(self, details: ConnectionDetails) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {details.token}",
            "User-Agent": _user_agent(),
            "Accept": "application/json, text/csv;q=0.9, */*;q=0.1",
        }

    def url(self, path_or_url: str) -> str:
        """Absolute URL of an API path (``batchPredictions/``) or an absolute link from a job."""
        if path_or_url.lower().startswith(("http://", "https://")):
            return path_or_url
        return f"{self.details.endpoint}/{path_or_url.lstrip('/')}"

    def _scrub(self, text: str) -> str:
        token = self._details.token if self._details else None
        return text.replace(token, "***") if token else text

    # -----------------------------------------------------------------------------------------
    # Sync transport
    # -----------------------------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        """The calling thread's ``requests.Session`` (sessions are not shared between threads)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            details = self.details
            session = requests.Session()
            adapter = _LargeBlockAdapter()
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update(self._headers(details))
            session.verify = details.verify_ssl
            self._local.session = session
        return session

    def close(self) -> None:
        """Close this thread's HTTP session."""
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None

    def _retrying(self, idempotent: bool, what: str) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.retry_limit),
            wait=_RetryAfterOrBackoff(self.retry_delay, self.max_retry_delay),
            retry=retry_if_exception(lambda exc: self._should_retry(exc, idempotent)),
            before_sleep=lambda state: self._log_retry(state, what),
            reraise=True,
        )

    @staticmethod
    def _should_retry(exc: BaseException, idempotent: bool) -> bool:
        if isinstance(exc, DataRobotApiError):
            status = exc.http_status_code
            if idempotent:
                return status in TRANSIENT_STATUSES or status >= 500
            return status in NOT_PROCESSED_STATUSES
        if isinstance(exc, DataRobotRequestError):
            return idempotent or bool(getattr(exc, "never_sent", False))
        return False

    def _log_retry(self, state: RetryCallState, what: str) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log.warning(
            "%s failed (attempt %d of %d): %s; retrying in %.1f s",
            what,
            state.attempt_number,
            self.retry_limit,
            error,
            wait,
        )

    def _api_error(
        self, status: int, reason: str, body_text: str, headers: Mapping[str, str], what: str
    ) -> DataRobotApiError:
        body: Any = body_text
        server_message = body_text[:1000]
        try:
            body = json.loads(body_text) if body_text else None
            if isinstance(body, Mapping) and body.get("message") is not None:
                server_message = str(body["message"])
                if body.get("errors"):
                    server_message += f" {body['errors']}"
        except ValueError:
            pass
        message = self._scrub(f"{what} failed: HTTP {status} {reason}: {server_message}".rstrip(": "))
        return DataRobotApiError(
            message,
            http_status_code=status,
            response_body=body,
            retry_after=_parse_retry_after(headers.get("Retry-After")),
        )

    def _transport_error(
        self, exc: BaseException, what: str, url: str, *, never_sent: bool
    ) -> DataRobotRequestError:
        error = DataRobotRequestError(self._scrub(f"{what} failed: could not complete {url}: {exc}"))
        error.never_sent = never_sent  # type: ignore[attr-defined]
        error.__cause__ = exc
        return error

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        what: str,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        body_factory: Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        stream: bool = False,
        read_timeout: float | None = None,
    ) -> requests.Response:
        """Send one API request with the hook's retry policy and return the 2xx response.

        :param what: human description of the call, used in logs and errors.
        :param body_factory: builds a fresh body for each attempt (e.g. a file rewound to 0).
        :param idempotent: default ``True`` for GET/HEAD/DELETE, ``False`` otherwise.
        :raises DataRobotApiError: the server answered with an error status.
        :raises DataRobotRequestError: the request could not complete.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "DELETE")
        url = self.url(path_or_url)
        timeout = (self.connect_timeout, read_timeout or self.details.timeout_seconds)

        def attempt() -> requests.Response:
            data = body_factory() if body_factory else None
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    data=data,
                    headers=dict(headers or {}),
                    stream=stream,
                    timeout=timeout,
                )
            except requests.RequestException as exc:
                raise self._transport_error(exc, what, url, never_sent=_request_never_sent(exc)) from exc
            if response.status_code >= 400:
                try:
                    text = response.text
                finally:
                    response.close()
                raise self._api_error(
                    response.status_code, response.reason or "", text, response.headers, what
                )
            return response

        return self._retrying(idempotent, what)(attempt)

    def _json(self, response: requests.Response) -> Any:
        if not response.content:
            return None
        return response.json()

    # -----------------------------------------------------------------------------------------
    # API calls (sync)
    # -----------------------------------------------------------------------------------------

    def get_version(self) -> dict[str, Any]:
        """``GET version/``: the server's API version."""
        return self._json(self.request("GET", Route.VERSION, what="Get API version"))

    def test_connection(self) -> tuple[bool, str]:
        """Check the endpoint with ``GET version/`` and the token with a one-job listing; never raises.

        ``version/`` may answer without authentication, hence the second, authenticated request.
        """
        try:
            version = self.get_version()
            self.request("GET", Route.BATCH_PREDICTIONS, params={"limit": 1}, what="List jobs (token check)")
        except Exception as exc:
            return False, self._scrub(str(exc))
        return (
            True,
            f"Connected to the DataRobot API {version.get('versionString', '?')} at {self.details.endpoint}",
        )

    def get_job(self, job_id: str) -> dict[str, Any]:
        """``GET batchPredictions/{id}/``."""
        return self._json(self.request("GET", Route.job(job_id), what=f"Get batch prediction job {job_id}"))

    def list_jobs(
        self,
        *,
        deployment_id: str | None = None,
        statuses: list[str] | None = None,
        created_after: datetime | None = None,
        page_size: int = 100,
        **params: Any,
    ) -> list[dict[str, Any]]:
        """``GET batchPredictions/``, following ``next`` through every page.

        :param deployment_id: only jobs of this deployment.
        :param statuses: only jobs with one of these statuses.
        :param created_after: only jobs created at or after this time (server ``startDateTime``).
        :param params: any other query parameter of the API, in its camelCase spelling.
        """
        query: list[tuple[str, Any]] = [("offset", 0), ("limit", page_size)]
        if deployment_id:
            query.append(("deploymentId", deployment_id))
        for status in statuses or []:
            query.append(("status", status))
        if created_after is not None:
            query.append(("startDateTime", created_after.astimezone(UTC).isoformat()))
        query.extend(params.items())
        return list(self.paginate(Route.BATCH_PREDICTIONS, query, what="List batch prediction jobs"))

    def paginate(
        self,
        path: str,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        *,
        what: str,
    ) -> Iterator[dict[str, Any]]:
        """Yield every item of a list route, following ``next`` through the pages.

        ``params`` go with the first request only: ``next`` links already carry the query.
        """
        url: str | None = path
        query = params
        while url:
            page = self._json(self.request("GET", url, params=query, what=what)) or {}
            yield from page.get("data") or []
            url, query = page.get("next"), None

    def submit_job(self, settings: JobSettings | Mapping[str, Any]) -> dict[str, Any]:
        """Create a batch prediction job (``POST batchPredictions/``) and return its JSON.

        The POST is re-sent only when it provably never reached the server or the server answered
        429/503. After an ambiguous failure (500, read timeout, connection dropped after sending)
        the hook looks for the job the POST may have created (same deployment, created since just
        before the POST, ``jobSpec`` matching what was sent) and adopts it.

        :raises SettingsValidationError: the settings are invalid (nothing was sent).
        :raises DataRobotAmbiguousSubmitError: the POST may have created a job that cannot be found.
        """
        body = parse_job_settings(settings).to_wire()
        # A POST that failed ambiguously is sent again only once the lookups proved it created
        # nothing (so at most one job exists whatever happens), at most retry_limit times in all.
        for attempt in range(1, max(self.retry_limit, 1) + 1):
            posted_at = time.monotonic()
            local_posted_at = datetime.now(UTC)
            try:
                response = self.request(
                    "POST",
                    Route.BATCH_PREDICTIONS,
                    json_body=body,
                    idempotent=False,
                    what="Create batch prediction job",
                )
            except DataRobotApiError as exc:
                if exc.http_status_code < 500 or exc.http_status_code in NOT_PROCESSED_STATUSES:
                    raise
                failure: DataRobotError = exc
            except DataRobotRequestError as exc:
                if getattr(exc, "never_sent", False):
                    raise
                failure = exc
            else:
                job = self._json(response) or {}
                if not job.get("id"):
                    location = response.headers.get("Location", "").rstrip("/")
                    job = self.get_job(location.rsplit("/", 1)[-1])
                self.log.info("Created batch prediction job %s", job.get("id"))
                return job

            self.log.warning(
                "The job POST failed ambiguously (%s); looking up whether it created a job before "
                "deciding anything, so no second job is started",
                failure,
            )
            job = self._find_submitted_job(
                body, posted_at, local_posted_at, failure, last_attempt=attempt >= self.retry_limit
            )
            if job is not None:
                self.log.warning("Adopting batch prediction job %s created by the failed POST", job["id"])
                return job
            self.log.warning(
                "The failed POST created no job (attempt %d of %d); sending it again",
                attempt,
                self.retry_limit,
            )
        raise AssertionError("unreachable: the last attempt raises or returns")  # pragma: no cover

    def _server_time_of(self, posted_at: float, local_posted_at: datetime) -> datetime:
        """When the POST started, on the server's clock (from a ``Date`` header), minus a margin."""
        try:
            response = self.request("GET", Route.VERSION, what="Read the server clock")
            server_now = email.utils.parsedate_to_datetime(response.headers["Date"])
        except (DataRobotError, KeyError, TypeError, ValueError):
            return local_posted_at - timedelta(seconds=60)
        # The Date header has one-second resolution.
        return server_now - timedelta(seconds=time.monotonic() - posted_at + 2)

    def _find_submitted_job(
        self,
        body: Mapping[str, Any],
        posted_at: float,
        local_posted_at: datetime,
        failure: DataRobotError,
        *,
        last_attempt: bool = True,
    ) -> dict[str, Any] | None:
        """The job the failed POST created; ``None`` when every lookup succeeded and found none
        (the POST can be sent again), unless ``last_attempt``.

        :raises DataRobotAmbiguousSubmitError: several candidates, the lookups failed, or nothing
            was found on the last attempt.
        """
        local_intake = (body.get("intakeSettings") or {}).get("type", "localFile") == "localFile"
        candidates: list[dict[str, Any]] = []
        lookup_error: Exception | None = None
        # The server may still be creating the job when the first lookup runs.
        for lookup in range(3):
            if lookup:
                time.sleep(max(self.retry_delay, 0.5))
            try:
                since = self._server_time_of(posted_at, local_posted_at)
                jobs = self.list_jobs(
                    deployment_id=body.get("deploymentId"), created_after=since, orderBy="-created"
                )
            except DataRobotError as exc:
                lookup_error = exc
                continue
            candidates = [
                job
                for job in jobs
                if (created := _parse_timestamp(job.get("created"))) is not None
                and created >= since
                and _is_subset(body, job.get("jobSpec") or {})
                # A localFile job started by us is still waiting for our upload.
                and (not local_intake or job.get("status") == JobStatus.INITIALIZING.value)
            ]
            if candidates:
                break
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            ids = ", ".join(str(job.get("id")) for job in candidates)
            reason = f"several matching jobs were created meanwhile ({ids}); cannot tell which is ours"
        elif lookup_error is not None:
            reason = f"looking it up failed too: {lookup_error}"
        elif not last_attempt:
            return None
        else:
            reason = "no matching job was found"
        raise DataRobotAmbiguousSubmitError(
            self._scrub(
                f"Creating the batch prediction job failed ambiguously ({failure}) and {reason}. "
                "Not re-sending the POST, to avoid starting a duplicate job; check the deployment's "
                "jobs and retry the task."
            )
        )

    def cancel_job(self, job_id: str) -> bool:
        """Abort a job (``DELETE batchPredictions/{id}/``).

        :return: ``True`` if the server accepted the abort, ``False`` if the job had already ended
            or does not exist (404/409).
        """
        try:
            self.request("DELETE", Route.job(job_id), what=f"Abort batch prediction job {job_id}")
        except DataRobotApiError as exc:
            if exc.http_status_code in (404, 409):
                self.log.info("Job %s had already ended or is gone (HTTP %s)", job_id, exc.http_status_code)
                return False
            raise
        self.log.info("Aborted batch prediction job %s", job_id)
        return True

    def wait_for_job(
        self,
        job_id: str,
        *,
        poll_interval: float = 5.0,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        until: Callable[[Mapping[str, Any]], bool] = is_terminal,
        initial_interval: float | None = None,
    ) -> dict[str, Any]:
        """Poll a job until ``until(job)`` (default: a terminal status) and return its JSON.

        Does not raise on ``FAILED``/``ABORTED``: the caller decides (see :func:`raise_for_job`).

        :param on_progress: called with the job JSON after every poll.
        :param initial_interval: first wait between polls, doubled after every poll up to
            ``poll_interval`` (for states expected within a second, such as the download link).
        :raises DataRobotTimeoutError: ``timeout`` seconds passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = poll_interval if initial_interval is None else min(initial_interval, poll_interval)
        while True:
            job = self.get_job(job_id)
            if on_progress is not None:
                on_progress(job)
            if until(job) or is_terminal(job):
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise DataRobotTimeoutError(
                    f"Batch prediction job {job_id} is still {job.get('status')} after {timeout:g} s",
                    job_id=job_id,
                )
            sleep = interval if deadline is None else min(interval, max(deadline - time.monotonic(), 0))
            time.sleep(sleep)
            interval = min(interval * 2, poll_interval)

    # -----------------------------------------------------------------------------------------
    # Local files
    # -----------------------------------------------------------------------------------------

    def upload_csv(
        self,
        job: Mapping[str, Any],
        path: str | os.PathLike[str],
        *,
        multipart: bool = False,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        """Stream a local CSV to a ``localFile`` job (memory stays flat whatever the file size).

        :param multipart: send parts of about ``part_size`` bytes, each starting with the header
            row, then finalize (the job must have been created with ``multipart: true``).
        """
        links = job.get("links") or {}
        upload_url = links.get("csvUpload")
        if not upload_url:
            raise DataRobotError(
                f"Job {job.get('id')} takes no local file upload (no links.csvUpload): "
                "its intake is not localFile"
            )
        headers = {"Content-Type": "text/csv"}
        job_id = job.get("id")
        if not multipart:
            with open(path, "rb") as source:

                def rewound() -> IO[bytes]:
                    source.seek(0)
                    return source

                what = f"Upload {os.fspath(path)} to job {job_id}"
                for attempt in range(1, max(self.retry_limit, 1) + 1):
                    try:
                        self.request(
                            "PUT",
                            upload_url,
                            body_factory=rewound,
                            headers=headers,
                            idempotent=False,
                            read_timeout=STREAM_READ_TIMEOUT,
                            what=what,
                        )
                        break
                    except DataRobotApiError as exc:
                        if attempt > 1 and exc.http_status_code == 409 and "already begun" in str(exc):
                            # An earlier PUT that failed ambiguously reached the server after all;
                            # the job reads that upload (and is aborted by the server if it was cut).
                            self.log.warning(
                                "%s: the server already has the upload an earlier attempt sent", what
                            )
                            break
                        if attempt >= self.retry_limit or not _ambiguous(exc):
                            raise
                        failure: DataRobotError = exc
                    except DataRobotRequestError as exc:
                        if attempt >= self.retry_limit or getattr(exc, "never_sent", False):
                            raise
                        failure = exc
                    # A second PUT cannot start a second job: the server takes a job's data once
                    # and answers 409 if the failed one reached it.
                    self.log.warning("%s failed ambiguously (%s); sending it again", what, failure)
            self.log.info("Uploaded %s to job %s", os.fspath(path), job_id)
            return
        quotechar = ((job.get("jobSpec") or {}).get("csvSettings") or {}).get("quotechar") or '"'
        base = upload_url.rstrip("/") + "/"
        parts = 0
        for number, part in enumerate(iter_csv_parts(path, part_size=part_size, quotechar=quotechar)):
            self.request(
                "PUT",
                f"{base}part/{number}/",
                body_factory=_constant(part),
                headers=headers,
                idempotent=False,
                read_timeout=STREAM_READ_TIMEOUT,
                what=f"Upload part {number} of {os.fspath(path)} to job {job_id}",
            )
            parts += 1
        self.request(
            "POST",
            f"{base}finalizeMultipart/",
            idempotent=False,
            what=f"Finalize the multipart upload of job {job_id}",
        )
        self.log.info("Uploaded %s to job %s in %d parts", os.fspath(path), job_id, parts)

    def download_results(
        self,
        job: Mapping[str, Any] | str,
        path: str | os.PathLike[str],
        *,
        poll_interval: float = 1.0,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Stream a ``localFile`` job's scored CSV to ``path``, atomically.

        Waits for ``links.download`` (it appears once the job runs), streams it into a temporary
        file in the target directory while the job is still scoring, then waits for the job to end
        and moves the file into place only if the job COMPLETED. On any failure the temporary file
        is removed and ``path`` is left untouched.

        :return: the final job JSON.
        :raises DataRobotJobFailedError: the job ended ``FAILED`` or ``ABORTED``.
        :raises DataRobotTimeoutError: ``timeout`` seconds passed first.
        """
        job_id = job if isinstance(job, str) else str(job["id"])
        deadline = None if timeout is None else time.monotonic() + timeout

        def remaining() -> float | None:
            return None if deadline is None else max(deadline - time.monotonic(), 0.0)

        current = self.wait_for_job(
            job_id,
            poll_interval=poll_interval,
            timeout=remaining(),
            on_progress=on_progress,
            until=lambda j: bool((j.get("links") or {}).get("download")),
            # The link appears as soon as the job runs, usually well within a second.
            initial_interval=LINK_POLL_INITIAL_INTERVAL,
        )
        failed = raise_for_job(current)
        if failed is not None:
            raise failed
        download_url = (current.get("links") or {}).get("download")
        if not download_url:
            raise DataRobotError(f"Job {job_id} has no download link: its output is not localFile")
        target = os.path.abspath(os.fspath(path))
        handle, temp_path = tempfile.mkstemp(
            dir=os.path.dirname(target), prefix=f".{os.path.basename(target)}.", suffix=".part"
        )
        try:
            with os.fdopen(handle, "wb") as out:
                try:
                    response = self.request(
                        "GET",
                        download_url,
                        stream=True,
                        read_timeout=STREAM_READ_TIMEOUT,
                        what=f"Download the results of job {job_id}",
                    )
                    with response:
                        for chunk in response.iter_content(DOWNLOAD_CHUNK_SIZE):
                            out.write(chunk)
                except (DataRobotError, requests.RequestException) as exc:
                    # A job that ends FAILED/ABORTED meanwhile refuses (422) or cuts the download:
                    # report the job's reason rather than the transport symptom.
                    failed = raise_for_job(self.get_job(job_id))
                    if failed is not None:
                        raise failed from exc
                    raise
            final = (
                current
                if is_terminal(current)
                else self.wait_for_job(
                    job_id,
                    poll_interval=poll_interval,
                    timeout=remaining(),
                    on_progress=on_progress,
                    # The result stream ends when the job does: its final status is moments away.
                    initial_interval=LINK_POLL_INITIAL_INTERVAL,
                )
            )
            error = raise_for_job(final)
            if error is not None:
                raise error
            os.replace(temp_path, target)
        except BaseException:
            if os.path.exists(temp_path):
                os.unlink(temp_path)
            raise
        self.log.info("Wrote the results of job %s to %s", job_id, target)
        return final

    # -----------------------------------------------------------------------------------------
    # Async (triggers)
    # -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> DataRobotHook:
        details = await self.a_details()
        self._a_session = aiohttp.ClientSession(
            connector=_shared_connector(),
            connector_owner=False,
            headers=self._headers(details),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=self.connect_timeout, sock_read=details.timeout_seconds
            ),
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._a_session is not None:
            await self._a_session.close()
            self._a_session = None

    async def a_request(self, method: str, path_or_url: str, *, what: str) -> Any:
        """Async twin of :meth:`request` for idempotent calls; returns the decoded JSON (or ``None``)."""
        method = method.upper()
        if self._a_session is None:
            async with self:
                return await self.a_request(method, path_or_url, what=what)
        session = self._a_session
        details = await self.a_details()
        url = self.url(path_or_url)

        async def send() -> Any:
            try:
                async with session.request(method, url, ssl=details.verify_ssl) as resp:
                    text = await resp.text()
                    if resp.status >= 400:
                        raise self._api_error(resp.status, resp.reason or "", text, resp.headers, what)
            except (aiohttp.ClientError, TimeoutError) as exc:
                never_sent = isinstance(exc, aiohttp.ClientConnectorError)
                raise self._transport_error(exc, what, url, never_sent=never_sent) from exc
            return json.loads(text) if text else None

        # First attempt outside tenacity: setting up its retry state was a third of a trigger's
        # CPU per poll (py-spy), and nearly every poll succeeds at once.
        try:
            return await send()
        except Exception as exc:
            if self.retry_limit <= 1 or not self._should_retry(exc, True):
                raise
            first_error: BaseException | None = exc
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry_limit),
            wait=_RetryAfterOrBackoff(self.retry_delay, self.max_retry_delay),
            retry=retry_if_exception(lambda exc: self._should_retry(exc, True)),
            before_sleep=lambda state: self._log_retry(state, what),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if first_error is not None:
                    # Replay the first failure as tenacity's attempt 1 (same waits, logs, count).
                    error, first_error = first_error, None
                    raise error
                return await send()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def a_get_job(self, job_id: str) -> dict[str, Any]:
        """Async twin of :meth:`get_job`."""
        return await self.a_request("GET", Route.job(job_id), what=f"Get batch prediction job {job_id}")

    async def a_cancel_job(self, job_id: str) -> bool:
        """Async twin of :meth:`cancel_job`."""
        try:
            await self.a_request("DELETE", Route.job(job_id), what=f"Abort batch prediction job {job_id}")
        except DataRobotApiError as exc:
            if exc.http_status_code in (404, 409):
                self.log.info("Job %s had already ended or is gone (HTTP %s)", job_id, exc.http_status_code)
                return False
            raise
        self.log.info("Aborted batch prediction job %s", job_id)
        return True


#: One connection pool per event loop, shared by every hook session on it: a triggerer running
#: 1,000 triggers keeps a few dozen warm keep-alive connections instead of 1,000 sockets that the
#: server closes between polls (a new TCP connection per poll).
_CONNECTORS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, tuple[aiohttp.TCPConnector, asyncio.Task[None]]
] = weakref.WeakKeyDictionary()
ASYNC_CONNECTION_LIMIT = 64


async def _close_at_loop_shutdown(connector: aiohttp.TCPConnector) -> None:
    """Wait until cancelled, then close ``connector``.

    ``asyncio.run()`` (and so ``dag.test()``'s inline triggers) cancels the tasks left on a loop
    before closing it; without this the pool's keep-alive sockets outlived their loop and were
    reported as "Unclosed connector" when collected.
    """
    try:
        await asyncio.Event().wait()
    finally:
        await connector.close()


def _shared_connector() -> aiohttp.TCPConnector:
    loop = asyncio.get_running_loop()
    entry = _CONNECTORS.get(loop)
    if entry is None or entry[0].closed:
        connector = aiohttp.TCPConnector(limit=ASYNC_CONNECTION_LIMIT, keepalive_timeout=30)
        # The entry keeps the task referenced: the loop itself holds its tasks only weakly.
        keeper = loop.create_task(_close_at_loop_shutdown(connector), name="batchpred-connection-pool")
        entry = _CONNECTORS[loop] = (connector, keeper)
    return entry[0]


def _ambiguous(error: DataRobotApiError) -> bool:
    """A 5xx the server may have answered after doing the work (429/503 are retried already)."""
    return error.http_status_code >= 500 and error.http_status_code not in NOT_PROCESSED_STATUSES


def _constant(body: bytes) -> Callable[[], bytes]:
    return lambda: body


def raise_for_job(job: Mapping[str, Any]) -> DataRobotJobFailedError | None:
    """Return (not raise) the error for a ``FAILED``/``ABORTED`` job, or ``None``."""
    status = job_status(job)
    if status in (JobStatus.FAILED, JobStatus.ABORTED):
        return DataRobotJobFailedError.from_job(job)
    return None


def iter_csv_parts(path: str | os.PathLike[str], *, part_size: int, quotechar: str = '"') -> Iterator[bytes]:
    """Split a CSV into parts of about ``part_size`` bytes, each starting with the header row.

    Records are never cut: a line inside a quoted field (odd number of quote characters so far)
    stays with its record. Works on the raw bytes of any ASCII-compatible encoding (UTF-8,
    Latin-1, Shift-JIS: their multi-byte sequences never contain quote or newline bytes).
    """
    quote = quotechar.encode("ascii")

    def records(source: IO[bytes]) -> Iterator[bytes]:
        pending: list[bytes] = []
        quotes = 0
        for line in source:
            pending.append(line)
            quotes += line.count(quote)
            if quotes % 2 == 0:
                yield b"".join(pending)
                pending, quotes = [], 0
        if pending:
            yield b"".join(pending)

    with open(path, "rb") as source:
        rows = records(source)
        header = next(rows, None)
        if header is None:
            return
        if not header.endswith(b"\n"):
            header += b"\n"
        part: list[bytes] = [header]
        size = len(header)
        for record in rows:
            if size + len(record) > part_size and len(part) > 1:
                yield b"".join(part)
                part, size = [header], len(header)
            part.append(record)
            size += len(record)
        if len(part) > 1:
            yield b"".join(part)
