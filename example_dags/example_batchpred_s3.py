"""The seed's "End-to-end scoring of CSV files on S3", as a DAG: S3 in, S3 out, no local data.

``dr.BatchPredictionJob.score_s3(deployment_id, source_url=..., destination_url=...,
credential=credential_id)`` becomes :class:`DataRobotS3BatchPredictionOperator`. The S3 keys come
from the Airflow ``aws`` connection ``aws_conn_id`` (mapped to a DataRobot credential on first
use and kept in step with it); give ``credential_id`` instead to use an existing credential.

Parameters (defaults from the environment):

* ``deployment_id`` (``BATCHPRED_DEMO_DEPLOYMENT``);
* ``source_url`` (``BATCHPRED_S3_SOURCE_URL``, default ``s3://my-bucket/data/to_predict.csv``);
* ``destination_url`` (``BATCHPRED_S3_DESTINATION_URL``, default ``s3://my-bucket/data/predicted.csv``);
* ``aws_conn_id`` (``BATCHPRED_AWS_CONN_ID``, default ``aws_default``);
* ``endpoint_url`` (``BATCHPRED_S3_ENDPOINT_URL``; empty = AWS, or the connection's ``endpoint_url``);
* ``format``: ``csv`` or ``parquet``.

Against the local server and moto: start both, point ``datarobot_default`` at the server and
``aws_default`` at moto (keys in login/password, ``endpoint_url`` in extra), upload a CSV, trigger.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_batchpred.operators.s3 import DataRobotS3BatchPredictionOperator

with DAG(
    dag_id="example_batchpred_s3",
    description="Score a CSV on S3 into S3 through the DataRobot Batch Prediction API",
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
        "format": Param("csv", enum=["csv", "parquet"]),
    },
) as dag:
    DataRobotS3BatchPredictionOperator(
        task_id="score_s3",
        deployment_id="{{ params.deployment_id }}",
        source_url="{{ params.source_url }}",
        destination_url="{{ params.destination_url }}",
        aws_conn_id="{{ params.aws_conn_id }}",
        endpoint_url="{{ params.endpoint_url }}",
        format="{{ params.format }}",
        poll_interval=1.0,
        timeout=3600,
    )
