"""DAGs the provider tests run with ``dag.test()`` against the local server.

Arguments come from the run's ``params`` (rendered as native objects), so one DAG serves many tests.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from typing import Any

import requests
from airflow.sdk import DAG

from airflow_batchpred.operators.batch_prediction import DataRobotBatchPredictionOperator
from airflow_batchpred.operators.local_file import DataRobotLocalFileBatchPredictionOperator
from airflow_batchpred.sensors.batch_prediction import DataRobotBatchPredictionJobSensor

START = datetime(2026, 1, 1)
#: Fast retries so fault-injection tests do not wait for production backoff.
FAST_HOOK = {"retry_limit": 2, "retry_delay": 0.05, "max_retry_delay": 0.1}


def clear_server_faults(context: Any) -> None:
    """``on_retry_callback``: stop the injected faults so the next try meets a healthy server."""
    connection = json.loads(os.environ["AIRFLOW_CONN_DATAROBOT_DEFAULT"])
    requests.delete(
        f"{connection['extra']['endpoint']}/admin/faults/",
        headers={"Authorization": f"Bearer {connection['password']}"},
        timeout=30,
    ).raise_for_status()


def _local_file_task(task_id: str, **kwargs: Any) -> DataRobotLocalFileBatchPredictionOperator:
    return DataRobotLocalFileBatchPredictionOperator(
        task_id=task_id,
        deployment_id="{{ params.deployment_id }}",
        input_file="{{ params.input_file }}",
        output_file="{{ params.output_file }}",
        max_explanations="{{ params.max_explanations }}",
        threshold_high="{{ params.threshold_high }}",
        threshold_low="{{ params.threshold_low }}",
        csv_settings="{{ params.csv_settings }}",
        passthrough_columns="{{ params.passthrough_columns }}",
        poll_interval=0.2,
        hook_params=FAST_HOOK,
        **kwargs,
    )


LOCAL_FILE_PARAMS: dict[str, Any] = {
    "deployment_id": "",
    "input_file": "",
    "output_file": "",
    "max_explanations": None,
    "threshold_high": None,
    "threshold_low": None,
    "csv_settings": None,
    "passthrough_columns": None,
}

for mode, deferrable in (("sync", False), ("deferred", True)):
    with DAG(
        dag_id=f"batchpred_local_file_{mode}",
        schedule=None,
        start_date=START,
        catchup=False,
        render_template_as_native_obj=True,
        params=LOCAL_FILE_PARAMS,
    ):
        _local_file_task("score", deferrable=deferrable)

    # A first try that loses the API mid-wait (the test injects 503s on the job's status route);
    # its retry must find and finish the same job.
    with DAG(
        dag_id=f"batchpred_reattach_{mode}",
        schedule=None,
        start_date=START,
        catchup=False,
        render_template_as_native_obj=True,
        params=LOCAL_FILE_PARAMS,
        default_args={"retries": 1, "retry_delay": timedelta(0)},
    ):
        _local_file_task("score", deferrable=deferrable, on_retry_callback=clear_server_faults)

    with DAG(
        dag_id=f"batchpred_timeout_{mode}",
        schedule=None,
        start_date=START,
        catchup=False,
        render_template_as_native_obj=True,
        params=LOCAL_FILE_PARAMS,
    ):
        _local_file_task("score", deferrable=deferrable, timeout=3)

    with DAG(
        dag_id=f"batchpred_sensor_{mode}",
        schedule=None,
        start_date=START,
        catchup=False,
        params={"job_id": ""},
    ):
        DataRobotBatchPredictionJobSensor(
            task_id="wait",
            job_id="{{ params.job_id }}",
            deferrable=deferrable,
            poke_interval=0.2,
            timeout=120,
            hook_params=FAST_HOOK,
        )

# execution_timeout kills the sync wait; on_kill must abort the job on the server.
with DAG(
    dag_id="batchpred_kill_sync",
    schedule=None,
    start_date=START,
    catchup=False,
    render_template_as_native_obj=True,
    params=LOCAL_FILE_PARAMS,
):
    _local_file_task("score", deferrable=False, execution_timeout=timedelta(seconds=3))

# In deferred mode Airflow would fail the task at execution_timeout without any on_kill: the
# trigger must give up first, so that execute_complete aborts the job.
with DAG(
    dag_id="batchpred_execution_timeout_deferred",
    schedule=None,
    start_date=START,
    catchup=False,
    render_template_as_native_obj=True,
    params=LOCAL_FILE_PARAMS,
):
    _local_file_task("score", deferrable=True, execution_timeout=timedelta(seconds=14))

# Invalid arguments fail the task at once, without using its retries.
with DAG(
    dag_id="batchpred_invalid_settings",
    schedule=None,
    start_date=START,
    catchup=False,
    render_template_as_native_obj=True,
    params={"deployment_id": "", "intake_settings": None, "max_explanations": None},
    default_args={"retries": 2, "retry_delay": timedelta(0)},
):
    DataRobotBatchPredictionOperator(
        task_id="score",
        deployment_id="{{ params.deployment_id }}",
        intake_settings="{{ params.intake_settings }}",
        output_settings={"type": "s3", "url": "s3://bucket/out.csv"},
        max_explanations="{{ params.max_explanations }}",
        hook_params=FAST_HOOK,
    )
