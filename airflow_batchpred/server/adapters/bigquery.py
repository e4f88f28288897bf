"""``bigquery`` intake and output through ``google-cloud-bigquery``.

**Credentials and project.** ``credentialId`` names a ``gcp`` credential (a service-account key);
its ``project_id`` is the project of ``dataset``. ``dataset`` may also be written
``project.dataset``. When the server runs with ``BIGQUERY_EMULATOR_HOST`` (a local-server
setting, e.g. ``bqemulator``), the client talks to that emulator with anonymous credentials, and
the project defaults to ``GOOGLE_CLOUD_PROJECT`` when neither the key nor ``dataset`` names one.

**Intake.** DataRobot exports the table to ``gs://<bucket>/`` and reads the files. The local
server reads the table through the BigQuery API (``tabledata.list`` pages as Arrow batches): same
rows, no export; ``bucket`` is accepted but not used.

**Output.** DataRobot writes CSV files to ``gs://<bucket>/`` and runs one load job. The local
server spools the scored rows as one CSV file in the job directory and, when the job succeeds,
runs one load job (``WRITE_APPEND``) from that file through the upload API: a load job is atomic,
so a failed or aborted job adds no row. Columns are matched to the table's by name (missing output
columns are left NULL); a missing table is created from the output columns. ``bucket`` is
accepted but not used (the emulator cannot load from ``gs://``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from airflow_batchpred.server.adapters.base import (
    AdapterContext,
    IntakeAdapter,
    IntakeError,
    OutputAdapter,
    OutputError,
    register_intake,
    register_output,
)
from airflow_batchpred.server.store import CREDENTIAL

log = logging.getLogger(__name__)

EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
RESULT_FILE = "bigquery-output.csv"


def _client_and_table(settings: Any, context: AdapterContext, error: type[Exception]) -> tuple[Any, str]:
    """A BigQuery client and the ``project.dataset.table`` id of the settings."""
    from google.cloud import bigquery

    key: dict[str, Any] = {}
    if settings.credential_id:
        credential = context.services.store.get(CREDENTIAL, settings.credential_id)
        if credential is None:
            raise error(
                f"credential {settings.credential_id} does not exist; create it with POST credentials/"
            )
        if credential.get("credentialType") != "gcp":
            raise error(
                f"credential {settings.credential_id} is of type {credential.get('credentialType')!r}; "
                "BigQuery needs a 'gcp' credential (a service-account key)"
            )
        key = dict(context.services.store.get_secrets(CREDENTIAL, settings.credential_id).get("gcpKey") or {})
    dataset = str(settings.dataset)
    project = key.get("project_id") or os.environ.get(PROJECT_ENV)
    if "." in dataset:
        project, dataset = dataset.split(".", 1)
    if not project:
        raise error(
            "no project for BigQuery dataset "
            f"{settings.dataset!r}: give a gcp credential (its key names the project) or 'project.dataset'"
        )
    emulator = os.environ.get(EMULATOR_ENV)
    if emulator:
        from google.auth.credentials import AnonymousCredentials

        endpoint = emulator if emulator.startswith("http") else f"http://{emulator}"
        client = bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint},
        )
    else:
        if not key:
            raise error("BigQuery needs credentialId: a gcp credential holding a service-account key")
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_info(key)  # type: ignore[no-untyped-call]
        client = bigquery.Client(project=project, credentials=credentials)
    return client, f"{project}.{dataset}.{settings.table}"


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return " ".join(str(message).split())


def _is_google_error(exc: BaseException) -> bool:
    from google.api_core.exceptions import GoogleAPIError

    return isinstance(exc, GoogleAPIError)


@register_intake
class BigQueryIntake(IntakeAdapter):
    """Reads ``dataset.table`` page by page as string record batches."""

    type = "bigquery"

    def __init__(self, settings: Any, context: AdapterContext) -> None:
        super().__init__(settings, context)
        self._client, self._table_id = _client_and_table(settings, context, IntakeError)
        self._bytes = 0

    def batches(self) -> Iterator[pa.RecordBatch]:
        from google.api_core.exceptions import NotFound

        try:
            rows = self._client.list_rows(self._table_id, page_size=10_000)
            for batch in rows.to_arrow_iterable(bqstorage_client=None):
                strings = [pc.cast(column, pa.string()) for column in batch.columns]
                converted = pa.RecordBatch.from_arrays(strings, names=batch.schema.names)
                self._bytes += converted.nbytes
                yield converted
        except NotFound:
            raise IntakeError(f"BigQuery table {self._table_id} does not exist") from None
        except Exception as exc:
            if not _is_google_error(exc):
                raise
            raise IntakeError(f"reading BigQuery table {self._table_id} failed: {_describe(exc)}") from None

    @property
    def bytes_read(self) -> int:
        return self._bytes

    def close(self) -> None:
        self._client.close()


_BIGQUERY_TYPES = {"double": "FLOAT64", "float": "FLOAT64", "int64": "INT64", "bool": "BOOL"}


@register_output
class BigQueryOutput(OutputAdapter):
    """Spools one CSV file; one atomic load job at commit."""

    type = "bigquery"

    def __init__(self, settings: Any, context: AdapterContext) -> None:
        super().__init__(settings, context)
        self._client, self._table_id = _client_and_table(settings, context, OutputError)
        self._path = context.job_dir / RESULT_FILE
        self._sink: BinaryIO | None = None
        self._writer: pa_csv.CSVWriter | None = None
        self._schema: pa.Schema | None = None
        self._columns: list[str] = []
        self._create_schema: list[Any] | None = None
        self._bytes = 0

    def _prepare(self, first: pa.Table) -> None:
        from google.api_core.exceptions import NotFound
        from google.cloud import bigquery

        try:
            table = self._client.get_table(self._table_id)
        except NotFound:
            table = None
        except Exception as exc:
            if not _is_google_error(exc):
                raise
            raise OutputError(f"reading BigQuery table {self._table_id} failed: {_describe(exc)}") from None
        if table is None:
            self._create_schema = [
                bigquery.SchemaField(field.name, _BIGQUERY_TYPES.get(str(field.type), "STRING"))
                for field in first.schema
            ]
            self._columns = list(first.column_names)
        else:
            existing = [field.name for field in table.schema]
            lowered = {name.lower(): name for name in existing}
            missing = [
                name for name in first.column_names if name not in existing and name.lower() not in lowered
            ]
            if missing:
                raise OutputError(
                    f"BigQuery table {self._table_id} has no column(s) {', '.join(missing)} for the scored "
                    f"output (it has: {', '.join(existing)}); add them or use columnNamesRemapping"
                )
            self._columns = existing
        self._sink = open(self._path, "wb")  # noqa: SIM115 - closed in commit/abort

    def _aligned(self, table: pa.Table) -> pa.Table:
        """``table`` with the target's columns, in the target's order (CSV loads are positional)."""
        by_lower = {name.lower(): name for name in table.column_names}
        columns = []
        for name in self._columns:
            source = name if name in table.column_names else by_lower.get(name.lower())
            columns.append(table[source] if source else pa.nulls(table.num_rows, pa.string()))
        return pa.Table.from_arrays(columns, names=self._columns)

    def write(self, table: pa.Table) -> None:
        if self._sink is None:
            self._prepare(table)
        assert self._sink is not None
        aligned = self._aligned(table)
        if self._writer is None:
            self._schema = aligned.schema
            self._writer = pa_csv.CSVWriter(self._sink, self._schema)
        elif aligned.schema != self._schema:
            aligned = aligned.cast(self._schema)
        self._writer.write_table(aligned)
        self._bytes += aligned.nbytes

    def commit(self) -> None:
        from google.cloud import bigquery

        self._close_file()
        if not self._path.exists():
            return
        created = False
        try:
            if self._create_schema is not None:
                self._client.create_table(bigquery.Table(self._table_id, schema=self._create_schema))
                created = True
            config = bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.CSV,
                skip_leading_rows=1,
                write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            )
            with self._path.open("rb") as source:
                self._client.load_table_from_file(source, self._table_id, job_config=config).result()
        except Exception as exc:
            if created:
                self._client.delete_table(self._table_id, not_found_ok=True)
            if not _is_google_error(exc):
                raise
            raise OutputError(
                f"loading the scores into BigQuery table {self._table_id} failed: {_describe(exc)}; "
                "nothing was written"
            ) from None
        finally:
            self._path.unlink(missing_ok=True)
            self._client.close()

    def abort(self) -> None:
        self._close_file()
        self._path.unlink(missing_ok=True)
        self._client.close()

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    @property
    def bytes_written(self) -> int:
        return self._bytes
