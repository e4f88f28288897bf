"""The DAGs that ``bench/run.py`` runs with ``dag.test()`` (arguments arrive as ``params``)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_batchpred.operators.local_file import DataRobotLocalFileBatchPredictionOperator

START = datetime(2026, 1, 1)

with DAG(
    dag_id="bench_operator",
    schedule=None,
    start_date=START,
    catchup=False,
    render_template_as_native_obj=True,
    params={"deployment_id": "", "input_file": "", "output_file": "", "poll_interval": 5.0},
):
    DataRobotLocalFileBatchPredictionOperator(
        task_id="score",
        deployment_id="{{ params.deployment_id }}",
        input_file="{{ params.input_file }}",
        output_file="{{ params.output_file }}",
    )

with DAG(dag_id="bench_empty", schedule=None, start_date=START, catchup=False):

    @task(task_id="score")
    def nothing() -> None:
        return None

    nothing()
