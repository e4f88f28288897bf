"""Score a database table (or query) and write the scores to a database table over JDBC."""

from __future__ import annotations

from typing import Any

from airflow_batchpred.exceptions import DataRobotSettingsError
from airflow_batchpred.hooks.data_stores import MappedDataStore, map_postgres_connection
from airflow_batchpred.operators.batch_prediction import DataRobotBatchPredictionOperator

#: Template fields shared by the database operators (source, target, statement).
TABLE_TEMPLATE_FIELDS: tuple[str, ...] = (
    "source_table",
    "source_schema",
    "source_query",
    "target_table",
    "target_schema",
    "statement_type",
    "update_columns",
    "where_columns",
)


def source_settings(table: str | None, schema: str | None, query: str | None) -> dict[str, Any]:
    """The ``table``/``schema`` or ``query`` part of a database intake (unset parts left out)."""
    if query and not table:
        # A query carries its own schema; the DAG's default source schema does not apply.
        return {"query": query}
    settings: dict[str, Any] = {}
    if table:
        settings["table"] = table
    if schema:
        settings["schema"] = schema
    if query:
        settings["query"] = query
    return settings


def target_settings(
    table: str,
    schema: str | None,
    statement_type: str,
    update_columns: list[str] | None,
    where_columns: list[str] | None,
    create_table_if_not_exists: bool | None,
) -> dict[str, Any]:
    """The table and statement part of a database output (unset parts left out)."""
    settings: dict[str, Any] = {"table": table, "statement_type": statement_type}
    for key, value in (
        ("schema", schema),
        ("update_columns", update_columns),
        ("where_columns", where_columns),
        ("create_table_if_not_exists", create_table_if_not_exists),
    ):
        if value is not None:
            settings[key] = value
    return settings


class DataRobotTableBatchPredictionOperator(DataRobotBatchPredictionOperator):
    """Base of the table → table operators (JDBC, Snowflake, Synapse): source, target, statement.

    Subclasses set :attr:`adapter_type`, map their Airflow connection type in
    :meth:`map_connection`, and may add adapter fields in :meth:`extra_settings`. The database of
    each side is named by an Airflow connection (mapped at run time, idempotently, to a data store
    and credential named after it) or by DataRobot ids; the target defaults to the source's.
    """

    adapter_type: str = "jdbc"
    template_fields = (
        *DataRobotBatchPredictionOperator.template_fields,
        *TABLE_TEMPLATE_FIELDS,
        "data_store_id",
        "credential_id",
        "target_data_store_id",
        "target_credential_id",
        "create_table_if_not_exists",
    )

    def __init__(
        self,
        *,
        target_table: str | None = None,
        statement_type: str = "insert",
        data_store_id: str | None = None,
        credential_id: str | None = None,
        source_table: str | None = None,
        source_schema: str | None = None,
        source_query: str | None = None,
        target_schema: str | None = None,
        update_columns: list[str] | None = None,
        where_columns: list[str] | None = None,
        create_table_if_not_exists: bool | None = None,
        target_data_store_id: str | None = None,
        target_credential_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_store_id = data_store_id
        self.credential_id = credential_id
        self.source_table = source_table
        self.source_schema = source_schema
        self.source_query = source_query
        self.target_table = target_table
        self.target_schema = target_schema
        self.statement_type = statement_type
        self.update_columns = update_columns
        self.where_columns = where_columns
        self.create_table_if_not_exists = create_table_if_not_exists
        self.target_data_store_id = target_data_store_id
        self.target_credential_id = target_credential_id
        self._mapped: dict[str, MappedDataStore] = {}

    # -- what subclasses provide -----------------------------------------------------------

    #: Names of the connection arguments in messages (e.g. ``postgres_conn_id``).
    conn_argument: str = "conn_id"

    def source_conn_id(self) -> str | None:
        return None

    def target_conn_id(self) -> str | None:
        return None

    def map_connection(self, conn_id: str) -> MappedDataStore:
        raise NotImplementedError

    def extra_settings(self, side: str) -> dict[str, Any]:
        """Adapter fields beyond table/statement for ``side`` ``"intake"`` or ``"output"``."""
        return {}

    # -- settings --------------------------------------------------------------------------

    def _database(
        self, conn_id: str | None, data_store_id: str | None, credential_id: str | None, side: str
    ) -> MappedDataStore:
        if conn_id and data_store_id:
            raise DataRobotSettingsError(
                [(side, "give a connection id or a data_store_id, not both")], task_id=self.task_id
            )
        if conn_id:
            if conn_id not in self._mapped:
                self._mapped[conn_id] = self.map_connection(conn_id)
            return self._mapped[conn_id]
        if not data_store_id:
            raise DataRobotSettingsError(
                [(side, f"name the database: {self.conn_argument}, or data_store_id with credential_id")],
                task_id=self.task_id,
            )
        return MappedDataStore(data_store_id=data_store_id, credential_id=credential_id or "")

    def _source(self) -> MappedDataStore:
        return self._database(
            self.source_conn_id(), self.data_store_id, self.credential_id, self.conn_argument
        )

    def _target(self) -> MappedDataStore:
        if self.target_conn_id() or self.target_data_store_id:
            return self._database(
                self.target_conn_id(),
                self.target_data_store_id,
                self.target_credential_id,
                f"target_{self.conn_argument}",
            )
        return self._source()

    @staticmethod
    def _ids(database: MappedDataStore) -> dict[str, Any]:
        ids = {"data_store_id": database.data_store_id}
        if database.credential_id:
            ids["credential_id"] = database.credential_id
        return ids

    def default_intake_settings(self) -> dict[str, Any]:
        return {
            "type": self.adapter_type,
            **self._ids(self._source()),
            **source_settings(self.source_table, self.source_schema, self.source_query),
            **self.extra_settings("intake"),
        }

    def default_output_settings(self) -> dict[str, Any]:
        if not self.target_table:
            raise DataRobotSettingsError(
                [("target_table", "name the table to write the scores to")], task_id=self.task_id
            )
        return {
            "type": self.adapter_type,
            **self._ids(self._target()),
            **target_settings(
                self.target_table,
                self.target_schema,
                self.statement_type,
                self.update_columns,
                self.where_columns,
                self.create_table_if_not_exists,
            ),
            **self.extra_settings("output"),
        }


class DataRobotJdbcBatchPredictionOperator(DataRobotTableBatchPredictionOperator):
    """Score ``source_schema.source_table`` (or ``source_query``) of a PostgreSQL database and write
    the scored rows to ``target_schema.target_table`` with ``statement_type``.

    The database is named either by an Airflow ``postgres`` connection (``postgres_conn_id``,
    mapped at run time to a DataRobot JDBC data store and ``basic`` credential named after it,
    idempotently) or by existing DataRobot ids (``data_store_id`` and ``credential_id``).
    ``target_postgres_conn_id`` (or ``target_data_store_id``/``target_credential_id``) writes to
    another database; by default the target is the source database.

    The server writes in one transaction: a job that fails or is aborted leaves the target table as
    it was, unless ``commit_interval`` N > 0 asks for a commit every N seconds.

    :param postgres_conn_id: Airflow ``postgres`` connection of the source (and target) database.
    :param data_store_id: DataRobot data store id (instead of ``postgres_conn_id``).
    :param credential_id: DataRobot credential id that goes with ``data_store_id``.
    :param source_table: table to score; :param source_schema: its schema (default ``public``).
    :param source_query: a ``SELECT`` to score instead of a table.
    :param target_table: table to write; :param target_schema: its schema (default ``public``).
    :param statement_type: ``insert``, ``update``, ``insert_update`` or ``create_table``
        (``insertUpdate``/``createTable`` accepted).
    :param update_columns: columns ``update``/``insert_update`` set.
    :param where_columns: key columns matching output rows to table rows.
    :param commit_interval: seconds between intermediate commits (0/None: one commit at the end).
    :param create_table_if_not_exists: create the target table from the output columns if missing.
    :param target_postgres_conn_id: ``postgres`` connection of the target, when not the source's.
    :param target_data_store_id: data store id of the target (with ``target_credential_id``).
    :param target_credential_id: credential id of the target.

    ``intake_settings``/``output_settings`` still override everything above, and every other
    argument is that of :class:`DataRobotBatchPredictionOperator` (``passthrough_columns``,
    ``include_prediction_status``, ``column_names_remapping`` ...).
    """

    adapter_type = "jdbc"
    conn_argument = "postgres_conn_id"
    template_fields = (
        *DataRobotTableBatchPredictionOperator.template_fields,
        "postgres_conn_id",
        "target_postgres_conn_id",
        "commit_interval",
    )

    def __init__(
        self,
        *,
        postgres_conn_id: str | None = None,
        target_postgres_conn_id: str | None = None,
        commit_interval: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.postgres_conn_id = postgres_conn_id
        self.target_postgres_conn_id = target_postgres_conn_id
        self.commit_interval = commit_interval

    def source_conn_id(self) -> str | None:
        return self.postgres_conn_id

    def target_conn_id(self) -> str | None:
        return self.target_postgres_conn_id

    def map_connection(self, conn_id: str) -> MappedDataStore:
        return map_postgres_connection(self.hook, conn_id)

    def extra_settings(self, side: str) -> dict[str, Any]:
        if side == "output" and self.commit_interval is not None:
            return {"commit_interval": self.commit_interval}
        return {}
