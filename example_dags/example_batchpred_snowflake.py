"""Score a Snowflake table and write the scores back to Snowflake (the seed's Snowflake example).

The seed reads ``PUBLIC.SCORING_DATA`` and inserts the scored rows (every input column passed
through) into the existing ``PUBLIC.SCORED_DATA``, moving the data through the stage
``my_s3_stage_in_snowflake`` (``cloud_storage_type='s3'`` plus an S3 credential for it). Here the
Snowflake account is the Airflow ``snowflake`` connection ``batchpred_snowflake``, mirrored at run
time into a DataRobot data store and credential named after it.

The tables, stage, statement and cloud-storage credential are run parameters.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_batchpred.operators.snowflake import DataRobotSnowflakeBatchPredictionOperator

with DAG(
    dag_id="example_batchpred_snowflake",
    description="Score PUBLIC.SCORING_DATA into PUBLIC.SCORED_DATA through a Snowflake stage",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["example", "datarobot", "batch-prediction", "snowflake"],
    params={
        "deployment_id": Param(os.environ.get("BATCHPRED_DEMO_DEPLOYMENT", ""), type="string"),
        "snowflake_conn_id": Param("batchpred_snowflake", type="string"),
        "external_stage": Param("my_s3_stage_in_snowflake", type="string"),
        "cloud_storage_type": Param("s3", enum=["s3", "azure", "gcp"]),
        "cloud_storage_credential_id": Param(None, type=["null", "string"]),
        "source_schema": Param("PUBLIC", type="string"),
        "source_table": Param("SCORING_DATA", type="string"),
        "target_schema": Param("PUBLIC", type="string"),
        "target_table": Param("SCORED_DATA", type="string"),
        "statement_type": Param(
            "insert",
            enum=["insert", "update", "insert_update", "create_table", "insertUpdate", "createTable"],
        ),
        "update_columns": Param(None, type=["null", "array"]),
        "where_columns": Param(None, type=["null", "array"]),
        "create_table_if_not_exists": Param(None, type=["null", "boolean"]),
    },
) as dag:
    DataRobotSnowflakeBatchPredictionOperator(
        task_id="score_snowflake_table",
        deployment_id="{{ params.deployment_id }}",
        snowflake_conn_id="{{ params.snowflake_conn_id }}",
        external_stage="{{ params.external_stage }}",
        cloud_storage_type="{{ params.cloud_storage_type }}",
        cloud_storage_credential_id="{{ params.cloud_storage_credential_id }}",
        source_schema="{{ params.source_schema }}",
        source_table="{{ params.source_table }}",
        target_schema="{{ params.target_schema }}",
        target_table="{{ params.target_table }}",
        statement_type="{{ params.statement_type }}",
        update_columns="{{ params.update_columns }}",
        where_columns="{{ params.where_columns }}",
        create_table_if_not_exists="{{ params.create_table_if_not_exists }}",
        passthrough_columns_set="all",
        poll_interval=0.5,
        timeout=3600,
    )
