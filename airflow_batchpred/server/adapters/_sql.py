# ruff: noqa: S608 - statements are built from identifiers quoted by the dialect; values are parameters
"""What the database adapters (``jdbc``, ``snowflake``, ``synapse``) have in common.

A database adapter resolves its ``dataStoreId`` (a JDBC URL) and ``credentialId`` (user and
password, or a Snowflake key pair) from the store, picks the :class:`SqlDialect` the URL names,
and then runs the same code for every database:

* **intake** (:class:`SqlIntake`): ``SELECT *`` from ``schema.table`` or the caller's ``query``,
  streamed (a server-side cursor where the driver has one) and turned into record batches of
  string columns;
* **output** (:class:`SqlOutput`): one transaction for the whole job. ``insert`` and
  ``create_table`` load each scored chunk straight into the target table; ``update`` and
  ``insert_update`` load it into a temporary staging table shaped like the target (so type errors
  surface there) and apply ``UPDATE ... FROM staging`` (then ``INSERT ... WHERE NOT EXISTS``).
  :meth:`SqlOutput.commit` commits, :meth:`SqlOutput.abort` rolls back: a failed or aborted job
  leaves the target table as it was, including a table the job created (DDL is transactional in
  PostgreSQL; in Snowflake and Synapse a created table is dropped again on abort). With
  ``commitInterval`` N > 0 the output also commits every N seconds, and an aborted job then keeps
  the rows committed before its last interval boundary.

Identifiers are quoted by the dialect (PostgreSQL: :mod:`psycopg2.sql`), never pasted in raw.
Table and schema names are looked up in ``information_schema`` first, exactly and then
case-insensitively, so ``scored_data`` finds PostgreSQL's lower-case table and ``SCORED_DATA``
Snowflake's upper-case one; a missing schema or table is a job failure naming it.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow as pa

from airflow_batchpred.server.adapters.base import (
    AdapterContext,
    IntakeAdapter,
    IntakeError,
    OutputAdapter,
    OutputError,
)
from airflow_batchpred.server.store import CREDENTIAL, DATA_STORE

if TYPE_CHECKING:
    from airflow_batchpred.server.services import Services

log = logging.getLogger(__name__)

#: Rows fetched per round trip and per record batch of a database intake.
FETCH_ROWS = 10_000


class SqlError(Exception):
    """A database problem described for ``statusDetails`` (no secrets, no raw driver dumps)."""


# ---------------------------------------------------------------------------------------------
# Data stores and credentials
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JdbcLocation:
    """Where a JDBC URL points.

    :param scheme: the driver name of the URL (``postgresql``, ``snowflake``, ``sqlserver``).
    :param host: host name; :param port: port or ``None`` for the driver's default.
    :param database: database named in the path (PostgreSQL) or in a parameter.
    :param params: the URL's parameters (``?a=b&c=d`` or SQL Server's ``;a=b;c=d``).
    """

    scheme: str
    host: str
    port: int | None
    database: str | None
    params: Mapping[str, str] = field(default_factory=dict)


_JDBC_URL = re.compile(r"^jdbc:(?P<scheme>[a-z0-9]+)://(?P<rest>.*)$", re.IGNORECASE)


def parse_jdbc_url(url: str) -> JdbcLocation:
    """Parse ``jdbc:<driver>://host[:port][/database][?params]`` (or SQL Server's ``;params``).

    :raises ValueError: naming what is wrong; the URL itself is not repeated (it may hold a password).
    """
    match = _JDBC_URL.match(url.strip())
    if not match:
        raise ValueError("the JDBC URL must look like jdbc:<driver>://host[:port]/database")
    scheme = match["scheme"].lower()
    rest = match["rest"]
    params: dict[str, str] = {}
    if scheme == "sqlserver":
        address, _, options = rest.partition(";")
        for option in filter(None, options.split(";")):
            key, _, value = option.partition("=")
            params[key.strip()] = value.strip()
        address, _, path = address.partition("/")
    else:
        parts = urlsplit("//" + rest)
        address = parts.netloc
        path = parts.path.lstrip("/")
        params = {key: value for key, value in parse_qsl(parts.query, keep_blank_values=True)}
    if "@" in address:
        address = address.rpartition("@")[2]
    host, _, port_text = address.partition(":")
    if not host:
        raise ValueError("the JDBC URL names no host")
    try:
        port = int(port_text) if port_text else None
    except ValueError:
        raise ValueError(f"the JDBC URL's port {port_text!r} is not a number") from None
    database = unquote(path) or params.get("databaseName") or params.get("db") or None
    return JdbcLocation(scheme=scheme, host=host, port=port, database=database, params=params)


@dataclass(frozen=True)
class ResolvedStore:
    """A data store and credential ready to connect with (secrets kept out of ``repr``)."""

    data_store_id: str
    location: JdbcLocation
    secrets: Mapping[str, Any] = field(repr=False)
    credential_type: str | None = None


def resolve_store(
    services: Services, data_store_id: str, credential_id: str | None, error: type[Exception]
) -> ResolvedStore:
    """Look up the data store and the credential of a job side.

    :param error: :class:`IntakeError` or :class:`OutputError`, raised with a message for the job.
    """
    store = services.store.get(DATA_STORE, data_store_id)
    if store is None:
        raise error(
            f"data store {data_store_id} does not exist; create it with POST externalDataStores/ "
            "(or let the operator map an Airflow connection)"
        )
    jdbc_url = (store.get("params") or {}).get("jdbcUrl")
    if not jdbc_url:
        raise error(f"data store {data_store_id} has no params.jdbcUrl")
    try:
        location = parse_jdbc_url(str(jdbc_url))
    except ValueError as exc:
        raise error(f"data store {data_store_id}: {exc}") from None
    secrets: dict[str, Any] = {}
    credential_type = None
    if credential_id:
        credential = services.store.get(CREDENTIAL, credential_id)
        if credential is None:
            raise error(f"credential {credential_id} does not exist; create it with POST credentials/")
        credential_type = credential.get("credentialType")
        secrets = services.store.get_secrets(CREDENTIAL, credential_id)
    return ResolvedStore(data_store_id, location, secrets, credential_type)


# ---------------------------------------------------------------------------------------------
# Dialects
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableRef:
    """A table as the database spells it (after the case-insensitive lookup)."""

    schema: str | None
    name: str
    catalog: str | None = None


class SqlDialect(ABC):
    """How one database connects, quotes, types and stages.

    Statements are assembled from identifiers quoted by :meth:`quote`; values always travel as
    driver parameters or through the bulk-load path of :meth:`load_rows`.
    """

    #: The JDBC URL scheme(s) this dialect serves.
    schemes: ClassVar[tuple[str, ...]]
    #: Name in messages.
    label: ClassVar[str]
    default_schema: ClassVar[str | None] = None
    #: Whether ``CREATE TABLE`` is rolled back with the transaction.
    transactional_ddl: ClassVar[bool] = True
    placeholder: ClassVar[str] = "%s"
    text_type: ClassVar[str] = "TEXT"
    float_type: ClassVar[str] = "DOUBLE PRECISION"
    int_type: ClassVar[str] = "BIGINT"
    bool_type: ClassVar[str] = "BOOLEAN"

    @abstractmethod
    def connect(self, store: ResolvedStore, *, read_only: bool) -> Any:
        """An open DB-API connection (autocommit off)."""

    @abstractmethod
    def quote(self, connection: Any, name: str) -> str:
        """``name`` as a quoted identifier."""

    def qualified(self, connection: Any, table: TableRef) -> str:
        parts = [part for part in (table.catalog, table.schema, table.name) if part]
        return ".".join(self.quote(connection, part) for part in parts)

    def open_read_cursor(self, connection: Any) -> Any:
        """A cursor that streams a big result (server-side where the driver supports it)."""
        return connection.cursor()

    def describe_error(self, exc: BaseException) -> str:
        """A one-line description of a driver error, for ``statusDetails``."""
        return " ".join(str(exc).split())

    def is_driver_error(self, exc: BaseException) -> bool:
        return False

    def current_schema(self, connection: Any) -> str | None:
        return self.default_schema

    def sql_type(self, arrow_type: pa.DataType) -> str:
        if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
            return self.float_type
        if pa.types.is_integer(arrow_type):
            return self.int_type
        if pa.types.is_boolean(arrow_type):
            return self.bool_type
        return self.text_type

    def create_staging(self, cursor: Any, connection: Any, target: TableRef, columns: Sequence[str]) -> str:
        """Create (or empty) a temporary table shaped like ``columns`` of ``target``; return its name."""
        staging = self.quote(connection, "batchpred_staging")
        cursor.execute(f"DROP TABLE IF EXISTS {staging}")
        column_list = ", ".join(self.quote(connection, name) for name in columns)
        cursor.execute(
            f"CREATE TEMPORARY TABLE {staging} AS SELECT {column_list} "
            f"FROM {self.qualified(connection, target)} WHERE 1 = 0"
        )
        return staging

    def clear_staging(self, cursor: Any, staging: str) -> None:
        cursor.execute(f"DELETE FROM {staging}")

    def load_rows(
        self, cursor: Any, connection: Any, table_sql: str, columns: Sequence[str], table: pa.Table
    ) -> None:
        """Insert the rows of ``table`` into ``table_sql`` (default: multi-row parameterised INSERT)."""
        column_list = ", ".join(self.quote(connection, name) for name in columns)
        row_marks = "(" + ", ".join([self.placeholder] * len(columns)) + ")"
        statement = f"INSERT INTO {table_sql} ({column_list}) VALUES {row_marks}"
        rows = list(zip(*(column.to_pylist() for column in table.columns), strict=True))
        if rows:
            cursor.executemany(statement, rows)

    def update_from_staging(
        self,
        connection: Any,
        target_sql: str,
        staging: str,
        set_columns: Sequence[str],
        where_columns: Sequence[str],
    ) -> str:
        assignments = ", ".join(
            f"{self.quote(connection, c)} = s.{self.quote(connection, c)}" for c in set_columns
        )
        matches = " AND ".join(
            f"{target_sql}.{self.quote(connection, c)} = s.{self.quote(connection, c)}" for c in where_columns
        )
        return f"UPDATE {target_sql} SET {assignments} FROM {staging} AS s WHERE {matches}"

    def insert_missing_from_staging(
        self,
        connection: Any,
        target_sql: str,
        staging: str,
        columns: Sequence[str],
        where_columns: Sequence[str],
    ) -> str:
        column_list = ", ".join(self.quote(connection, c) for c in columns)
        source_list = ", ".join(f"s.{self.quote(connection, c)}" for c in columns)
        matches = " AND ".join(
            f"t.{self.quote(connection, c)} = s.{self.quote(connection, c)}" for c in where_columns
        )
        return (
            f"INSERT INTO {target_sql} ({column_list}) SELECT {source_list} FROM {staging} AS s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target_sql} AS t WHERE {matches})"
        )

    def drop_table(self, connection: Any, table: TableRef) -> str:
        return f"DROP TABLE IF EXISTS {self.qualified(connection, table)}"


def _text(value: Any) -> str | None:
    """A database value as the string the scorer and the outputs see (``None`` stays NULL)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)  # int, Decimal, UUID, ...


class PostgresDialect(SqlDialect):
    """PostgreSQL through :mod:`psycopg2`: named (server-side) cursors, ``COPY`` bulk loads."""

    schemes = ("postgresql", "postgres")
    label = "PostgreSQL"
    default_schema = "public"

    def connect(self, store: ResolvedStore, *, read_only: bool) -> Any:
        import psycopg2

        location = store.location
        user = store.secrets.get("user") or location.params.get("user")
        password = store.secrets.get("password") or location.params.get("password")
        keywords: dict[str, Any] = {
            "host": location.host,
            "port": location.port or 5432,
            "dbname": location.database or "postgres",
            "connect_timeout": int(location.params.get("connectTimeout", 10)),
            "application_name": "batchpred-server",
        }
        if location.params.get("sslmode"):
            keywords["sslmode"] = location.params["sslmode"]
        if user:
            keywords["user"] = user
        if password:
            keywords["password"] = password
        connection = psycopg2.connect(**keywords)
        connection.autocommit = False
        if read_only:
            connection.set_session(readonly=True)
        return connection

    def quote(self, connection: Any, name: str) -> str:
        from psycopg2 import sql

        return str(sql.Identifier(name).as_string(connection))

    def open_read_cursor(self, connection: Any) -> Any:
        cursor = connection.cursor(name="batchpred_intake")
        cursor.itersize = FETCH_ROWS
        return cursor

    def is_driver_error(self, exc: BaseException) -> bool:
        import psycopg2

        return isinstance(exc, psycopg2.Error)

    def describe_error(self, exc: BaseException) -> str:
        diag = getattr(exc, "diag", None)
        primary = getattr(diag, "message_primary", None)
        if not primary:
            return super().describe_error(exc)
        context = getattr(diag, "context", None)
        return " ".join(f"{primary}{f' ({context})' if context else ''}".split())

    def current_schema(self, connection: Any) -> str | None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_schema()")
            row = cursor.fetchone()
        return str(row[0]) if row and row[0] else self.default_schema

    def load_rows(
        self, cursor: Any, connection: Any, table_sql: str, columns: Sequence[str], table: pa.Table
    ) -> None:
        column_list = ", ".join(self.quote(connection, name) for name in columns)
        buffer = io.StringIO(copy_text(table))
        cursor.copy_expert(f"COPY {table_sql} ({column_list}) FROM STDIN", buffer)

    def create_staging(self, cursor: Any, connection: Any, target: TableRef, columns: Sequence[str]) -> str:
        staging = self.quote(connection, "batchpred_staging")
        column_list = ", ".join(self.quote(connection, name) for name in columns)
        cursor.execute(f"DROP TABLE IF EXISTS {staging}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {staging} AS SELECT {column_list} "
            f"FROM {self.qualified(connection, target)} WITH NO DATA"
        )
        return staging

    def clear_staging(self, cursor: Any, staging: str) -> None:
        cursor.execute(f"TRUNCATE {staging}")


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(table: pa.Table) -> str:
    """Rows of ``table`` in PostgreSQL ``COPY`` text format (tab-separated, ``\\N`` for NULL)."""
    columns = []
    for column in table.columns:
        cells = []
        for value in column.to_pylist():
            if value is None:
                cells.append("\\N")
            elif isinstance(value, str):
                cells.append(value.translate(_COPY_ESCAPES))
            else:
                cells.append((_text(value) or "").translate(_COPY_ESCAPES))
        columns.append(cells)
    if not columns:
        return ""
    return "".join("\t".join(row) + "\n" for row in zip(*columns, strict=True))


DIALECTS: dict[str, SqlDialect] = {}


def register_dialect(dialect: SqlDialect) -> SqlDialect:
    for scheme in dialect.schemes:
        DIALECTS[scheme] = dialect
    return dialect


register_dialect(PostgresDialect())


def dialect_for(
    store: ResolvedStore, allowed: Sequence[str], adapter: str, error: type[Exception]
) -> SqlDialect:
    """The dialect of the store's JDBC URL, if ``adapter`` accepts that scheme."""
    scheme = store.location.scheme
    if scheme not in allowed or scheme not in DIALECTS:
        raise error(
            f"data store {store.data_store_id} is a jdbc:{scheme} URL, which the {adapter} adapter "
            f"does not support (supported: {', '.join('jdbc:' + s for s in allowed)})"
        )
    return DIALECTS[scheme]


# ---------------------------------------------------------------------------------------------
# Table lookup
# ---------------------------------------------------------------------------------------------


def _pick(names: Sequence[str], wanted: str) -> str | None:
    if wanted in names:
        return wanted
    folded = [name for name in names if name.lower() == wanted.lower()]
    return folded[0] if len(folded) == 1 else None


def find_schema(dialect: SqlDialect, connection: Any, schema: str | None, catalog: str | None) -> str | None:
    """The schema as the database spells it, or ``None`` if it does not exist."""
    wanted = schema or dialect.current_schema(connection)
    if wanted is None:
        return None
    with _cursor(connection) as cursor:
        if catalog:
            cursor.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE upper(catalog_name) = upper("
                + dialect.placeholder
                + ")",
                (catalog,),
            )
        else:
            cursor.execute("SELECT schema_name FROM information_schema.schemata")
        names = [str(row[0]) for row in cursor.fetchall()]
    return _pick(names, wanted)


def find_table(
    dialect: SqlDialect, connection: Any, schema: str, table: str, catalog: str | None
) -> TableRef | None:
    """The table as the database spells it, or ``None`` if it does not exist in ``schema``."""
    with _cursor(connection) as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = " + dialect.placeholder,
            (schema,),
        )
        names = [str(row[0]) for row in cursor.fetchall()]
    found = _pick(names, table)
    return TableRef(schema=schema, name=found, catalog=catalog) if found else None


def table_columns(dialect: SqlDialect, connection: Any, table: TableRef) -> list[str]:
    with _cursor(connection) as cursor:
        cursor.execute(f"SELECT * FROM {dialect.qualified(connection, table)} WHERE 1 = 0")
        return [str(column[0]) for column in cursor.description]


class _cursor:
    """``with _cursor(connection) as cursor`` for drivers whose cursors are not context managers."""

    def __init__(self, connection: Any) -> None:
        self._cursor = connection.cursor()

    def __enter__(self) -> Any:
        return self._cursor

    def __exit__(self, *exc_info: object) -> None:
        self._cursor.close()


def _display(table: TableRef) -> str:
    return ".".join(part for part in (table.catalog, table.schema, table.name) if part)


# ---------------------------------------------------------------------------------------------
# Intake
# ---------------------------------------------------------------------------------------------


class SqlIntake(IntakeAdapter):
    """Streams ``schema.table`` or ``query`` as record batches of strings.

    Subclasses set :attr:`type`, :attr:`schemes` and may override :meth:`prepare_read`.
    """

    schemes: ClassVar[tuple[str, ...]]

    def __init__(self, settings: Any, context: AdapterContext) -> None:
        super().__init__(settings, context)
        self.store = resolve_store(
            context.services, settings.data_store_id, settings.credential_id, IntakeError
        )
        self.dialect = dialect_for(self.store, self.schemes, self.type, IntakeError)
        self._connection: Any = None
        self._cursor: Any = None
        self._bytes = 0

    def _connect(self) -> Any:
        try:
            return self.dialect.connect(self.store, read_only=True)
        except Exception as exc:
            raise IntakeError(
                f"cannot connect to {self.dialect.label} data store {self.store.data_store_id}: "
                f"{self.dialect.describe_error(exc)}"
            ) from None

    def source_sql(self, connection: Any) -> tuple[str, str]:
        """``(SELECT statement, description for messages)``."""
        settings = self.settings
        if settings.query:
            return str(settings.query), "the intake query"
        catalog = getattr(settings, "catalog", None)
        schema = find_schema(self.dialect, connection, settings.schema_name, catalog)
        if schema is None:
            raise IntakeError(
                f"schema {settings.schema_name or '(default)'!r} does not exist in {self.dialect.label} "
                f"data store {self.store.data_store_id}"
            )
        table = find_table(self.dialect, connection, schema, settings.table, catalog)
        if table is None:
            raise IntakeError(
                f"table {schema}.{settings.table} does not exist in {self.dialect.label} data store "
                f"{self.store.data_store_id}"
            )
        return f"SELECT * FROM {self.dialect.qualified(connection, table)}", f"table {_display(table)}"

    def prepare_read(self, connection: Any) -> None:
        """Hook run before the read (e.g. Snowflake checks its external stage)."""

    def batches(self) -> Iterator[pa.RecordBatch]:
        self._connection = self._connect()
        what = "the intake"
        try:
            self.prepare_read(self._connection)
            statement, what = self.source_sql(self._connection)
            self._cursor = self.dialect.open_read_cursor(self._connection)
            self._cursor.execute(statement)
            rows = self._cursor.fetchmany(FETCH_ROWS)
            names = [str(column[0]) for column in self._cursor.description or ()]
            if not names:
                raise IntakeError(f"{what} returned no columns")
            while rows:
                columns = list(zip(*rows, strict=True))
                arrays = [pa.array([_text(value) for value in column], pa.string()) for column in columns]
                batch = pa.RecordBatch.from_arrays(arrays, names=names)
                self._bytes += batch.nbytes
                yield batch
                rows = self._cursor.fetchmany(FETCH_ROWS)
        except (IntakeError, GeneratorExit):
            raise
        except Exception as exc:
            if not self.dialect.is_driver_error(exc):
                raise
            raise IntakeError(f"reading {what} failed: {self.dialect.describe_error(exc)}") from None

    @property
    def bytes_read(self) -> int:
        return self._bytes

    def close(self) -> None:
        for closeable in (self._cursor, self._connection):
            if closeable is None:
                continue
            try:
                closeable.close()
            except Exception:
                log.debug("closing the %s intake failed", self.type, exc_info=True)
        self._cursor = self._connection = None


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


class SqlOutput(OutputAdapter):
    """Writes scored chunks in one transaction (see the module docstring)."""

    schemes: ClassVar[tuple[str, ...]]

    def __init__(self, settings: Any, context: AdapterContext) -> None:
        super().__init__(settings, context)
        self.store = resolve_store(
            context.services, settings.data_store_id, settings.credential_id, OutputError
        )
        self.dialect = dialect_for(self.store, self.schemes, self.type, OutputError)
        try:
            self.connection = self.dialect.connect(self.store, read_only=False)
        except Exception as exc:
            raise OutputError(
                f"cannot connect to {self.dialect.label} data store {self.store.data_store_id}: "
                f"{self.dialect.describe_error(exc)}"
            ) from None
        self.statement: str = settings.statement_type
        self.commit_interval: int = int(getattr(settings, "commit_interval", None) or 0)
        self._last_commit = time.monotonic()
        self._target: TableRef | None = None
        self._target_sql = ""
        self._columns: list[str] = []
        self._staging: str | None = None
        self._created_table = False
        self._bytes = 0
        self._closed = False

    # -- set-up at the first chunk ---------------------------------------------------------

    def _display_target(self) -> str:
        schema = self.settings.schema_name or "(default schema)"
        return f"{schema}.{self.settings.table}"

    def _resolve_target(self, first: pa.Table) -> None:
        settings = self.settings
        catalog = getattr(settings, "catalog", None)
        schema = find_schema(self.dialect, self.connection, settings.schema_name, catalog)
        if schema is None:
            raise OutputError(
                f"schema {settings.schema_name or '(default)'!r} does not exist in {self.dialect.label} "
                f"data store {self.store.data_store_id}; create it or fix outputSettings.schema"
            )
        table = find_table(self.dialect, self.connection, schema, settings.table, catalog)
        if self.statement == "create_table" and table is not None:
            raise OutputError(
                f"table {_display(table)} already exists; statementType create_table creates a new "
                "table: use insert (optionally with createTableIfNotExists) to add to it"
            )
        if table is None:
            if self.statement != "create_table" and not settings.create_table_if_not_exists:
                raise OutputError(
                    f"table {schema}.{settings.table} does not exist in {self.dialect.label} data store "
                    f"{self.store.data_store_id}; create it, set createTableIfNotExists, or use "
                    "statementType create_table"
                )
            table = TableRef(schema=schema, name=settings.table, catalog=catalog)
            self._create_table(table, first)
        self._target = table
        self._target_sql = self.dialect.qualified(self.connection, table)
        self._columns = self._match_columns(table, first.column_names)
        if self.statement in ("update", "insert_update"):
            self._check_key_columns()
            with _cursor(self.connection) as cursor:
                self._staging = self.dialect.create_staging(cursor, self.connection, table, self._columns)

    def _create_table(self, table: TableRef, first: pa.Table) -> None:
        definitions = ", ".join(
            f"{self.dialect.quote(self.connection, column.name)} {self.dialect.sql_type(column.type)}"
            for column in first.schema
        )
        with _cursor(self.connection) as cursor:
            cursor.execute(f"CREATE TABLE {self.dialect.qualified(self.connection, table)} ({definitions})")
        self._created_table = True
        log.info("Job %s created table %s", self.context.job_id, _display(table))

    def _match_columns(self, table: TableRef, output_names: Sequence[str]) -> list[str]:
        """The target's spelling of every output column; fails naming the columns it lacks."""
        existing = table_columns(self.dialect, self.connection, table)
        matched, missing = [], []
        for name in output_names:
            found = _pick(existing, name)
            (matched.append(found) if found else missing.append(name))
        if missing:
            raise OutputError(
                f"table {_display(table)} has no column(s) {', '.join(missing)} for the scored output "
                f"(it has: {', '.join(existing)}); add them, or drop/rename output columns with "
                "columnNamesRemapping"
            )
        return matched

    def _check_key_columns(self) -> None:
        settings = self.settings
        lacking = {
            "whereColumns": [c for c in settings.where_columns or [] if _pick(self._columns, c) is None],
            "updateColumns": [c for c in settings.update_columns or [] if _pick(self._columns, c) is None],
        }
        problems = [f"{field_name} {', '.join(names)}" for field_name, names in lacking.items() if names]
        if problems:
            raise OutputError(
                f"statementType {self.statement}: {'; '.join(problems)} not among the output columns "
                f"written to {_display(self._target) if self._target else self._display_target()} "
                f"({', '.join(self._columns)}); pass them through (passthroughColumns) or fix the names"
            )

    def _set_columns(self) -> list[str]:
        where = {(_pick(self._columns, c) or c) for c in self.settings.where_columns or []}
        if self.settings.update_columns:
            return [_pick(self._columns, c) or c for c in self.settings.update_columns]
        return [c for c in self._columns if c not in where]

    # -- writing ---------------------------------------------------------------------------

    def write(self, table: pa.Table) -> None:
        try:
            if self._target is None:
                self._resolve_target(table)
            if table.num_rows:
                self._write_chunk(table)
            self._bytes += table.nbytes
            if self.commit_interval and time.monotonic() - self._last_commit >= self.commit_interval:
                self.connection.commit()
                self._last_commit = time.monotonic()
                log.info(
                    "Job %s committed rows to %s (commitInterval)", self.context.job_id, self._target_sql
                )
        except OutputError:
            raise
        except Exception as exc:
            if not self.dialect.is_driver_error(exc):
                raise
            raise OutputError(
                f"writing to {_display(self._target) if self._target else self._display_target()} "
                f"failed: {self.dialect.describe_error(exc)}; nothing was written"
                + (" since the last commitInterval commit" if self.commit_interval else "")
            ) from None

    def _write_chunk(self, table: pa.Table) -> None:
        with _cursor(self.connection) as cursor:
            if self.statement in ("insert", "create_table"):
                self.dialect.load_rows(cursor, self.connection, self._target_sql, self._columns, table)
                return
            assert self._staging is not None
            self.dialect.clear_staging(cursor, self._staging)
            self.dialect.load_rows(cursor, self.connection, self._staging, self._columns, table)
            where = [_pick(self._columns, c) or c for c in self.settings.where_columns or []]
            set_columns = self._set_columns()
            if set_columns:
                cursor.execute(
                    self.dialect.update_from_staging(
                        self.connection, self._target_sql, self._staging, set_columns, where
                    )
                )
            if self.statement == "insert_update":
                cursor.execute(
                    self.dialect.insert_missing_from_staging(
                        self.connection, self._target_sql, self._staging, self._columns, where
                    )
                )

    def commit(self) -> None:
        try:
            if self._staging is not None:
                with _cursor(self.connection) as cursor:
                    cursor.execute(f"DROP TABLE IF EXISTS {self._staging}")
            self.connection.commit()
        except Exception as exc:
            if not self.dialect.is_driver_error(exc):
                raise
            self.abort()
            raise OutputError(
                f"committing to {self._target_sql} failed: {self.dialect.describe_error(exc)}"
            ) from None
        finally:
            self._close()

    def abort(self) -> None:
        if self._closed:
            return
        try:
            self.connection.rollback()
            if self._created_table and not self.dialect.transactional_ddl and self._target is not None:
                with _cursor(self.connection) as cursor:
                    cursor.execute(self.dialect.drop_table(self.connection, self._target))
                self.connection.commit()
        finally:
            self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.connection.close()
        except Exception:
            log.debug("closing the %s output connection failed", self.type, exc_info=True)

    @property
    def bytes_written(self) -> int:
        return self._bytes
