"""Score an AI Catalog dataset into a local CSV file (the seed's AI Catalog example).

The seed reads the dataset (``dr.Dataset.get``), scores it with ``intake_settings={'type':
'dataset', ...}`` and ``output_settings={'type': 'localFile'}``. The operator does the same: it
pins the dataset's latest version, submits, waits and downloads the scores to ``output_file``.

Defaults come from the environment: ``BATCHPRED_DEMO_DEPLOYMENT`` (deployment id),
``BATCHPRED_DEMO_DATASET`` (catalog dataset id) and ``BATCHPRED_DEMO_OUTPUT``.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param

from airflow_batchpred.operators.dataset import DataRobotDatasetBatchPredictionOperator

DEMO_DIR = Path(tempfile.gettempdir()) / "batchpred"

with DAG(
    dag_id="example_batchpred_ai_catalog",
    description="Score an AI Catalog dataset into a local CSV file",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["example", "datarobot", "batch-prediction", "ai-catalog"],
    params={
        "deployment_id": Param(os.environ.get("BATCHPRED_DEMO_DEPLOYMENT", ""), type="string"),
        "dataset_id": Param(os.environ.get("BATCHPRED_DEMO_DATASET", ""), type="string"),
        "dataset_version_id": Param(None, type=["null", "string"]),
        "output_file": Param(
            os.environ.get("BATCHPRED_DEMO_OUTPUT", str(DEMO_DIR / "catalog-predictions.csv")), type="string"
        ),
    },
) as dag:
    DataRobotDatasetBatchPredictionOperator(
        task_id="score_catalog_dataset",
        deployment_id="{{ params.deployment_id }}",
        dataset_id="{{ params.dataset_id }}",
        dataset_version_id="{{ params.dataset_version_id }}",
        output_file="{{ params.output_file }}",
        poll_interval=0.5,
        timeout=3600,
    )
