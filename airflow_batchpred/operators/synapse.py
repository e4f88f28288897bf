"""Score an Azure Synapse table (or query) and write the scores to a Synapse table."""

from __future__ import annotations

from typing import Any

from airflow_batchpred.hooks.data_stores import MappedDataStore, map_synapse_connection
from airflow_batchpred.operators.jdbc import DataRobotTableBatchPredictionOperator


class DataRobotSynapseBatchPredictionOperator(DataRobotTableBatchPredictionOperator):
    """Score ``source_schema.source_table`` (or ``source_query``) of a Synapse SQL pool into
    ``target_schema.target_table`` with ``statement_type``, through ``external_data_source``.

    The pool is an Airflow connection (``synapse_conn_id``: ``mssql``, ``odbc`` or ``generic`` with
    host, port, database in Schema, login and password), mapped at run time to a
    ``jdbc:sqlserver://`` data store and ``basic`` credential named after it, or existing ids
    (``data_store_id``/``credential_id``).

    :param synapse_conn_id: Airflow connection of the source (and target) SQL pool.
    :param external_data_source: the Synapse external data source DataRobot stages data through.
    :param cloud_storage_credential_id: DataRobot ``azure`` credential of that storage.
    :param target_synapse_conn_id: connection of the target, when not the source's.

    Table, statement and id arguments are those of :class:`DataRobotTableBatchPredictionOperator`;
    every other argument is that of the base operator.
    """

    adapter_type = "synapse"
    conn_argument = "synapse_conn_id"
    template_fields = (
        *DataRobotTableBatchPredictionOperator.template_fields,
        "synapse_conn_id",
        "target_synapse_conn_id",
        "external_data_source",
        "cloud_storage_credential_id",
    )

    def __init__(
        self,
        *,
        external_data_source: str,
        synapse_conn_id: str | None = None,
        cloud_storage_credential_id: str | None = None,
        target_synapse_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.external_data_source = external_data_source
        self.synapse_conn_id = synapse_conn_id
        self.cloud_storage_credential_id = cloud_storage_credential_id
        self.target_synapse_conn_id = target_synapse_conn_id

    def source_conn_id(self) -> str | None:
        return self.synapse_conn_id

    def target_conn_id(self) -> str | None:
        return self.target_synapse_conn_id

    def map_connection(self, conn_id: str) -> MappedDataStore:
        return map_synapse_connection(self.hook, conn_id)

    def extra_settings(self, side: str) -> dict[str, Any]:
        settings: dict[str, Any] = {"external_data_source": self.external_data_source}
        if self.cloud_storage_credential_id:
            settings["cloud_storage_credential_id"] = self.cloud_storage_credential_id
        return settings
