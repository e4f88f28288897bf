"""Score a CSV into a fixed path and publish it as an Airflow Asset (upstream of the Asset pair).

The output path is not templated, so the operator adds ``Asset("file://<path>")`` to its outlets by
itself (``output_asset=False`` turns that off). Each successful run records an asset event, and
``example_batchpred_assets_consumer``, scheduled on that Asset, gets a run queued. Scoring to S3,
GCS or Azure works the same way with a literal ``destination_url`` (``s3://bucket/key`` ...). For a
templated path or a database table, pass ``outlets=[Asset(...)]`` yourself.

Defaults come from the environment: ``BATCHPRED_DEMO_INPUT`` (the CSV to score),
``BATCHPRED_DEMO_DEPLOYMENT`` and ``BATCHPRED_ASSET_OUTPUT`` (the published file; read at parse
time, so it must be the same for both DAGs of the pair).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param

from airflow_batchpred.operators.local_file import DataRobotLocalFileBatchPredictionOperator

DEMO_DIR = Path(tempfile.gettempdir()) / "batchpred"
PREDICTIONS = Path(os.environ.get("BATCHPRED_ASSET_OUTPUT", str(DEMO_DIR / "asset-predictions.csv")))

with DAG(
    dag_id="example_batchpred_assets_producer",
    description="Score a CSV and publish the predictions as an Asset",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "datarobot", "batch-prediction", "assets"],
    params={
        "input_file": Param(
            os.environ.get("BATCHPRED_DEMO_INPUT", str(DEMO_DIR / "input.csv")), type="string"
        ),
        "deployment_id": Param(os.environ.get("BATCHPRED_DEMO_DEPLOYMENT", ""), type="string"),
    },
) as dag:
    DataRobotLocalFileBatchPredictionOperator(
        task_id="score_and_publish",
        deployment_id="{{ params.deployment_id }}",
        input_file="{{ params.input_file }}",
        output_file=str(PREDICTIONS),  # literal: becomes the Asset file://<PREDICTIONS>
        passthrough_columns_set="all",
        poll_interval=0.5,
        timeout=3600,
    )
