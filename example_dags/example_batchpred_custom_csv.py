"""The seed's "Custom CSV format": a ``;``-delimited, ``'``-quoted CSV in Shift JIS (``ms_kanji``).

``csv_settings={'delimiter': ';', 'quotechar': "'", 'encoding': 'ms_kanji'}`` applies to the
uploaded file and to the scored file written back (same delimiter, quote character and encoding).

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
    dag_id="example_batchpred_custom_csv",
    description="Score a ';'-delimited, single-quoted Shift JIS CSV",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "datarobot", "batch-prediction", "csv"],
    params={
        "input_file": Param(
            os.environ.get("BATCHPRED_DEMO_INPUT", str(DEMO_DIR / "input-kanji.csv")), type="string"
        ),
        "output_file": Param(
            os.environ.get("BATCHPRED_DEMO_OUTPUT", str(DEMO_DIR / "predictions-kanji.csv")), type="string"
        ),
        "deployment_id": Param(os.environ.get("BATCHPRED_DEMO_DEPLOYMENT", ""), type="string"),
    },
) as dag:
    DataRobotLocalFileBatchPredictionOperator(
        task_id="score_custom_csv",
        deployment_id="{{ params.deployment_id }}",
        input_file="{{ params.input_file }}",
        output_file="{{ params.output_file }}",
        csv_settings={"delimiter": ";", "quotechar": "'", "encoding": "ms_kanji"},
        passthrough_columns_set="all",
        poll_interval=0.5,
        timeout=3600,
    )
