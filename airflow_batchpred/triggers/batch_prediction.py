"""Trigger that waits in the triggerer for a batch prediction job to end."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_batchpred.contract import FAILED_STATUSES, JobStatus
from airflow_batchpred.hooks.datarobot import DataRobotHook, is_terminal, job_status

#: Job fields copied into the event (the full job JSON can carry long log lists).
EVENT_JOB_FIELDS = (
    "id",
    "status",
    "statusDetails",
    "percentageCompleted",
    "elapsedTimeSec",
    "scoredRows",
    "failedRows",
    "skippedRows",
    "links",
    "jobSpec",
)
EVENT_LOG_LINES = 20


def progress_key(job: dict[str, Any]) -> tuple[Any, ...]:
    """What "progress changed" means for logging: status, percentage, rows."""
    return (
        job.get("status"),
        job.get("percentageCompleted"),
        job.get("scoredRows"),
        job.get("failedRows"),
        job.get("queuePosition"),
    )


def trim_job(job: dict[str, Any]) -> dict[str, Any]:
    """The JSON-safe subset of a job that travels in events."""
    trimmed = {key: job[key] for key in EVENT_JOB_FIELDS if key in job}
    trimmed["logs"] = list(job.get("logs") or [])[-EVENT_LOG_LINES:]
    return trimmed


class DataRobotBatchPredictionJobTrigger(BaseTrigger):
    """Poll a batch prediction job until it ends or a deadline passes; fire exactly one event.

    The event payload is ``{"status": "success" | "error" | "timeout", "job_id", "job_status",
    "message", "job"}`` where ``job`` is a trimmed copy of the job JSON.

    :param job_id: the batch prediction job to watch.
    :param datarobot_conn_id: the ``datarobot`` connection.
    :param poll_interval: seconds between status requests.
    :param end_time: absolute deadline in epoch seconds (``time.time()``), or ``None`` for none;
        absolute so that a trigger restarted on another triggerer keeps the same deadline.
    :param cancel_on_kill: abort the job when the user kills the deferred task.
    :param hook_params: JSON-safe keyword arguments of :class:`DataRobotHook` (e.g. ``retry_limit``).
    """

    def __init__(
        self,
        job_id: str,
        datarobot_conn_id: str = DataRobotHook.default_conn_name,
        poll_interval: float = 10.0,
        end_time: float | None = None,
        cancel_on_kill: bool = True,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        hook_params = dict(hook_params or {})
        try:
            json.dumps(hook_params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"hook_params must be JSON-serializable to reach the triggerer: {exc}") from None
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval}")
        self.job_id = str(job_id)
        self.datarobot_conn_id = datarobot_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.hook_params = hook_params

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "datarobot_conn_id": self.datarobot_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "cancel_on_kill": self.cancel_on_kill,
                "hook_params": dict(self.hook_params),
            },
        )

    def _hook(self) -> DataRobotHook:
        return DataRobotHook(self.datarobot_conn_id, **self.hook_params)

    def _event(self, status: str, message: str, job: dict[str, Any] | None) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "job_id": self.job_id,
                "job_status": (job or {}).get("status"),
                "message": message,
                "job": trim_job(job) if job else None,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        job: dict[str, Any] | None = None
        try:
            async with self._hook() as hook:
                last_progress: tuple[Any, ...] | None = None
                loop = asyncio.get_running_loop()
                while True:
                    # Fixed-rate polls: a slow answer does not push every later poll back.
                    next_poll = loop.time() + self.poll_interval
                    job = await hook.a_get_job(self.job_id)
                    if progress_key(job) != last_progress:
                        last_progress = progress_key(job)
                        self.log.info(
                            "Job %s: %s, %s%% done, %s rows scored, %s failed",
                            self.job_id,
                            job.get("status"),
                            job.get("percentageCompleted"),
                            job.get("scoredRows"),
                            job.get("failedRows"),
                        )
                    if is_terminal(job):
                        status = job_status(job)
                        if status in FAILED_STATUSES:
                            message = (
                                f"Job {self.job_id} ended {job.get('status')}: {job.get('statusDetails')}"
                            )
                            yield self._event("error", message, job)
                        else:
                            yield self._event(
                                "success", f"Job {self.job_id} {JobStatus.COMPLETED.value}", job
                            )
                        return
                    now = time.time()
                    if self.end_time is not None and now >= self.end_time:
                        yield self._event(
                            "timeout",
                            f"Job {self.job_id} is still {job.get('status')} at the deadline",
                            job,
                        )
                        return
                    wait = max(next_poll - loop.time(), 0.0)
                    if self.end_time is not None:
                        wait = min(wait, max(self.end_time - now, 0.0))
                    await asyncio.sleep(wait)
        except Exception as exc:
            self.log.exception("Watching job %s failed", self.job_id)
            yield self._event("error", f"Watching job {self.job_id} failed: {exc}", job)
            return

    async def on_kill(self) -> None:
        """Abort the job when a user kills the deferred task (never on triggerer restarts)."""
        if not self.cancel_on_kill:
            return
        try:
            async with self._hook() as hook:
                await hook.a_cancel_job(self.job_id)
        except Exception:
            self.log.warning("Could not abort job %s on kill", self.job_id, exc_info=True)
