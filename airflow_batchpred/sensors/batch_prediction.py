"""Sensor that waits for a batch prediction job started elsewhere."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, conf
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_batchpred.contract import FAILED_STATUSES, JobStatus
from airflow_batchpred.exceptions import DataRobotError, DataRobotJobFailedError
from airflow_batchpred.hooks.datarobot import DataRobotHook, job_status
from airflow_batchpred.links import DataRobotBatchPredictionJobLink
from airflow_batchpred.triggers.batch_prediction import DataRobotBatchPredictionJobTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class DataRobotBatchPredictionJobSensor(BaseSensorOperator):
    """Wait until a batch prediction job COMPLETES; fail if it ends ``FAILED`` or ``ABORTED``.

    The sensor never aborts the job (it did not start it), not even when it times out.

    :param job_id: the job to wait for (templated, e.g. ``{{ ti.xcom_pull(task_ids='x', key='job_id') }}``).
    :param datarobot_conn_id: the ``datarobot`` connection.
    :param hook_params: JSON-safe extra arguments of :class:`DataRobotHook`.
    :param deferrable: wait in the triggerer (default: Airflow's ``[operators] default_deferrable``).
    """

    template_fields = ("job_id",)
    operator_extra_links = (DataRobotBatchPredictionJobLink(),)

    def __init__(
        self,
        *,
        job_id: str,
        datarobot_conn_id: str = DataRobotHook.default_conn_name,
        hook_params: dict[str, Any] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        if deferrable:
            kwargs.setdefault("poke_interval", 5)
            kwargs.setdefault("timeout", timedelta(days=7).total_seconds())
        super().__init__(**kwargs)
        self.job_id = job_id
        self.datarobot_conn_id = datarobot_conn_id
        self.hook_params = dict(hook_params or {})
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> DataRobotHook:
        return DataRobotHook(self.datarobot_conn_id, **self.hook_params)

    def _check(self, job: Mapping[str, Any]) -> bool:
        status = job_status(job)
        if status in FAILED_STATUSES:
            raise DataRobotJobFailedError.from_job(job)
        self.log.info("Job %s: %s, %s%% done", self.job_id, job.get("status"), job.get("percentageCompleted"))
        return status == JobStatus.COMPLETED

    def poke(self, context: Context) -> bool:
        return self._check(self.hook.get_job(self.job_id))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        self.defer(
            trigger=DataRobotBatchPredictionJobTrigger(
                job_id=self.job_id,
                datarobot_conn_id=self.datarobot_conn_id,
                poll_interval=float(self.poke_interval),
                end_time=time.time() + float(self.timeout),
                cancel_on_kill=False,
                hook_params=self.hook_params,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        if not event or event.get("status") not in ("success", "error", "timeout"):
            raise DataRobotError(f"Unexpected event from the batch prediction trigger: {event!r}")
        if event["status"] == "timeout":
            raise AirflowSensorTimeout(f"Sensor timed out: {event.get('message')}")
        if event["status"] == "error":
            job = event.get("job") or {}
            if job_status(job) in FAILED_STATUSES:
                raise DataRobotJobFailedError.from_job(job)
            raise DataRobotError(str(event.get("message")))
        self.log.info("Job %s COMPLETED", self.job_id)
