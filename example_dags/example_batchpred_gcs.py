"""The seed's ``score_gcp``: score an object in Google Cloud Storage into another object.

The service-account key comes from the Airflow ``google_cloud_platform`` connection
``gcp_conn_id`` (``keyfile_dict`` or ``key_path``), mapped to a DataRobot ``gcp`` credential.
Against the local server and a GCS emulator, start the server with ``STORAGE_EMULATOR_HOST``
pointing at the emulator (the key is still required and checked, but no token is fetched).

Parameters (defaults from the environment):

* ``deployment_id`` (``BATCHPRED_DEMO_DEPLOYMENT``);
* ``source_url`` / ``destination_url`` (``BATCHPRED_GCS_SOURCE_URL`` /
  ``BATCHPRED_GCS_DESTINATION_URL``, defaults ``gs://my-bucket/data/to_predict.csv`` /
  ``gs://my-bucket/data/predicted.csv``);
* ``gcp_conn_id`` (``BATCHPRED_GCP_CONN_ID``, default ``google_cloud_default``);
* ``max_explanations`` (0 = none), ``format`` (``csv`` or ``parquet``).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_batchpred.operators.gcs import DataRobotGCSBatchPredictionOperator

with DAG(
    dag_id="example_batchpred_gcs",
    description="Score an object in GCS through the DataRobot Batch Prediction API",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "datarobot", "batch-prediction", "gcs"],
    params={
        "deployment_id": Param(os.environ.get("BATCHPRED_DEMO_DEPLOYMENT", ""), type="string"),
        "source_url": Param(
            os.environ.get("BATCHPRED_GCS_SOURCE_URL", "gs://my-bucket/data/to_predict.csv"), type="string"
        ),
        "destination_url": Param(
            os.environ.get("BATCHPRED_GCS_DESTINATION_URL", "gs://my-bucket/data/predicted.csv"),
            type="string",
        ),
        "gcp_conn_id": Param(os.environ.get("BATCHPRED_GCP_CONN_ID", "google_cloud_default"), type="string"),
        "max_explanations": Param(0, type="integer", minimum=0, maximum=100),
        "format": Param("csv", enum=["csv", "parquet"]),
    },
) as dag:
    DataRobotGCSBatchPredictionOperator(
        task_id="score_gcs",
        deployment_id="{{ params.deployment_id }}",
        source_url="{{ params.source_url }}",
        destination_url="{{ params.destination_url }}",
        gcp_conn_id="{{ params.gcp_conn_id }}",
        max_explanations="{{ params.max_explanations }}",
        format="{{ params.format }}",
        poll_interval=1.0,
        timeout=3600,
    )
