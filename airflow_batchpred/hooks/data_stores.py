"""Map Airflow database connections to DataRobot data stores and credentials.

DAG authors keep their databases in Airflow's ``postgres``, ``snowflake`` and
``google_cloud_platform`` connections. The batch prediction API wants a data store
(``externalDataStores/``, holding a JDBC URL) and a credential (``credentials/``) instead. The
functions here read a connection through the Apache provider's hook and create or update both,
named after the connection (:func:`~airflow_batchpred.hooks.credentials.managed_name`):

* the same connection mapped twice gives the same ids;
* a rotated password or key updates the credential in place (same id), a moved host updates the
  data store in place;
* a connection that cannot be mapped raises :class:`ConnectionMappingError` naming the connection
  id and the field to fix. Secrets never appear in messages or logs.

The provider hooks are imported lazily, so the providers are only needed for the mappings used.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow_batchpred.contract import CredentialType
from airflow_batchpred.hooks.credentials import managed_name, upsert_credential, upsert_data_store

if TYPE_CHECKING:
    from airflow_batchpred.hooks.datarobot import DataRobotHook

POSTGRES_DRIVER_ID = "postgresql"
SNOWFLAKE_DRIVER_ID = "snowflake"
SYNAPSE_DRIVER_ID = "sqlserver"


class ConnectionMappingError(ValueError):
    """An Airflow connection cannot be mapped; the message names the connection and the field."""

    def __init__(self, conn_id: str, problem: str) -> None:
        self.conn_id = conn_id
        super().__init__(f"Airflow connection {conn_id!r}: {problem}")


@dataclass(frozen=True)
class MappedDataStore:
    """What a database connection became in DataRobot."""

    data_store_id: str
    credential_id: str


def _get_connection(
    hook_class: Any, conn_id: str, expected_types: tuple[str, ...], **hook_kwargs: Any
) -> Any:
    """``(provider hook, connection)`` for ``conn_id``, checking the connection type."""
    from airflow.exceptions import AirflowNotFoundException

    try:
        provider_hook = hook_class(**hook_kwargs)
        connection = provider_hook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise ConnectionMappingError(
            conn_id, "not found; define it in the Airflow UI/CLI or as AIRFLOW_CONN_<ID>"
        ) from None
    if connection.conn_type not in expected_types:
        raise ConnectionMappingError(
            conn_id,
            f"conn_type is {connection.conn_type!r}; expected {' or '.join(map(repr, expected_types))}",
        )
    return provider_hook, connection


def _require(conn_id: str, value: Any, field_name: str, why: str) -> Any:
    if value in (None, ""):
        raise ConnectionMappingError(conn_id, f"{field_name} is empty; {why}")
    return value


# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------


def postgres_jdbc_url(conn_id: str, connection: Any) -> str:
    """``jdbc:postgresql://host:port/database`` (plus ``sslmode``) of a ``postgres`` connection."""
    host = _require(conn_id, connection.host, "host", "set the database server's host name")
    database = _require(
        conn_id,
        connection.schema or connection.extra_dejson.get("database"),
        "schema",
        "put the database name in the connection's Schema (database) field",
    )
    port = connection.port or 5432
    url = f"jdbc:postgresql://{host}:{int(port)}/{quote(str(database), safe='')}"
    sslmode = connection.extra_dejson.get("sslmode")
    return url + (f"?{urlencode({'sslmode': sslmode})}" if sslmode else "")


def map_postgres_connection(hook: DataRobotHook, postgres_conn_id: str) -> MappedDataStore:
    """Create or update the JDBC data store and ``basic`` credential of a ``postgres`` connection."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    _, connection = _get_connection(
        PostgresHook, postgres_conn_id, ("postgres",), postgres_conn_id=postgres_conn_id
    )
    jdbc_url = postgres_jdbc_url(postgres_conn_id, connection)
    user = _require(postgres_conn_id, connection.login, "login", "set the database user")
    password = _require(postgres_conn_id, connection.password, "password", "set the user's password")
    name = managed_name("postgres", postgres_conn_id)
    credential_id = upsert_credential(
        hook,
        name=name,
        credential_type=CredentialType.BASIC.value,
        secret_fields={"user": user, "password": password},
        description=f"PostgreSQL user of Airflow connection {postgres_conn_id}",
    )
    data_store_id = upsert_data_store(
        hook, canonical_name=name, params={"driverId": POSTGRES_DRIVER_ID, "jdbcUrl": jdbc_url}
    )
    return MappedDataStore(data_store_id=data_store_id, credential_id=credential_id)


# ---------------------------------------------------------------------------------------------
# Snowflake
# ---------------------------------------------------------------------------------------------


def snowflake_jdbc_url(conn_id: str, connection: Any, params: Mapping[str, Any]) -> str:
    """``jdbc:snowflake://<account>.snowflakecomputing.com/?warehouse=..&db=..&schema=..&role=..``.

    A connection with a host (a private link, a proxy or a local stand-in) keeps it: the URL then
    names that host and carries ``account`` as a parameter; extra ``protocol: http`` becomes
    ``ssl=off`` (the JDBC driver's spelling).
    """
    account = _require(
        conn_id, params.get("account"), "extra.account", "set the Snowflake account identifier"
    )
    query: dict[str, str] = {}
    extra = connection.extra_dejson
    host = connection.host or extra.get("host")
    if host:
        address = f"{host}:{int(connection.port)}" if connection.port else str(host)
        query["account"] = str(account)
    else:
        region = params.get("region")
        address = f"{account}{'.' + str(region) if region else ''}.snowflakecomputing.com"
    for key, value in (
        ("warehouse", params.get("warehouse")),
        ("db", params.get("database")),
        ("schema", params.get("schema")),
        ("role", params.get("role")),
    ):
        if value:
            query[key] = str(value)
    if str(extra.get("protocol", "https")).lower() == "http":
        query["ssl"] = "off"
    return f"jdbc:snowflake://{address}/?{urlencode(query)}"


def _snowflake_private_key_pem(conn_id: str, snowflake_hook: Any, extra: Mapping[str, Any]) -> str | None:
    """The PEM text of the connection's key pair, checked to load with its passphrase."""
    key_file = extra.get("private_key_file") or extra.get("extra__snowflake__private_key_file")
    key_content = extra.get("private_key_content") or extra.get("extra__snowflake__private_key_content")
    if not key_file and not key_content:
        return None
    try:
        snowflake_hook.get_private_key()
    except (ValueError, TypeError) as exc:
        field_name = "extra.private_key_file" if key_file else "extra.private_key_content"
        raise ConnectionMappingError(
            conn_id,
            f"{field_name} cannot be loaded as a PEM private key with the connection's password as "
            f"passphrase ({type(exc).__name__}); check the key and the password",
        ) from None
    if key_file:
        return Path(key_file).read_text()
    text = str(key_content)
    if "-----BEGIN" in text:
        return text
    return base64.b64decode(text).decode()


def map_snowflake_connection(hook: DataRobotHook, snowflake_conn_id: str) -> MappedDataStore:
    """Create or update the data store and credential of a ``snowflake`` connection.

    A connection with ``private_key_file``/``private_key_content`` in its extra becomes a
    ``snowflake_key_pair_user_account`` credential (its password is the key's passphrase);
    otherwise the login and password become a ``basic`` credential.
    """
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    snowflake_hook, connection = _get_connection(
        SnowflakeHook, snowflake_conn_id, ("snowflake",), snowflake_conn_id=snowflake_conn_id
    )
    # The key is checked first: the hook's connect parameters load it too, with vaguer errors.
    pem = _snowflake_private_key_pem(snowflake_conn_id, snowflake_hook, connection.extra_dejson)
    try:
        params = snowflake_hook._get_static_conn_params
    except (ValueError, TypeError) as exc:
        raise ConnectionMappingError(snowflake_conn_id, str(exc)) from None
    jdbc_url = snowflake_jdbc_url(snowflake_conn_id, connection, params)
    user = _require(snowflake_conn_id, connection.login, "login", "set the Snowflake user")
    name = managed_name("snowflake", snowflake_conn_id)
    if pem is not None:
        secret_fields: dict[str, Any] = {"user": user, "privateKeyStr": pem}
        if connection.password:
            secret_fields["passphrase"] = connection.password
        credential_type = CredentialType.SNOWFLAKE_KEY_PAIR.value
    else:
        password = _require(
            snowflake_conn_id,
            connection.password,
            "password",
            "set the password, or a key pair in extra.private_key_file / extra.private_key_content",
        )
        secret_fields = {"user": user, "password": password}
        credential_type = CredentialType.BASIC.value
    credential_id = upsert_credential(
        hook,
        name=name,
        credential_type=credential_type,
        secret_fields=secret_fields,
        description=f"Snowflake user of Airflow connection {snowflake_conn_id}",
    )
    data_store_id = upsert_data_store(
        hook, canonical_name=name, params={"driverId": SNOWFLAKE_DRIVER_ID, "jdbcUrl": jdbc_url}
    )
    return MappedDataStore(data_store_id=data_store_id, credential_id=credential_id)


# ---------------------------------------------------------------------------------------------
# Synapse (Azure SQL / SQL Server connections)
# ---------------------------------------------------------------------------------------------


def map_synapse_connection(hook: DataRobotHook, conn_id: str) -> MappedDataStore:
    """Create or update the data store and ``basic`` credential of a Synapse SQL pool connection.

    Any Airflow connection with host, port (default 1433), schema (the database), login and
    password will do (``mssql``, ``odbc`` or ``generic``); it becomes
    ``jdbc:sqlserver://host:port;databaseName=db;encrypt=true``.
    """
    from airflow.sdk import BaseHook

    _, connection = _get_connection(BaseHook, conn_id, ("mssql", "odbc", "generic", "azure_synapse"))
    host = _require(conn_id, connection.host, "host", "set the Synapse SQL endpoint host name")
    database = _require(conn_id, connection.schema, "schema", "put the database name in the Schema field")
    user = _require(conn_id, connection.login, "login", "set the SQL user")
    password = _require(conn_id, connection.password, "password", "set the user's password")
    jdbc_url = f"jdbc:sqlserver://{host}:{int(connection.port or 1433)};databaseName={database};encrypt=true"
    name = managed_name("synapse", conn_id)
    credential_id = upsert_credential(
        hook,
        name=name,
        credential_type=CredentialType.BASIC.value,
        secret_fields={"user": user, "password": password},
        description=f"Synapse user of Airflow connection {conn_id}",
    )
    data_store_id = upsert_data_store(
        hook, canonical_name=name, params={"driverId": SYNAPSE_DRIVER_ID, "jdbcUrl": jdbc_url}
    )
    return MappedDataStore(data_store_id=data_store_id, credential_id=credential_id)


# ---------------------------------------------------------------------------------------------
# Google Cloud
# ---------------------------------------------------------------------------------------------


def map_gcp_connection(hook: DataRobotHook, gcp_conn_id: str) -> str | None:
    """Create or update the ``gcp`` credential of a ``google_cloud_platform`` connection.

    The key is read by :func:`airflow_batchpred.hooks.cloud_credentials.map_gcp_connection` (the
    same mapping, and the same credential, as the GCS operators use).

    :returns: the credential id, or ``None`` for an anonymous connection (``is_anonymous``: the
        emulators), which DataRobot itself would refuse.
    """
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    from airflow_batchpred.hooks.cloud_credentials import credential_for_connection

    google_hook, _ = _get_connection(
        GoogleBaseHook, gcp_conn_id, ("google_cloud_platform", "gcpbigquery"), gcp_conn_id=gcp_conn_id
    )
    if google_hook._get_field("is_anonymous"):
        return None
    return credential_for_connection(hook, "google_cloud_platform", gcp_conn_id)
