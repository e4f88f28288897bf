"""The seed's local-file example with prediction explanations.

``dr.BatchPredictionJob.score_to_file(deployment_id, input_file, output_file, max_explanations=10,
threshold_high=0.5, threshold_low=0.15)``: up to 10 explanations per row, only for rows whose
prediction is above 0.5 or below 0.15 (the others get empty explanation columns).

Defaults come from the environment: ``BATCHPRED_DEMO_INPUT``, ``BATCHPRED_DEMO_OUTPUT`` and
``BATCHPRED_DEMO_DEPLOYMENT`` (see ``example_batchpred_local_file``).
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
    dag_id="example_batchpred_local_file_explanations",
    description="Score a local CSV with prediction explanations (thresholds 0.15 / 0.5)",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["example", "datarobot", "batch-prediction", "explanations"],
    params={
        "input_file": Param(
            os.environ.get("BATCHPRED_DEMO_INPUT", str(DEMO_DIR / "input.csv")), type="string"
        ),
        "output_file": Param(
            os.environ.get("BATCHPRED_DEMO_OUTPUT", str(DEMO_DIR / "predictions-explained.csv")),
            type="string",
        ),
        "deployment_id": Param(os.environ.get("BATCHPRED_DEMO_DEPLOYMENT", ""), type="string"),
    },
) as dag:
    DataRobotLocalFileBatchPredictionOperator(
        task_id="score_with_explanations",
        deployment_id="{{ params.deployment_id }}",
        input_file="{{ params.input_file }}",
        output_file="{{ params.output_file }}",
        max_explanations=10,
        threshold_high=0.5,
        threshold_low=0.15,
        poll_interval=0.5,
        timeout=3600,
    )
