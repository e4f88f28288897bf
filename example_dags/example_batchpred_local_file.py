"""Score a local CSV with a DataRobot deployment (or the local batch-prediction server).

Run the local server, point the ``datarobot_default`` connection at it, then trigger this DAG.
Paths and the deployment come from the run's ``params``; their defaults come from the environment:

* ``BATCHPRED_DEMO_INPUT``: the CSV to score;
* ``BATCHPRED_DEMO_OUTPUT``: where to write the scored CSV;
* ``BATCHPRED_DEMO_DEPLOYMENT``: the deployment id (a demo deployment of the local server).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param

from airflow_batchpred.operators.local_file import DataRobotLocalFileBatchPredictionOperator

DEMO_DIR = Path(tempfile.gettempdir()) / "batchpred"

with DAG(
    dag_id="example_batchpred_local_file",
    description="Score a local CSV through the DataRobot Batch Prediction API",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "datarobot", "batch-prediction"],
    params={
        "input_file": Param(
            os.environ.get("BATCHPRED_DEMO_INPUT", str(DEMO_DIR / "input.csv")), type="string"
        ),
        "output_file": Param(
            os.environ.get("BATCHPRED_DEMO_OUTPUT", str(DEMO_DIR / "predictions.csv")), type="string"
        ),
        "deployment_id": Param(os.environ.get("BATCHPRED_DEMO_DEPLOYMENT", ""), type="string"),
        "max_explanations": Param(3, type="integer", minimum=0, maximum=100),
    },
) as dag:
    DataRobotLocalFileBatchPredictionOperator(
        task_id="score_local_file",
        datarobot_conn_id="datarobot_default",
        deployment_id="{{ params.deployment_id }}",
        input_file="{{ params.input_file }}",
        output_file="{{ params.output_file }}",
        max_explanations="{{ params.max_explanations }}",
        passthrough_columns_set="all",
        poll_interval=1.0,
        timeout=3600,
    )
