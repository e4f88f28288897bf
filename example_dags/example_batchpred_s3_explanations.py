"""The seed's S3 example with prediction explanations (``max_explanations=10, threshold_high=0.5,
threshold_low=0.15``): only rows whose prediction is above 0.5 or below 0.15 are explained.

Same parameters as ``example_batchpred_s3`` (see there), plus the three explanation settings.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_batchpred.operators.s3 import DataRobotS3BatchPredictionOperator

with DAG(
    dag_id="example_batchpred_s3_explanations",
    description="Score a CSV on S3 into S3 with prediction explanations",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "datarobot", "batch-prediction", "s3"],
    params={
        "deployment_id": Param(os.environ.get("BATCHPRED_DEMO_DEPLOYMENT", ""), type="string"),
        "source_url": Param(
            os.environ.get("BATCHPRED_S3_SOURCE_URL", "s3://my-bucket/data/to_predict.csv"), type="string"
        ),
        "destination_url": Param(
            os.environ.get("BATCHPRED_S3_DESTINATION_URL", "s3://my-bucket/data/predicted.csv"),
            type="string",
        ),
        "aws_conn_id": Param(os.environ.get("BATCHPRED_AWS_CONN_ID", "aws_default"), type="string"),
        "endpoint_url": Param(os.environ.get("BATCHPRED_S3_ENDPOINT_URL", ""), type="string"),
        "max_explanations": Param(10, type="integer", minimum=0, maximum=100),
        "threshold_high": Param(0.5, type="number"),
        "threshold_low": Param(0.15, type="number"),
    },
) as dag:
    DataRobotS3BatchPredictionOperator(
        task_id="score_s3_with_explanations",
        deployment_id="{{ params.deployment_id }}",
        source_url="{{ params.source_url }}",
        destination_url="{{ params.destination_url }}",
        aws_conn_id="{{ params.aws_conn_id }}",
        endpoint_url="{{ params.endpoint_url }}",
        max_explanations="{{ params.max_explanations }}",
        threshold_high="{{ params.threshold_high }}",
        threshold_low="{{ params.threshold_low }}",
        poll_interval=1.0,
        timeout=3600,
    )
