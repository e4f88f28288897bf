"""Run when fresh predictions land (downstream of the Asset pair).

Scheduled on the Asset that ``example_batchpred_assets_producer`` publishes
(``file://<BATCHPRED_ASSET_OUTPUT>``): every successful producer run queues a run of this DAG. The
task reads the predictions and reports the asset events that triggered the run.
"""

from __future__ import annotations

import csv
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, task

DEMO_DIR = Path(tempfile.gettempdir()) / "batchpred"
PREDICTIONS = Path(os.environ.get("BATCHPRED_ASSET_OUTPUT", str(DEMO_DIR / "asset-predictions.csv")))
PREDICTIONS_ASSET = Asset(f"file://{PREDICTIONS}")

with DAG(
    dag_id="example_batchpred_assets_consumer",
    description="Summarise fresh predictions; scheduled on the producer's Asset",
    schedule=[PREDICTIONS_ASSET],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "datarobot", "batch-prediction", "assets"],
) as dag:

    @task
    def summarize_predictions(triggering_asset_events: Any = None) -> dict[str, Any]:
        """Count the scored rows and name the producer runs that triggered this run."""
        sources = [
            f"{event.source_dag_id}/{event.source_run_id}"
            for events in (triggering_asset_events or {}).values()
            for event in events
        ]
        with PREDICTIONS.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            columns = next(reader)
            rows = sum(1 for _ in reader)
        print(f"{rows} predictions ({len(columns)} columns) from {sources or 'a manual run'}")
        return {"rows": rows, "columns": columns, "triggered_by": sources}

    summarize_predictions()
