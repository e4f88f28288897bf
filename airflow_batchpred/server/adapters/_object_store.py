"""What the ``s3``, ``azure`` and ``gcp`` adapters share: streaming reads, part uploads, formats.

Each cloud module supplies an :class:`ObjectStore` (one object of one bucket/container, opened
with the job's stored credential); everything else lives here:

* **Intake.** CSV streams through :class:`ObjectStream`, one ranged GET from the current offset
  that is re-opened where it broke if the connection drops (the object's version is pinned, so a
  rewrite mid-job fails the job instead of mixing two versions). Parquet needs random access (the
  footer is at the end): :class:`RangedFile` serves pyarrow's seeks and reads with ranged GETs
  and a small read-ahead, and row groups are read one at a time. Either way memory stays flat
  whatever the object's size.
* **Output.** :class:`PartUploader` buffers at most one part (``part_size`` bytes) and sends each
  full part as it fills (S3 multipart upload, Azure staged blocks, GCS resumable session). Only
  :meth:`ObjectStoreOutput.commit` completes the upload, so the object appears only when the job
  COMPLETED; :meth:`ObjectStoreOutput.abort` cancels the upload and nothing is left visible.

Credentials come from ``credentials/`` (``ctx.services.store.get_secrets``); no secret is ever
put in a message: :func:`scrub` removes every secret value from error texts that reach
``statusDetails`` or the server log.
"""

from __future__ import annotations

import io
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from airflow_batchpred.server.adapters.base import (
    AdapterContext,
    IntakeAdapter,
    IntakeError,
    JobCancelled,
    OutputAdapter,
    OutputError,
)
from airflow_batchpred.server.csv_io import CsvTableWriter, iter_csv_batches
from airflow_batchpred.server.errors import ApiError
from airflow_batchpred.server.store import CREDENTIAL

if TYPE_CHECKING:
    from airflow_batchpred.server.services import Services

log = logging.getLogger(__name__)

#: Bytes of one uploaded part. S3 wants at least 5 MiB (except the last part), GCS multiples of
#: 256 KiB; 8 MiB satisfies both and keeps the output buffer small.
DEFAULT_PART_SIZE = 8 * 1024 * 1024
#: Read-ahead of parquet's ranged reads (pyarrow issues many small reads around each column chunk).
RANGED_READ_AHEAD = 4 * 1024 * 1024
#: How often a broken intake stream is re-opened at the offset where it broke.
STREAM_REOPEN_ATTEMPTS = 3
#: Rows per record batch read from a parquet intake (the runner slices them further).
PARQUET_BATCH_ROWS = 65_536


class MissingExtraError(Exception):
    """A cloud SDK is not installed on the server; the message names the extra to install."""


def require(module: str, extra: str, what: str) -> Any:
    """Import ``module`` lazily, or fail with the ``pip install`` that fixes it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"{what} needs the Python package providing {module!r}, which is not installed on the "
            f"server: pip install 'airflow-provider-batchpred[{extra}]'"
        ) from None


def scrub(text: str, secrets: Iterable[Any]) -> str:
    """``text`` with every secret value (and every line of multi-line ones) replaced by ``***``."""
    for secret in secrets:
        values = [secret] if not isinstance(secret, Mapping) else list(secret.values())
        for value in values:
            if not isinstance(value, str) or len(value) < 4:
                continue
            text = text.replace(value, "***")
            for line in value.splitlines():
                if len(line) >= 8:
                    text = text.replace(line, "***")
    return text


# ---------------------------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------------------------


def check_credential(services: Services, credential_id: str | None, expected_type: str, field: str) -> None:
    """Raise a 4xx :class:`ApiError` when ``credential_id`` is unknown or of the wrong type."""
    if not credential_id:
        return
    record = services.store.get(CREDENTIAL, credential_id)
    if record is None:
        raise ApiError(
            404,
            f"{field}.credentialId: credential {credential_id} does not exist; create it with "
            "POST credentials/ (or let the Airflow operator map a connection)",
            {field: {"credentialId": "unknown credential"}},
        )
    if record.get("credentialType") != expected_type:
        raise ApiError(
            422,
            f"{field}.credentialId: credential {credential_id} has type "
            f"{record.get('credentialType')!r}; this adapter needs a {expected_type!r} credential",
            {field: {"credentialId": f"must be a {expected_type} credential"}},
        )


def load_secrets(services: Services, credential_id: str | None, expected_type: str) -> dict[str, Any]:
    """The secret fields of ``credential_id`` (empty for none); raises :class:`IntakeError`."""
    if not credential_id:
        return {}
    record = services.store.get(CREDENTIAL, credential_id)
    if record is None or record.get("credentialType") != expected_type:
        raise IntakeError(f"credential {credential_id} is gone or is not a {expected_type!r} credential")
    return services.store.get_secrets(CREDENTIAL, credential_id)


def check_url(parse: Any, url: str, field: str) -> None:
    """Answer 422 when ``parse(url)`` raises :class:`ValueError` (the message says the right form)."""
    try:
        parse(url)
    except ValueError as exc:
        raise ApiError(422, f"{field}.url: {exc}", {field: {"url": str(exc)}}) from None


def check_settings(settings: Any, field: str) -> None:
    """Reject output options the local server does not implement, naming the field."""
    if getattr(settings, "partition_columns", None):
        raise ApiError(
            422,
            f"{field}.partitionColumns: partitioned (directory) output is not supported by the local "
            "server; write one object (a url that names a file) instead",
            {field: {"partitionColumns": "not supported by the local server"}},
        )
    url = str(getattr(settings, "url", ""))
    if url.endswith("/"):
        raise ApiError(
            422,
            f"{field}.url must name an object, not a prefix ending with '/': {url}",
            {field: {"url": "must name an object"}},
        )


# ---------------------------------------------------------------------------------------------
# One object in a store
# ---------------------------------------------------------------------------------------------


class ObjectStore(ABC):
    """One object of a cloud store, as an adapter sees it.

    :param url: the object's URL, as given in the job settings (for messages).
    :param secrets: the credential's secret values, scrubbed from every message.
    """

    #: The storage's name in messages ("S3", "Azure Blob Storage", "GCS").
    service: ClassVar[str]
    #: Exceptions of the SDK meaning "the connection broke while streaming" (re-open and go on).
    transient_errors: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)

    def __init__(self, url: str, secrets: Mapping[str, Any]) -> None:
        self.url = url
        self._secrets = dict(secrets)

    def describe(self, action: str, exc: BaseException) -> str:
        """A message for ``statusDetails``: what failed, on which object, why; secrets removed."""
        reason = self.reason(exc)
        return scrub(f"{self.service}: could not {action} {self.url}: {reason}", [self._secrets])

    def reason(self, exc: BaseException) -> str:
        """The short reason of an SDK error (subclasses pick the useful part)."""
        return f"{type(exc).__name__}: {exc}"

    # Reading ---------------------------------------------------------------------------------

    @abstractmethod
    def stat(self) -> tuple[int, str | None]:
        """``(size in bytes, version tag)`` of the object; the tag pins later reads."""

    @abstractmethod
    def open_range(self, start: int, end: int | None, version: str | None) -> Iterator[bytes]:
        """Stream bytes ``[start, end)`` (to the end when ``end`` is None) of that version."""

    # Writing ---------------------------------------------------------------------------------

    @abstractmethod
    def begin_upload(self) -> None:
        """Start a multi-part upload (nothing visible yet)."""

    @abstractmethod
    def upload_part(self, number: int, data: bytes, offset: int) -> None:
        """Send part ``number`` (1-based) holding bytes ``[offset, offset + len(data))``."""

    @abstractmethod
    def complete_upload(self, last: bytes, offset: int) -> None:
        """Send the final bytes (maybe empty) and make the object visible."""

    @abstractmethod
    def put_small(self, data: bytes) -> None:
        """Write a whole object smaller than one part in one request."""

    @abstractmethod
    def abort_upload(self) -> None:
        """Cancel the multi-part upload; nothing may become visible."""


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


class ObjectStream(io.RawIOBase):
    """A forward-only binary stream over one object, re-opened where it broke on network errors.

    :param cancelled: set when the job is aborted; reads then raise :class:`JobCancelled`.
    """

    def __init__(self, store: ObjectStore, cancelled: Any) -> None:
        self._store = store
        self._cancelled = cancelled
        try:
            self.size, self._version = store.stat()
        except Exception as exc:
            raise IntakeError(store.describe("read", exc)) from None
        self.position = 0
        self._chunks: Iterator[bytes] | None = None
        self._pending = memoryview(b"")
        self._reopened = 0

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes:
        while True:
            if self._chunks is None:
                self._chunks = self._store.open_range(self.position, None, self._version)
            try:
                chunk = next(self._chunks, None)
                if chunk is None:
                    return b""
                if chunk:
                    return chunk
                continue  # some transports yield empty keep-alive chunks mid-stream
            except self._store.transient_errors as exc:
                self._chunks = None
                self._reopened += 1
                if self._reopened > STREAM_REOPEN_ATTEMPTS:
                    raise IntakeError(self._store.describe("read", exc)) from None
                log.warning(
                    "%s stream of %s broke at byte %d (%s); re-opening",
                    self._store.service,
                    self._store.url,
                    self.position,
                    type(exc).__name__,
                )
            except (IntakeError, JobCancelled):
                raise
            except Exception as exc:
                raise IntakeError(self._store.describe("read", exc)) from None

    def readinto(self, buffer: Any) -> int:  # type: ignore[override]
        if self._cancelled.is_set():
            raise JobCancelled()
        view = memoryview(buffer).cast("B")
        if not self._pending.nbytes:
            if self.position >= self.size:
                return 0
            chunk = self._next_chunk()
            if not chunk:
                if self.position < self.size:
                    raise IntakeError(
                        f"{self._store.service}: {self._store.url} ended at byte {self.position} of "
                        f"{self.size}"
                    )
                return 0
            self._pending = memoryview(chunk)
        count = min(view.nbytes, self._pending.nbytes)
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self.position += count
        return count

    def close(self) -> None:
        closer = getattr(self._chunks, "close", None)
        if closer is not None:
            closer()
        self._chunks = None
        super().close()


class RangedFile(io.RawIOBase):
    """A seekable read-only file over one object: each read is a ranged GET (with read-ahead)."""

    def __init__(self, store: ObjectStore, cancelled: Any, read_ahead: int = RANGED_READ_AHEAD) -> None:
        self._store = store
        self._cancelled = cancelled
        try:
            self.size, self._version = store.stat()
        except Exception as exc:
            raise IntakeError(store.describe("read", exc)) from None
        self._position = 0
        self._read_ahead = read_ahead
        self._cache_start = 0
        self._cache = b""
        self.bytes_fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def _fetch(self, start: int, end: int) -> bytes:
        if self._cancelled.is_set():
            raise JobCancelled()
        for attempt in range(1, STREAM_REOPEN_ATTEMPTS + 2):
            try:
                data = b"".join(self._store.open_range(start, end, self._version))
                self.bytes_fetched += len(data)
                return data
            except self._store.transient_errors as exc:
                if attempt > STREAM_REOPEN_ATTEMPTS:
                    raise IntakeError(self._store.describe("read", exc)) from None
            except (IntakeError, JobCancelled):
                raise
            except Exception as exc:
                raise IntakeError(self._store.describe("read", exc)) from None
        raise AssertionError("unreachable")

    def readinto(self, buffer: Any) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        wanted = min(view.nbytes, self.size - self._position)
        if wanted <= 0:
            return 0
        cache_end = self._cache_start + len(self._cache)
        if not (self._cache_start <= self._position and self._position + wanted <= cache_end):
            if wanted >= self._read_ahead:
                data = self._fetch(self._position, self._position + wanted)
                view[: len(data)] = data
                self._position += len(data)
                return len(data)
            end = min(self.size, self._position + max(wanted, self._read_ahead))
            self._cache = self._fetch(self._position, end)
            self._cache_start = self._position
        offset = self._position - self._cache_start
        data = self._cache[offset : offset + wanted]
        view[: len(data)] = data
        self._position += len(data)
        return len(data)


def strings_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with every column as strings and nulls as empty cells (what a CSV intake gives)."""
    columns = []
    for column in batch.columns:
        if not pa.types.is_string(column.type):
            if pa.types.is_large_string(column.type) or pa.types.is_dictionary(column.type):
                column = pc.cast(column, pa.string())
            elif pa.types.is_floating(column.type):
                # repr keeps every digit (the default cast does too, but not for float32 quirks).
                column = pc.cast(pc.cast(column, pa.float64()), pa.string())
            else:
                try:
                    column = pc.cast(column, pa.string())
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    column = pa.array(
                        [None if value is None else str(value) for value in column.to_pylist()], pa.string()
                    )
        columns.append(pc.fill_null(column, ""))
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


class ObjectStoreIntake(IntakeAdapter):
    """Intake of one object in CSV (``csvSettings``) or parquet format."""

    #: The credential type this adapter reads (``s3``, ``azure``, ``gcp``).
    credential_type: ClassVar[str]

    def __init__(self, settings: Any, context: AdapterContext) -> None:
        super().__init__(settings, context)
        self._stream: ObjectStream | None = None
        self._file: RangedFile | None = None
        secrets = load_secrets(context.services, settings.credential_id, self.credential_type)
        try:
            self.store = self.open_store(settings, secrets)
        except (MissingExtraError, ValueError) as exc:
            raise IntakeError(scrub(str(exc), [secrets])) from None

    @classmethod
    def check(cls, settings: Any, services: Services) -> None:
        check_url(cls.parse_url, settings.url, "intakeSettings")
        check_credential(services, settings.credential_id, cls.credential_type, "intakeSettings")

    @staticmethod
    @abstractmethod
    def parse_url(url: str) -> Any:
        """Split the object's URL into its parts; raise :class:`ValueError` naming the right form."""

    @classmethod
    @abstractmethod
    def open_store(cls, settings: Any, secrets: Mapping[str, Any]) -> ObjectStore:
        """The object named by ``settings.url``, reachable with ``secrets``."""

    def batches(self) -> Iterator[pa.RecordBatch]:
        if (self.settings.format or "csv") == "parquet":
            yield from self._parquet_batches()
            return
        self._stream = ObjectStream(self.store, self.context.cancelled)
        block_size = self.context.services.settings.read_block_bytes
        yield from iter_csv_batches(self._stream, self.context.csv, block_size)  # type: ignore[arg-type]

    def _parquet_batches(self) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        self._file = RangedFile(self.store, self.context.cancelled)
        try:
            parquet = pq.ParquetFile(self._file, pre_buffer=False)  # type: ignore[arg-type]
        except (pa.ArrowInvalid, OSError) as exc:
            raise IntakeError(
                f"{self.store.url} is not a readable parquet file ({exc}); set format to 'csv' if it is CSV"
            ) from None
        try:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False):
                if batch.num_rows:
                    yield strings_batch(batch)
        except (pa.ArrowInvalid, OSError) as exc:
            raise IntakeError(f"{self.store.url}: cannot read parquet data: {exc}") from None

    @property
    def bytes_read(self) -> int:
        if self._stream is not None:
            return self._stream.position
        if self._file is not None:
            return self._file.bytes_fetched
        return 0

    @property
    def bytes_total(self) -> int | None:
        if self._stream is not None:
            return self._stream.size
        if self._file is not None:
            return self._file.size
        return None

    def close(self) -> None:
        for handle in (self._stream, self._file):
            if handle is not None:
                handle.close()


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


class PartUploader(io.RawIOBase):
    """A write-only binary sink that uploads every full part as soon as it fills.

    Nothing is uploaded until ``part_size`` bytes are buffered; an object smaller than one part is
    written with one request at :meth:`finish`. Memory holds at most one part plus one write.
    """

    def __init__(self, store: ObjectStore, part_size: int = DEFAULT_PART_SIZE) -> None:
        self._store = store
        self._part_size = part_size
        self._buffer = bytearray()
        self._parts = 0
        self._sent = 0
        self._started = False
        self._cancelled = False
        self.finished = False
        self.bytes_written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        if self._cancelled:
            return view.nbytes  # e.g. a writer flushing on garbage collection after an abort
        self._buffer += view
        self.bytes_written += view.nbytes
        while len(self._buffer) >= self._part_size:
            part = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            self._send(part)
        return view.nbytes

    def _send(self, part: bytes) -> None:
        try:
            if not self._started:
                self._store.begin_upload()
                self._started = True
            self._parts += 1
            self._store.upload_part(self._parts, part, self._sent)
        except (OutputError, JobCancelled):
            raise
        except Exception as exc:
            raise OutputError(self._store.describe("write", exc)) from None
        self._sent += len(part)

    def finish(self) -> None:
        """Send what is buffered and make the object visible."""
        remaining = bytes(self._buffer)
        self._buffer.clear()
        try:
            if self._started:
                self._store.complete_upload(remaining, self._sent)
            else:
                self._store.put_small(remaining)
        except OutputError:
            raise
        except Exception as exc:
            raise OutputError(self._store.describe("write", exc)) from None
        self.finished = True

    def cancel(self) -> None:
        """Drop the buffer and cancel the upload, if one started; later writes are discarded."""
        self._cancelled = True
        self._buffer.clear()
        if self._started and not self.finished:
            try:
                self._store.abort_upload()
            except Exception as exc:
                log.warning("%s", self._store.describe("cancel the upload of", exc))


def _unify(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast ``table`` to ``schema`` column by column (parquet needs one schema for the file)."""
    if table.schema.equals(schema):
        return table
    columns = []
    for field in schema:
        column = table.column(field.name)
        if not column.type.equals(field.type):
            try:
                column = pc.cast(column, field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise OutputError(
                    f"column {field.name!r} changed type from {field.type} to {column.type} between "
                    "chunks; write CSV output instead"
                ) from None
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _first_schema(table: pa.Table) -> pa.Schema:
    """The file schema from the first chunk; all-null columns become strings (typed later)."""
    return pa.schema([pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema])


class ObjectStoreOutput(OutputAdapter):
    """Output into one object, CSV (``csvSettings``) or parquet, visible only after :meth:`commit`."""

    credential_type: ClassVar[str]
    part_size: ClassVar[int] = DEFAULT_PART_SIZE

    def __init__(self, settings: Any, context: AdapterContext) -> None:
        super().__init__(settings, context)
        try:
            secrets = load_secrets(context.services, settings.credential_id, self.credential_type)
            self.store = self.open_store(settings, secrets)
        except (MissingExtraError, ValueError, IntakeError) as exc:
            raise OutputError(str(exc)) from None
        self._sink = PartUploader(self.store, self.part_size)
        self._parquet = (settings.format or "csv") == "parquet"
        self._csv_writer = None if self._parquet else CsvTableWriter(self._sink, context.csv)  # type: ignore[arg-type]
        self._parquet_writer: Any = None
        self._schema: pa.Schema | None = None

    @classmethod
    def check(cls, settings: Any, services: Services) -> None:
        check_settings(settings, "outputSettings")
        check_url(cls.parse_url, settings.url, "outputSettings")
        check_credential(services, settings.credential_id, cls.credential_type, "outputSettings")

    @staticmethod
    @abstractmethod
    def parse_url(url: str) -> Any:
        """Split the object's URL into its parts; raise :class:`ValueError` naming the right form."""

    @classmethod
    @abstractmethod
    def open_store(cls, settings: Any, secrets: Mapping[str, Any]) -> ObjectStore:
        """The object named by ``settings.url``, writable with ``secrets``."""

    def write(self, table: pa.Table) -> None:
        if self._csv_writer is not None:
            self._csv_writer.write(table)
            return
        import pyarrow.parquet as pq

        if self._parquet_writer is None:
            self._schema = _first_schema(table)
            self._parquet_writer = pq.ParquetWriter(self._sink, self._schema)  # type: ignore[arg-type]
        assert self._schema is not None
        self._parquet_writer.write_table(_unify(table, self._schema))

    def commit(self) -> None:
        if self._parquet:
            if self._parquet_writer is None:
                raise OutputError("no rows were scored, so there is no parquet schema to write")
            self._parquet_writer.close()
        self._sink.finish()

    def abort(self) -> None:
        self._sink.cancel()
        if self._parquet_writer is not None:
            try:
                self._parquet_writer.close()  # its footer goes nowhere: the sink is cancelled
            except Exception:
                log.debug("Closing the parquet writer of an aborted job failed", exc_info=True)

    @property
    def bytes_written(self) -> int:
        return self._sink.bytes_written
