"""``jdbc`` intake and output for PostgreSQL data stores (``jdbc:postgresql://host:port/db``).

The data store (``externalDataStores/``) holds the JDBC URL; the ``basic`` credential holds the
user and password. Reading streams through a server-side cursor; writing is one transaction per
job (``commitInterval`` N > 0 adds a commit every N seconds). The shared behaviour, including the
statement types and the failure messages, is described in :mod:`._sql`.
"""

from __future__ import annotations

from airflow_batchpred.server.adapters._sql import SqlIntake, SqlOutput
from airflow_batchpred.server.adapters.base import register_intake, register_output

#: JDBC URL schemes the ``jdbc`` adapter serves (those with a dialect in :mod:`._sql`).
JDBC_SCHEMES = ("postgresql", "postgres")


@register_intake
class JdbcIntake(SqlIntake):
    """``SELECT *`` from ``schema.table`` (default schema ``public``) or the given ``query``."""

    type = "jdbc"
    schemes = JDBC_SCHEMES


@register_output
class JdbcOutput(SqlOutput):
    """``insert``, ``update``, ``insert_update`` or ``create_table`` into ``schema.table``."""

    type = "jdbc"
    schemes = JDBC_SCHEMES
