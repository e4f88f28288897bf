"""Score a BigQuery table into another BigQuery table (the seed's BigQuery example).

As in the seed, the job adds a ``prediction_status`` column and passes ``some_col_name`` (here
``id``) through. The GCP credential is the Airflow ``google_cloud_platform`` connection
``batchpred_gcp``, mirrored at run time into a DataRobot ``gcp`` credential named after it.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_batchpred.operators.bigquery import DataRobotBigQueryBatchPredictionOperator

with DAG(
    dag_id="example_batchpred_bigquery",
    description="Score a BigQuery table into a BigQuery table",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["example", "datarobot", "batch-prediction", "bigquery"],
    params={
        "deployment_id": Param(os.environ.get("BATCHPRED_DEMO_DEPLOYMENT", ""), type="string"),
        "gcp_conn_id": Param("batchpred_gcp", type="string"),
        "dataset": Param("my_dataset", type="string"),
        "intake_table": Param("intake_table", type="string"),
        "output_table": Param("output_table", type="string"),
        "bucket": Param("my-bucket", type="string"),
        "passthrough_columns": Param(["id"], type="array"),
    },
) as dag:
    DataRobotBigQueryBatchPredictionOperator(
        task_id="score_bigquery_table",
        deployment_id="{{ params.deployment_id }}",
        gcp_conn_id="{{ params.gcp_conn_id }}",
        source_dataset="{{ params.dataset }}",
        source_table="{{ params.intake_table }}",
        target_table="{{ params.output_table }}",
        bucket="{{ params.bucket }}",
        include_prediction_status=True,
        passthrough_columns="{{ params.passthrough_columns }}",
        poll_interval=0.5,
        timeout=3600,
    )
