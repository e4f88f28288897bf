# ruff: noqa: S608 - statements are built from identifiers quoted by the dialect; values are parameters
"""``snowflake`` intake and output through the Snowflake connector (``jdbc:snowflake://`` data stores).

**Connecting.** ``jdbc:snowflake://<account>.snowflakecomputing.com/?warehouse=..&db=..&schema=..&role=..``
names the account by its host; a URL with another host (private link, proxy, or a local stand-in
such as ``fakesnow -s``) names it with ``account=``, and ``ssl=off`` switches the connector to
plain HTTP. The credential is ``basic`` (user/password) or ``snowflake_key_pair_user_account``
(user, PEM private key and its passphrase).

**Output, as DataRobot does it: through the stage.** Scored chunks are written as Parquet files in
the job's directory (matched to the table by column name at load). When the job succeeds,
:meth:`SnowflakeOutput.commit` uploads them under
``@<externalStage>/batchpred/<job id>/`` and loads them with ``COPY INTO`` (into the target for
``insert``/``create_table``; into a temporary staging table, then ``UPDATE ... FROM`` / ``INSERT
... WHERE NOT EXISTS`` for ``update``/``insert_update``), all in one transaction. Nothing touches
the table before that: a failed or aborted job leaves it as it was; a table the job created is
dropped again if the load fails (Snowflake DDL commits implicitly). Files of an internal stage are
uploaded with ``PUT``; for an external stage on S3 (``cloudStorageType`` ``s3``) they are uploaded
to the stage's URL with the ``cloudStorageCredentialId`` credential, as DataRobot does.

**Intake.** DataRobot unloads the query into the stage (``COPY INTO @stage FROM (query)``) and
reads the files back. The local server checks the stage exists, then streams the query result
through the connector instead (its result batches): same rows, no stage round trip.

What the fakesnow stand-in cannot do, and so the tests do not exercise: external stages (their
cloud storage is never read by fakesnow), unloading into a stage, ``REMOVE`` of staged files
(attempted, failures only logged), Azure/GCP stage uploads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pa_parquet

from airflow_batchpred.server.adapters._sql import (
    ResolvedStore,
    SqlDialect,
    SqlIntake,
    SqlOutput,
    TableRef,
    _cursor,
    _display,
    _pick,
    register_dialect,
)
from airflow_batchpred.server.adapters.base import (
    AdapterContext,
    IntakeError,
    OutputError,
    register_intake,
    register_output,
)
from airflow_batchpred.server.store import CREDENTIAL

log = logging.getLogger(__name__)

SNOWFLAKE_HOST_SUFFIX = ".snowflakecomputing.com"
#: Parquet parts, loaded with a transformation that names every column: types and NULLs survive,
#: no CSV quoting rules. (fakesnow's CSV loads break at 10+ columns, and its MATCH_BY_COLUMN_NAME
#: misses quoted lower-case columns.)
_COPY_OPTIONS = "FILE_FORMAT = (TYPE = PARQUET) ON_ERROR = ABORT_STATEMENT"


class SnowflakeDialect(SqlDialect):
    """Snowflake through ``snowflake-connector-python``: ``"quoted"`` identifiers, implicit-commit DDL."""

    schemes = ("snowflake",)
    label = "Snowflake"
    default_schema = "PUBLIC"
    transactional_ddl = False
    text_type = "VARCHAR"
    float_type = "FLOAT"
    int_type = "NUMBER(38, 0)"

    def connect(self, store: ResolvedStore, *, read_only: bool) -> Any:
        import snowflake.connector

        location = store.location
        params = location.params
        host = location.host
        account = params.get("account")
        if not account and host.lower().endswith(SNOWFLAKE_HOST_SUFFIX):
            account = host[: -len(SNOWFLAKE_HOST_SUFFIX)]
        arguments: dict[str, Any] = {
            "account": account,
            "host": host,
            "user": store.secrets.get("user") or params.get("user"),
            "autocommit": False,
            "login_timeout": 30,
            "network_timeout": 120,
            "application": "batchpred-server",
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        }
        if location.port:
            arguments["port"] = location.port
        if str(params.get("ssl", "on")).lower() in ("off", "false", "0"):
            arguments["protocol"] = "http"
        for url_key, argument in (
            ("warehouse", "warehouse"),
            ("db", "database"),
            ("schema", "schema"),
            ("role", "role"),
        ):
            if params.get(url_key):
                arguments[argument] = params[url_key]
        private_key = store.secrets.get("privateKeyStr")
        if private_key:
            arguments["private_key"] = _der_private_key(str(private_key), store.secrets.get("passphrase"))
        elif store.secrets.get("password"):
            arguments["password"] = store.secrets["password"]
        return snowflake.connector.connect(**arguments)

    def quote(self, connection: Any, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def is_driver_error(self, exc: BaseException) -> bool:
        from snowflake.connector.errors import Error

        return isinstance(exc, Error)

    def describe_error(self, exc: BaseException) -> str:
        message = getattr(exc, "raw_msg", None) or str(exc)
        return " ".join(str(message).split())

    def current_schema(self, connection: Any) -> str | None:
        with _cursor(connection) as cursor:
            cursor.execute("SELECT CURRENT_SCHEMA()")
            row = cursor.fetchone()
        return str(row[0]) if row and row[0] else self.default_schema


def _der_private_key(pem: str, passphrase: str | None) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(
        pem.encode(), password=passphrase.encode() if passphrase else None
    )
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


SNOWFLAKE = register_dialect(SnowflakeDialect())


def find_stage(dialect: SqlDialect, connection: Any, stage: str) -> tuple[str, str | None, str]:
    """``(name, url, INTERNAL|EXTERNAL)`` of the stage called ``stage`` (``[db.][schema.]name``).

    :raises LookupError: when no such stage exists.
    """
    wanted = stage.split(".")[-1].strip('"')
    with _cursor(connection) as cursor:
        cursor.execute("SHOW STAGES")
        names = [column[0].lower() for column in cursor.description]
        rows = [dict(zip(names, row, strict=False)) for row in cursor.fetchall()]
    for row in rows:
        name = str(row.get("name", ""))
        if name == wanted or name.lower() == wanted.lower():
            return name, (row.get("url") or None), str(row.get("type") or "INTERNAL").upper()
    raise LookupError(stage)


def _stage_reference(stage: str) -> str:
    return "@" + stage.lstrip("@")


@register_intake
class SnowflakeIntake(SqlIntake):
    """``SELECT *`` from ``schema.table`` or the ``query``, after checking ``externalStage`` exists."""

    type = "snowflake"
    schemes = SnowflakeDialect.schemes

    def prepare_read(self, connection: Any) -> None:
        try:
            find_stage(self.dialect, connection, self.settings.external_stage)
        except LookupError:
            raise IntakeError(
                f"external stage {self.settings.external_stage!r} does not exist in Snowflake data store "
                f"{self.store.data_store_id}; create it (CREATE STAGE) or fix externalStage"
            ) from None


@register_output
class SnowflakeOutput(SqlOutput):
    """Spools CSV parts, then uploads them to the stage and ``COPY``s them in at commit."""

    type = "snowflake"
    schemes: ClassVar[tuple[str, ...]] = SnowflakeDialect.schemes

    def __init__(self, settings: Any, context: AdapterContext) -> None:
        super().__init__(settings, context)
        self._spool_dir = context.job_dir / "snowflake-parts"
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        self._parts: list[Path] = []
        self._pending_create: tuple[TableRef, pa.Schema] | None = None
        try:
            self._stage_name, self._stage_url, self._stage_type = find_stage(
                self.dialect, self.connection, settings.external_stage
            )
        except LookupError:
            self._close()
            raise OutputError(
                f"external stage {settings.external_stage!r} does not exist in Snowflake data store "
                f"{self.store.data_store_id}; create it (CREATE STAGE) or fix externalStage"
            ) from None
        except Exception as exc:
            self._close()
            if not self.dialect.is_driver_error(exc):
                raise
            raise OutputError(f"listing the stages failed: {self.dialect.describe_error(exc)}") from None

    def _create_table(self, table: TableRef, first: pa.Table) -> None:
        # Snowflake DDL commits at once: create the table only when the load runs (in commit()).
        self._pending_create = (table, first.schema)

    def _match_columns(self, table: TableRef, output_names: Any) -> list[str]:
        if self._pending_create is not None:
            return list(output_names)
        return super()._match_columns(table, output_names)

    def _resolve_target(self, first: pa.Table) -> None:
        # The staging table of update/insert_update is created at commit (after a pending CREATE
        # TABLE); here only the target and the key columns are checked.
        statement = self.statement
        if statement in ("update", "insert_update"):
            self.statement = "insert"
        try:
            super()._resolve_target(first)
        finally:
            self.statement = statement
        if statement in ("update", "insert_update"):
            self._check_key_columns()
        # Name the database too: fakesnow's COPY finds a target's columns only when fully qualified.
        if self._target is not None and not self._target.catalog:
            with _cursor(self.connection) as cursor:
                cursor.execute("SELECT CURRENT_DATABASE()")
                row = cursor.fetchone()
            if row and row[0]:
                qualified = TableRef(schema=self._target.schema, name=self._target.name, catalog=str(row[0]))
                if self._pending_create is not None:
                    self._pending_create = (qualified, self._pending_create[1])
                self._target = qualified
                self._target_sql = self.dialect.qualified(self.connection, qualified)

    def _write_chunk(self, table: pa.Table) -> None:
        part = self._spool_dir / f"part-{len(self._parts) + 1:06d}.parquet"
        pa_parquet.write_table(table.rename_columns(self._columns), part)
        self._parts.append(part)

    def _upload(self, cursor: Any, prefix: str) -> None:
        if self._stage_type == "EXTERNAL":
            self._upload_external(prefix)
            return
        for part in self._parts:
            cursor.execute(
                f"PUT 'file://{part.as_posix()}' {_stage_reference(self._stage_name)}/{prefix} "
                "AUTO_COMPRESS = FALSE"
            )

    def _upload_external(self, prefix: str) -> None:
        """Upload to the external stage's cloud location (S3 only), with ``cloudStorageCredentialId``."""
        kind = (self.settings.cloud_storage_type or "s3").lower()
        if kind != "s3" or not (self._stage_url or "").lower().startswith("s3://"):
            raise OutputError(
                f"external stage {self._stage_name} is on {kind} ({self._stage_url}); the local server "
                "uploads to S3 stages and internal stages only"
            )
        import boto3

        secrets = (
            self.context.services.store.get_secrets(CREDENTIAL, self.settings.cloud_storage_credential_id)
            if self.settings.cloud_storage_credential_id
            else {}
        )
        client = boto3.client(
            "s3",
            aws_access_key_id=secrets.get("awsAccessKeyId"),
            aws_secret_access_key=secrets.get("awsSecretAccessKey"),
            aws_session_token=secrets.get("awsSessionToken"),
        )
        bucket, _, key_prefix = (self._stage_url or "")[len("s3://") :].partition("/")
        for part in self._parts:
            client.upload_file(str(part), bucket, f"{key_prefix.rstrip('/')}/{prefix}{part.name}".lstrip("/"))

    def commit(self) -> None:
        prefix = f"batchpred/{self.context.job_id}/"
        source = f"{_stage_reference(self._stage_name)}/{prefix}"
        try:
            if self._target is None or not self._parts:
                self.connection.commit()
                return
            with _cursor(self.connection) as cursor:
                self._upload(cursor, prefix)
                if self._pending_create is not None:
                    self._create_pending(cursor)
                if self.statement in ("insert", "create_table"):
                    cursor.execute("BEGIN")
                    cursor.execute(self._copy_statement(self._target_sql, source))
                else:
                    assert self._target is not None
                    staging = self.dialect.create_staging(
                        cursor, self.connection, self._target, self._columns
                    )
                    cursor.execute("BEGIN")
                    cursor.execute(self._copy_statement(staging, source))
                    where = [_pick(self._columns, c) or c for c in self.settings.where_columns or []]
                    set_columns = self._set_columns()
                    if set_columns:
                        cursor.execute(
                            self.dialect.update_from_staging(
                                self.connection, self._target_sql, staging, set_columns, where
                            )
                        )
                    if self.statement == "insert_update":
                        cursor.execute(
                            self.dialect.insert_missing_from_staging(
                                self.connection, self._target_sql, staging, self._columns, where
                            )
                        )
            self.connection.commit()
            log.info(
                "Job %s loaded %d part(s) into %s", self.context.job_id, len(self._parts), self._target_sql
            )
        except OutputError:
            self.abort()
            raise
        except Exception as exc:
            if not self.dialect.is_driver_error(exc):
                self.abort()
                raise
            self.abort()
            target = _display(self._target) if self._target else self._display_target()
            raise OutputError(
                f"loading the scores into {target} failed: {self.dialect.describe_error(exc)}; "
                "nothing was written"
            ) from None
        self._remove_staged(source)
        self._close()
        self._discard_parts()

    def _copy_statement(self, table_sql: str, source: str) -> str:
        columns = [self.dialect.quote(self.connection, column) for column in self._columns]
        fields = ", ".join(f"$1:{column}" for column in columns)
        return (
            f"COPY INTO {table_sql} ({', '.join(columns)}) "
            f"FROM (SELECT {fields} FROM {source}) {_COPY_OPTIONS}"
        )

    def _create_pending(self, cursor: Any) -> None:
        assert self._pending_create is not None
        table, schema = self._pending_create
        definitions = ", ".join(
            f"{self.dialect.quote(self.connection, field.name)} {self.dialect.sql_type(field.type)}"
            for field in schema
        )
        cursor.execute(f"CREATE TABLE {self.dialect.qualified(self.connection, table)} ({definitions})")
        self._created_table = True
        self._pending_create = None

    def _remove_staged(self, source: str) -> None:
        try:
            with _cursor(self.connection) as cursor:
                cursor.execute(f"REMOVE {source}")
        except Exception as exc:
            log.warning("Job %s could not remove its staged files %s: %s", self.context.job_id, source, exc)

    def abort(self) -> None:
        self._discard_parts()
        super().abort()

    def _discard_parts(self) -> None:
        for part in self._parts:
            part.unlink(missing_ok=True)
        self._parts = []
