"""DAGs the object-storage tests run with ``dag.test()`` (``tests/object_storage``).

Arguments come from the run's ``params``, rendered as native objects, so one DAG serves many
tests: settings dicts may name ``aws_conn_id``/``wasb_conn_id``/``gcp_conn_id`` or a
``credential`` object, which the operator resolves into a DataRobot credential id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG

from airflow_batchpred.operators.batch_prediction import DataRobotBatchPredictionOperator
from airflow_batchpred.operators.s3 import DataRobotS3BatchPredictionOperator

START = datetime(2026, 1, 1)
FAST_HOOK = {"retry_limit": 2, "retry_delay": 0.05, "max_retry_delay": 0.1}

BASE_PARAMS: dict[str, Any] = {
    "deployment_id": "",
    "intake_settings": None,
    "output_settings": None,
    "input_file": None,
    "output_file": None,
    "max_explanations": None,
    "passthrough_columns_set": None,
}

with DAG(
    dag_id="batchpred_object_storage_base_operator",
    schedule=None,
    start_date=START,
    catchup=False,
    render_template_as_native_obj=True,
    params=BASE_PARAMS,
):
    DataRobotBatchPredictionOperator(
        task_id="score",
        deployment_id="{{ params.deployment_id }}",
        intake_settings="{{ params.intake_settings }}",  # type: ignore[arg-type]  # rendered natively
        output_settings="{{ params.output_settings }}",  # type: ignore[arg-type]
        input_file="{{ params.input_file }}",
        output_file="{{ params.output_file }}",
        max_explanations="{{ params.max_explanations }}",  # type: ignore[arg-type]
        passthrough_columns_set="{{ params.passthrough_columns_set }}",
        poll_interval=0.2,
        hook_params=FAST_HOOK,
    )

S3_PARAMS: dict[str, Any] = {
    "deployment_id": "",
    "source_url": None,
    "destination_url": None,
    "aws_conn_id": None,
    "credential_id": None,
    "endpoint_url": None,
    "output_file": None,
    "passthrough_columns_set": None,
    "deferrable": False,
}

for deferrable in (False, True):
    with DAG(
        dag_id=f"batchpred_object_storage_s3_{'deferred' if deferrable else 'sync'}",
        schedule=None,
        start_date=START,
        catchup=False,
        render_template_as_native_obj=True,
        params=S3_PARAMS,
    ):
        DataRobotS3BatchPredictionOperator(
            task_id="score",
            deployment_id="{{ params.deployment_id }}",
            source_url="{{ params.source_url }}",
            destination_url="{{ params.destination_url }}",
            aws_conn_id="{{ params.aws_conn_id }}",
            credential_id="{{ params.credential_id }}",
            endpoint_url="{{ params.endpoint_url }}",
            output_file="{{ params.output_file }}",
            passthrough_columns_set="{{ params.passthrough_columns_set }}",
            deferrable=deferrable,
            poll_interval=0.2,
            hook_params=FAST_HOOK,
        )
