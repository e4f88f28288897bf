# ruff: noqa: S608 - statements are built from identifiers quoted by the dialect; values are parameters
"""``synapse`` intake and output: Azure Synapse SQL pools in T-SQL (``jdbc:sqlserver://`` data stores).

A ``jdbc:sqlserver://host:port;databaseName=db`` data store is reached with ``pyodbc`` and the
"ODBC Driver 18 for SQL Server" (neither is installed with this package; the server reports a clear
error if they are missing). Identifiers are quoted ``[like]]this]``, parameters are ``?``, the
default schema is ``dbo``. Writing follows :mod:`._sql`: one transaction per job, a temporary
``#staging`` table for ``update``/``insert_update``; Synapse runs DDL outside user transactions,
so a table the job created is dropped again when the job fails. ``externalDataSource`` must name an
existing external data source (``sys.external_data_sources``); DataRobot moves the rows through it
with PolyBase/``COPY``, the local server moves them with plain statements.

**No Synapse (or SQL Server) stand-in runs here.** The T-SQL dialect is covered by tests of the
statements it generates; the adapter's whole path (settings, data store and credential lookup,
reading, transactional writing, failure messages) runs against PostgreSQL: a ``synapse`` job whose
data store is a ``jdbc:postgresql://`` URL uses the PostgreSQL dialect, where the external data
source cannot be checked (it is logged and skipped).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from airflow_batchpred.server.adapters._sql import (
    ResolvedStore,
    SqlDialect,
    SqlIntake,
    SqlOutput,
    TableRef,
    _cursor,
    register_dialect,
)
from airflow_batchpred.server.adapters.base import (
    AdapterContext,
    IntakeError,
    OutputError,
    register_intake,
    register_output,
)

log = logging.getLogger(__name__)

ODBC_DRIVER = "ODBC Driver 18 for SQL Server"
#: URL schemes of a ``synapse`` data store: Synapse itself, and PostgreSQL as the stand-in dialect.
SYNAPSE_SCHEMES = ("sqlserver", "postgresql", "postgres")


class TSqlDialect(SqlDialect):
    """Azure Synapse / SQL Server through ``pyodbc``."""

    schemes = ("sqlserver",)
    label = "Synapse"
    default_schema = "dbo"
    transactional_ddl = False
    placeholder = "?"
    text_type = "NVARCHAR(4000)"
    float_type = "FLOAT"
    int_type = "BIGINT"
    bool_type = "BIT"

    def connect(self, store: ResolvedStore, *, read_only: bool) -> Any:
        try:
            import pyodbc  # type: ignore[import-not-found]
        except ImportError:
            raise RuntimeError(
                "the Synapse adapter needs pyodbc and the Microsoft ODBC driver on the server"
            ) from None
        location = store.location
        parts = {
            "DRIVER": "{" + ODBC_DRIVER + "}",
            "SERVER": f"{location.host},{location.port or 1433}",
            "DATABASE": location.database or "",
            "UID": store.secrets.get("user", ""),
            "PWD": store.secrets.get("password", ""),
            "Encrypt": "yes" if str(location.params.get("encrypt", "true")).lower() == "true" else "no",
        }
        odbc = ";".join(
            f"{key}={{{value}}}" if key == "PWD" else f"{key}={value}" for key, value in parts.items()
        )
        return pyodbc.connect(odbc, autocommit=False, timeout=30)

    def quote(self, connection: Any, name: str) -> str:
        return "[" + name.replace("]", "]]") + "]"

    def is_driver_error(self, exc: BaseException) -> bool:
        return type(exc).__module__ == "pyodbc"

    def current_schema(self, connection: Any) -> str | None:
        with _cursor(connection) as cursor:
            cursor.execute("SELECT SCHEMA_NAME()")
            row = cursor.fetchone()
        return str(row[0]) if row and row[0] else self.default_schema

    def create_staging(self, cursor: Any, connection: Any, target: TableRef, columns: Sequence[str]) -> str:
        staging = "#batchpred_staging"
        column_list = ", ".join(self.quote(connection, name) for name in columns)
        cursor.execute(f"IF OBJECT_ID('tempdb..{staging}') IS NOT NULL DROP TABLE {staging}")
        cursor.execute(
            f"SELECT {column_list} INTO {staging} FROM {self.qualified(connection, target)} WHERE 1 = 0"
        )
        return staging

    def clear_staging(self, cursor: Any, staging: str) -> None:
        cursor.execute(f"TRUNCATE TABLE {staging}")

    def update_from_staging(
        self,
        connection: Any,
        target_sql: str,
        staging: str,
        set_columns: Sequence[str],
        where_columns: Sequence[str],
    ) -> str:
        assignments = ", ".join(
            f"t.{self.quote(connection, c)} = s.{self.quote(connection, c)}" for c in set_columns
        )
        matches = " AND ".join(
            f"t.{self.quote(connection, c)} = s.{self.quote(connection, c)}" for c in where_columns
        )
        return f"UPDATE t SET {assignments} FROM {target_sql} AS t INNER JOIN {staging} AS s ON {matches}"

    def drop_table(self, connection: Any, table: TableRef) -> str:
        return f"DROP TABLE {self.qualified(connection, table)}"


TSQL = register_dialect(TSqlDialect())


def external_data_source_exists(dialect: SqlDialect, connection: Any, name: str) -> bool | None:
    """Whether ``name`` is an external data source; ``None`` when the dialect has none (stand-in)."""
    if not isinstance(dialect, TSqlDialect):
        return None
    with _cursor(connection) as cursor:
        cursor.execute("SELECT name FROM sys.external_data_sources WHERE name = ?", (name,))
        return cursor.fetchone() is not None


def _check_external_data_source(adapter: Any, connection: Any, error: type[Exception]) -> None:
    name = adapter.settings.external_data_source
    exists = external_data_source_exists(adapter.dialect, connection, name)
    if exists is None:
        log.warning(
            "Job %s: %s stands in for Synapse; external data source %r not checked",
            adapter.context.job_id,
            adapter.dialect.label,
            name,
        )
    elif not exists:
        raise error(
            f"external data source {name!r} does not exist in Synapse data store "
            f"{adapter.store.data_store_id}; create it (CREATE EXTERNAL DATA SOURCE) "
            "or fix externalDataSource"
        )


@register_intake
class SynapseIntake(SqlIntake):
    """``SELECT *`` from ``schema.table`` or the ``query``, after checking ``externalDataSource``."""

    type = "synapse"
    schemes = SYNAPSE_SCHEMES

    def prepare_read(self, connection: Any) -> None:
        _check_external_data_source(self, connection, IntakeError)


@register_output
class SynapseOutput(SqlOutput):
    """``insert``, ``update``, ``insert_update`` or ``create_table`` into ``schema.table``."""

    type = "synapse"
    schemes = SYNAPSE_SCHEMES

    def __init__(self, settings: Any, context: AdapterContext) -> None:
        super().__init__(settings, context)
        try:
            _check_external_data_source(self, self.connection, OutputError)
        except Exception:
            self._close()
            raise
