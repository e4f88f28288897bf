"""DAGs the database tests run with ``dag.test()`` beyond the example DAGs (parameters from ``params``)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_batchpred.operators.dataset import DataRobotDatasetBatchPredictionOperator
from airflow_batchpred.operators.jdbc import DataRobotJdbcBatchPredictionOperator

# AI Catalog dataset → any output: here a PostgreSQL table through the mapped connection.
with DAG(
    dag_id="batchpred_dataset_to_postgres",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    params={"deployment_id": "", "dataset_id": "", "dataset_version_id": None, "output_settings": {}},
):
    DataRobotDatasetBatchPredictionOperator(
        task_id="score",
        deployment_id="{{ params.deployment_id }}",
        dataset_id="{{ params.dataset_id }}",
        dataset_version_id="{{ params.dataset_version_id }}",
        output_settings="{{ params.output_settings }}",
        passthrough_columns=["id"],
        poll_interval=0.2,
        timeout=600,
    )

# PostgreSQL → PostgreSQL waiting in the triggerer: the resumed task maps the connection again.
with DAG(
    dag_id="batchpred_jdbc_deferred",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    params={"deployment_id": "", "target_table": ""},
):
    DataRobotJdbcBatchPredictionOperator(
        task_id="score",
        deployment_id="{{ params.deployment_id }}",
        postgres_conn_id="batchpred_postgres",
        source_table="scoring_data",
        target_table="{{ params.target_table }}",
        statement_type="create_table",
        passthrough_columns=["id"],
        deferrable=True,
        poll_interval=0.2,
        timeout=600,
    )
