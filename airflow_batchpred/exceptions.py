"""Errors raised by the DataRobot batch prediction hook, operators, sensor and trigger.

Every class derives from :class:`~airflow.sdk.exceptions.AirflowException`, so Airflow handles them
like any task failure (with retries), except :class:`DataRobotSettingsError`, which derives from
:class:`~airflow.sdk.exceptions.AirflowFailException`: a wrong argument will not fix itself on retry.

No message built here ever contains the API token: callers pass server messages and job fields
only, and the hook scrubs the token from anything it wraps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class DataRobotError(AirflowException):
    """Base class of every error raised by this provider."""


class DataRobotConnectionError(DataRobotError):
    """The Airflow connection is missing a field or holds an invalid value."""


class DataRobotApiError(DataRobotError):
    """The API answered with an HTTP error (after any retries).

    :param message: what was attempted and what the server said.
    :param http_status_code: the HTTP status of the last response.
    :param response_body: the decoded error body (``{"message": ...}`` on DataRobot), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status_code: int,
        response_body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status_code = http_status_code
        self.response_body = response_body
        self.retry_after = retry_after


class DataRobotRequestError(DataRobotError):
    """A request could not complete (connection refused, reset, timed out) after any retries."""


class DataRobotAmbiguousSubmitError(DataRobotError):
    """A job-creating POST may or may not have reached the server, and no job could be matched.

    Raised instead of re-sending the POST, because a blind re-send could start a second job.
    """


class DataRobotTimeoutError(DataRobotError):
    """The job did not reach a terminal status within the operator's ``timeout``."""

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class DataRobotJobFailedError(DataRobotError):
    """The job ended ``FAILED`` or ``ABORTED`` (or could not produce its output).

    :param job_id: id of the batch prediction job.
    :param status: the job's final status.
    :param status_details: the server's reason (``statusDetails``).
    :param logs: the job's log lines; the last few are quoted in the message.
    """

    #: How many trailing job log lines go into the message.
    LOG_LINES_SHOWN = 5

    def __init__(
        self,
        *,
        job_id: str,
        status: str,
        status_details: str | None = None,
        logs: Sequence[str] | None = None,
        message: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.status = status
        self.status_details = status_details or ""
        self.logs = list(logs or [])
        text = message or f"Batch prediction job {job_id} ended {status}"
        if self.status_details:
            text += f": {self.status_details}"
        tail = self.logs[-self.LOG_LINES_SHOWN :]
        if tail:
            text += "\nLast job log lines:\n" + "\n".join(f"  {line}" for line in tail)
        super().__init__(text)

    @classmethod
    def from_job(cls, job: Mapping[str, Any], *, message: str | None = None) -> DataRobotJobFailedError:
        """Build the error from a job JSON object."""
        return cls(
            job_id=str(job.get("id", "?")),
            status=str(job.get("status", "UNKNOWN")),
            status_details=job.get("statusDetails"),
            logs=job.get("logs") or [],
            message=message,
        )


class DataRobotSettingsError(AirflowFailException):
    """Invalid operator arguments: the task fails at once, without retries, before any request.

    :param problems: ``(argument or field path, message)`` pairs, as produced by
        :class:`airflow_batchpred.contract.SettingsValidationError`.
    :param task_id: the task whose arguments are wrong, to name it in the message.
    """

    def __init__(self, problems: Sequence[tuple[str, str]], *, task_id: str | None = None) -> None:
        self.problems = list(problems)
        where = f" of task {task_id!r}" if task_id else ""
        lines = "\n".join(f"  - {path}: {message}" for path, message in self.problems)
        super().__init__(
            f"Invalid batch prediction arguments{where}; fix them and re-run (nothing was sent):\n{lines}"
        )
