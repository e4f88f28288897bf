"""``localFile`` intake (data PUT to ``csvUpload/``) and output (read from ``download/``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from airflow_batchpred.server.adapters.base import (
    AdapterContext,
    IntakeAdapter,
    IntakeError,
    OutputAdapter,
    register_intake,
    register_output,
)
from airflow_batchpred.server.csv_io import CsvTableWriter, iter_csv_batches
from airflow_batchpred.server.jobs.uploads import PartsReader, SpoolReader

RESULT_FILE = "result.csv"
PARTIAL_SUFFIX = ".partial"


def result_paths(job_dir: Path) -> tuple[Path, Path]:
    """``(file being written, file once committed)`` of a job's local-file output."""
    final = job_dir / RESULT_FILE
    return final.with_name(RESULT_FILE + PARTIAL_SUFFIX), final


@register_intake
class LocalFileIntake(IntakeAdapter):
    """Reads what was uploaded: one growing spool file, or the finalized multipart parts."""

    type = "localFile"

    def __init__(self, settings: Any, context: AdapterContext) -> None:
        super().__init__(settings, context)
        state = context.services.uploads.get(context.job_id)
        if state is None:
            raise IntakeError("no data was uploaded for this job")
        self._total: int | None = None
        self._reader: SpoolReader | PartsReader
        if state.spool is not None:
            self._spool = state.spool
            self._reader = state.spool.reader(context.cancelled)
        else:
            self._spool = None
            self._reader = PartsReader(state.part_paths(), context.cancelled)
            self._total = self._reader.bytes_total

    def batches(self) -> Iterator[pa.RecordBatch]:
        block_size = self.context.services.settings.read_block_bytes
        yield from iter_csv_batches(self._reader, self.context.csv, block_size)  # type: ignore[arg-type]

    @property
    def bytes_read(self) -> int:
        return self._reader.bytes_read

    @property
    def bytes_total(self) -> int | None:
        if self._spool is not None:
            return self._spool.size if self._spool.finished else self._spool.expected_size
        return self._total

    def close(self) -> None:
        """Close the reader and delete the uploaded data: once read it is not needed again."""
        self._reader.close()
        state = self.context.services.uploads.get(self.context.job_id)
        if state is not None:
            if state.spool is not None:
                state.spool.path.unlink(missing_ok=True)
            shutil.rmtree(state.parts_dir, ignore_errors=True)
        self.context.services.uploads.discard(self.context.job_id)


@register_output
class LocalFileOutput(OutputAdapter):
    """Writes the result CSV in the job directory; the download route streams it as it grows."""

    type = "localFile"

    def __init__(self, settings: Any, context: AdapterContext) -> None:
        super().__init__(settings, context)
        self._partial, self._final = result_paths(context.job_dir)
        self._sink: BinaryIO | None = open(self._partial, "wb")  # noqa: SIM115 - closed in commit/abort
        self._writer = CsvTableWriter(self._sink, context.csv)

    def write(self, table: pa.Table) -> None:
        assert self._sink is not None
        self._writer.write(table)
        self._sink.flush()

    def commit(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        os.replace(self._partial, self._final)

    def abort(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        self._partial.unlink(missing_ok=True)

    @property
    def bytes_written(self) -> int:
        return self._writer.bytes_written
