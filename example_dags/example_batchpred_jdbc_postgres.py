"""Score a PostgreSQL table and write the scores back to PostgreSQL (the seed's JDBC example).

The seed reads ``public.scoring_data`` and inserts the scored rows, with every input column passed
through, into the existing table ``public.scored_data``. Here the database is the Airflow
``postgres`` connection ``batchpred_postgres``: at run time the operator mirrors it into a
DataRobot JDBC data store and ``basic`` credential named after the connection (the same ids on
every run; a rotated password updates the credential in place).

Everything the seed hard-codes is a run parameter (``source_query`` scores a query instead of a
table), so the same DAG also updates or upserts
(``statement_type`` ``update``/``insert_update`` with ``where_columns``) or creates the table.
Defaults of the deployment come from ``BATCHPRED_DEMO_DEPLOYMENT``.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_batchpred.operators.jdbc import DataRobotJdbcBatchPredictionOperator

with DAG(
    dag_id="example_batchpred_jdbc_postgres",
    description="Score public.scoring_data into public.scored_data over JDBC",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["example", "datarobot", "batch-prediction", "jdbc", "postgres"],
    params={
        "deployment_id": Param(os.environ.get("BATCHPRED_DEMO_DEPLOYMENT", ""), type="string"),
        "postgres_conn_id": Param("batchpred_postgres", type="string"),
        "source_schema": Param("public", type="string"),
        "source_table": Param("scoring_data", type=["null", "string"]),
        "source_query": Param(None, type=["null", "string"]),
        "target_schema": Param("public", type="string"),
        "target_table": Param("scored_data", type="string"),
        "statement_type": Param(
            "insert",
            enum=["insert", "update", "insert_update", "create_table", "insertUpdate", "createTable"],
        ),
        "update_columns": Param(None, type=["null", "array"]),
        "where_columns": Param(None, type=["null", "array"]),
        "create_table_if_not_exists": Param(None, type=["null", "boolean"]),
        "commit_interval": Param(None, type=["null", "integer"]),
    },
) as dag:
    DataRobotJdbcBatchPredictionOperator(
        task_id="score_postgres_table",
        deployment_id="{{ params.deployment_id }}",
        postgres_conn_id="{{ params.postgres_conn_id }}",
        source_schema="{{ params.source_schema }}",
        source_table="{{ params.source_table }}",
        source_query="{{ params.source_query }}",
        target_schema="{{ params.target_schema }}",
        target_table="{{ params.target_table }}",
        statement_type="{{ params.statement_type }}",
        update_columns="{{ params.update_columns }}",
        where_columns="{{ params.where_columns }}",
        create_table_if_not_exists="{{ params.create_table_if_not_exists }}",
        commit_interval="{{ params.commit_interval }}",
        passthrough_columns_set="all",
        poll_interval=0.5,
        timeout=3600,
    )
