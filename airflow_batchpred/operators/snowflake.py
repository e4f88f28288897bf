"""Score a Snowflake table (or query) and write the scores to a Snowflake table through a stage."""

from __future__ import annotations

from typing import Any

from airflow_batchpred.hooks.data_stores import MappedDataStore, map_snowflake_connection
from airflow_batchpred.operators.jdbc import DataRobotTableBatchPredictionOperator


class DataRobotSnowflakeBatchPredictionOperator(DataRobotTableBatchPredictionOperator):
    """Score ``source_schema.source_table`` (or ``source_query``) of Snowflake into
    ``target_schema.target_table`` with ``statement_type``, through ``external_stage``.

    The database is an Airflow ``snowflake`` connection (``snowflake_conn_id``: password, or a key
    pair in ``private_key_file``/``private_key_content``), mapped at run time to a DataRobot data
    store and credential named after it, or existing ids (``data_store_id``/``credential_id``).
    DataRobot moves the rows through ``external_stage``; for an external stage on cloud storage,
    ``cloud_storage_type`` (``s3``, ``azure``, ``gcp``) and ``cloud_storage_credential_id`` give
    its location's credential.

    :param snowflake_conn_id: Airflow ``snowflake`` connection of the source (and target).
    :param external_stage: the Snowflake stage DataRobot uses for both directions.
    :param cloud_storage_type: where an external stage lives (default ``s3`` on the server).
    :param cloud_storage_credential_id: DataRobot credential of that cloud storage.
    :param target_snowflake_conn_id: ``snowflake`` connection of the target, when not the source's.

    Table, statement and id arguments are those of :class:`DataRobotTableBatchPredictionOperator`
    (see :class:`~airflow_batchpred.operators.jdbc.DataRobotJdbcBatchPredictionOperator`); every
    other argument is that of the base operator.
    """

    adapter_type = "snowflake"
    conn_argument = "snowflake_conn_id"
    template_fields = (
        *DataRobotTableBatchPredictionOperator.template_fields,
        "snowflake_conn_id",
        "target_snowflake_conn_id",
        "external_stage",
        "cloud_storage_type",
        "cloud_storage_credential_id",
    )

    def __init__(
        self,
        *,
        external_stage: str,
        snowflake_conn_id: str | None = None,
        cloud_storage_type: str | None = None,
        cloud_storage_credential_id: str | None = None,
        target_snowflake_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.external_stage = external_stage
        self.snowflake_conn_id = snowflake_conn_id
        self.cloud_storage_type = cloud_storage_type
        self.cloud_storage_credential_id = cloud_storage_credential_id
        self.target_snowflake_conn_id = target_snowflake_conn_id

    def source_conn_id(self) -> str | None:
        return self.snowflake_conn_id

    def target_conn_id(self) -> str | None:
        return self.target_snowflake_conn_id

    def map_connection(self, conn_id: str) -> MappedDataStore:
        return map_snowflake_connection(self.hook, conn_id)

    def extra_settings(self, side: str) -> dict[str, Any]:
        settings: dict[str, Any] = {"external_stage": self.external_stage}
        if self.cloud_storage_type:
            settings["cloud_storage_type"] = self.cloud_storage_type
        if self.cloud_storage_credential_id:
            settings["cloud_storage_credential_id"] = self.cloud_storage_credential_id
        return settings
