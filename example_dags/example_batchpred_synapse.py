"""Score an Azure Synapse table and write the scores back to Synapse (the seed's Synapse example).

The seed reads ``SCORING_DATA`` and inserts the scored rows (every input column passed through)
into the existing ``SCORED_DATA``, staging data through the external data source
``some_datastore`` with an Azure credential for its storage. Here the SQL pool is the Airflow
connection ``batchpred_synapse`` (``mssql``/``odbc``/``generic``), mirrored at run time into a
``jdbc:sqlserver://`` data store and ``basic`` credential; existing DataRobot ids can be given
instead (``data_store_id``/``credential_id``).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_batchpred.operators.synapse import DataRobotSynapseBatchPredictionOperator

with DAG(
    dag_id="example_batchpred_synapse",
    description="Score SCORING_DATA into SCORED_DATA in an Azure Synapse SQL pool",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["example", "datarobot", "batch-prediction", "synapse"],
    params={
        "deployment_id": Param(os.environ.get("BATCHPRED_DEMO_DEPLOYMENT", ""), type="string"),
        "synapse_conn_id": Param("batchpred_synapse", type=["null", "string"]),
        "data_store_id": Param(None, type=["null", "string"]),
        "credential_id": Param(None, type=["null", "string"]),
        "external_data_source": Param("some_datastore", type="string"),
        "cloud_storage_credential_id": Param(None, type=["null", "string"]),
        "source_schema": Param("dbo", type="string"),
        "source_table": Param("SCORING_DATA", type="string"),
        "target_schema": Param("dbo", type="string"),
        "target_table": Param("SCORED_DATA", type="string"),
        "statement_type": Param(
            "insert",
            enum=["insert", "update", "insert_update", "create_table", "insertUpdate", "createTable"],
        ),
        "update_columns": Param(None, type=["null", "array"]),
        "where_columns": Param(None, type=["null", "array"]),
    },
) as dag:
    DataRobotSynapseBatchPredictionOperator(
        task_id="score_synapse_table",
        deployment_id="{{ params.deployment_id }}",
        synapse_conn_id="{{ params.synapse_conn_id }}",
        data_store_id="{{ params.data_store_id }}",
        credential_id="{{ params.credential_id }}",
        external_data_source="{{ params.external_data_source }}",
        cloud_storage_credential_id="{{ params.cloud_storage_credential_id }}",
        source_schema="{{ params.source_schema }}",
        source_table="{{ params.source_table }}",
        target_schema="{{ params.target_schema }}",
        target_table="{{ params.target_table }}",
        statement_type="{{ params.statement_type }}",
        update_columns="{{ params.update_columns }}",
        where_columns="{{ params.where_columns }}",
        passthrough_columns_set="all",
        poll_interval=0.5,
        timeout=3600,
    )
