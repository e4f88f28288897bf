"""The seed's ``score_azure``: score a blob in Azure Blob Storage into another blob.

The connection string comes from the Airflow ``wasb`` connection ``wasb_conn_id`` (its
``connection_string`` extra, or account name + key), mapped to a DataRobot ``azure`` credential.

Parameters (defaults from the environment):

* ``deployment_id`` (``BATCHPRED_DEMO_DEPLOYMENT``);
* ``source_url`` / ``destination_url`` (``BATCHPRED_AZURE_SOURCE_URL`` /
  ``BATCHPRED_AZURE_DESTINATION_URL``): blob URLs, ``https://<account>.blob.core.windows.net/
  <container>/<blob>`` or, for Azurite, ``http://127.0.0.1:10000/devstoreaccount1/<container>/<blob>``;
* ``wasb_conn_id`` (``BATCHPRED_WASB_CONN_ID``, default ``wasb_default``);
* ``max_explanations`` (0 = none), ``format`` (``csv`` or ``parquet``).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_batchpred.operators.azure import DataRobotAzureBatchPredictionOperator

ACCOUNT_URL = "https://myaccount.blob.core.windows.net"

with DAG(
    dag_id="example_batchpred_azure",
    description="Score a blob in Azure Blob Storage through the DataRobot Batch Prediction API",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "datarobot", "batch-prediction", "azure"],
    params={
        "deployment_id": Param(os.environ.get("BATCHPRED_DEMO_DEPLOYMENT", ""), type="string"),
        "source_url": Param(
            os.environ.get("BATCHPRED_AZURE_SOURCE_URL", f"{ACCOUNT_URL}/data/to_predict.csv"), type="string"
        ),
        "destination_url": Param(
            os.environ.get("BATCHPRED_AZURE_DESTINATION_URL", f"{ACCOUNT_URL}/data/predicted.csv"),
            type="string",
        ),
        "wasb_conn_id": Param(os.environ.get("BATCHPRED_WASB_CONN_ID", "wasb_default"), type="string"),
        "max_explanations": Param(0, type="integer", minimum=0, maximum=100),
        "format": Param("csv", enum=["csv", "parquet"]),
    },
) as dag:
    DataRobotAzureBatchPredictionOperator(
        task_id="score_azure",
        deployment_id="{{ params.deployment_id }}",
        source_url="{{ params.source_url }}",
        destination_url="{{ params.destination_url }}",
        wasb_conn_id="{{ params.wasb_conn_id }}",
        max_explanations="{{ params.max_explanations }}",
        format="{{ params.format }}",
        poll_interval=1.0,
        timeout=3600,
    )
