"""Extra link from a task to its batch prediction job."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)

#: XCom key of the job URL; operators push it *before* waiting or deferring.
JOB_URL_XCOM_KEY = "job_url"
JOB_ID_XCOM_KEY = "job_id"


class DataRobotBatchPredictionJobLink(BaseOperatorLink):
    """Open the batch prediction job (its ``links.self`` URL) of a task, even while it is deferred."""

    name = "DataRobot Batch Prediction Job"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        try:
            from airflow.sdk.execution_time.xcom import XCom

            url = XCom.get_value(key=JOB_URL_XCOM_KEY, ti_key=ti_key)
        except Exception:
            log.debug("No job URL for %s", ti_key, exc_info=True)
            return ""
        return url if isinstance(url, str) else ""
