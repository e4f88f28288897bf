"""The job runner: a bounded pool of worker threads that score queued jobs chunk by chunk.

A job is queued when its data can be read (the upload started, multipart parts were finalized, or
at creation for non-local intakes). Queued jobs stay INITIALIZING and report ``queuePosition``.
A worker reads the intake as record batches, regroups them into chunks of exactly
``chunk_rows`` rows (fewer with explanations, which are slower), scores each chunk, shapes the
output columns and hands them to the output adapter, updating the job after every chunk. The
abort flag is checked between chunks, so a DELETE stops a job within one chunk's time.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from airflow_batchpred.contract import JobSettings, JobStatus, parse_job_settings
from airflow_batchpred.server.adapters import INTAKE_ADAPTERS, OUTPUT_ADAPTERS
from airflow_batchpred.server.adapters.base import (
    AdapterContext,
    IntakeAdapter,
    IntakeError,
    JobCancelled,
    OutputAdapter,
    OutputError,
)
from airflow_batchpred.server.csv_io import CsvFormatError
from airflow_batchpred.server.errors import ApiError
from airflow_batchpred.server.jobs.record import JobRecord
from airflow_batchpred.server.jobs.spec import remapping_dict
from airflow_batchpred.server.models import ModelError
from airflow_batchpred.server.store import iso, utc_now

if TYPE_CHECKING:
    from airflow_batchpred.server.models import ScoredBatch, ScoreOptions
    from airflow_batchpred.server.services import Services

log = logging.getLogger(__name__)

PREDICTION_STATUS_COLUMN = "prediction_status"


class JobAborted(Exception):
    """Stop the job and end it ABORTED with this message."""


class JobRunner:
    """Queue and worker threads.

    :param services: shared services (book, models, settings...).
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        self._queue: deque[str] = deque()
        self._wakeup = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"batchpred-worker-{n}", daemon=True)
            for n in range(max(1, services.settings.max_concurrent_jobs))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify_all()

    def submit(self, job_id: str) -> None:
        """Queue a job for scoring (idempotent; a job that already ended is left alone)."""
        record = self._services.book.get(job_id)
        if record is None or record.is_terminal:
            return
        self._services.book.update(job_id, lambda target: setattr(target, "queued", True))
        with self._wakeup:
            if job_id not in self._queue:
                self._queue.append(job_id)
                self._wakeup.notify()

    def queue_position(self, job_id: str) -> int | None:
        with self._wakeup:
            try:
                return self._queue.index(job_id)
            except ValueError:
                return None

    def _work(self) -> None:
        while True:
            with self._wakeup:
                while not self._queue and not self._stopping:
                    self._wakeup.wait()
                if self._stopping:
                    return
                job_id = self._queue.popleft()
            try:
                JobExecution(self._services, job_id).run()
            except Exception:  # a bug must not kill the worker thread
                log.exception("Job %s crashed the runner", job_id)
                self._services.book.finish(job_id, JobStatus.ABORTED, "Internal error while scoring")


class JobExecution:
    """One run of one job."""

    def __init__(self, services: Services, job_id: str) -> None:
        self.services = services
        self.book = services.book
        self.job_id = job_id
        record = self.book.get(job_id)
        assert record is not None
        self.record: JobRecord = record
        self.settings: JobSettings = parse_job_settings(record.settings, camel=True)
        self.cancelled = self.book.cancel_flag(job_id)
        self.processed_rows = 0

    def run(self) -> None:
        if self.cancelled.is_set() or not self.book.start(self.job_id):
            return
        context = AdapterContext(
            job_id=self.job_id,
            job_dir=self.services.job_dir(self.job_id),
            csv=self.settings.csv,
            services=self.services,
            cancelled=self.cancelled,
        )
        intake: IntakeAdapter | None = None
        output: OutputAdapter | None = None
        try:
            intake = INTAKE_ADAPTERS[self.settings.intake_settings.type](
                self.settings.intake_settings, context
            )
            output = OUTPUT_ADAPTERS[self.settings.output_settings.type](
                self.settings.output_settings, context
            )
            self._score_all(intake, output)
            if self.cancelled.is_set():
                raise JobCancelled()
            output.commit()
            self._record_progress(intake, output, 0, 0)
            done = f"Job done processing at {iso(utc_now())}"
            self.book.finish(self.job_id, JobStatus.COMPLETED, done)
        except JobCancelled:
            self._discard(output)
            self.book.finish(self.job_id, JobStatus.ABORTED, "Job aborted by request")
        except (JobAborted, IntakeError, OutputError, CsvFormatError, ModelError, ApiError) as exc:
            self._discard(output)
            self.book.finish(self.job_id, JobStatus.ABORTED, f"Job aborted: {exc}")
        except Exception as exc:
            log.exception("Job %s failed while scoring", self.job_id)
            self._discard(output)
            self.book.finish(self.job_id, JobStatus.ABORTED, f"Job aborted: internal error: {exc}")
        finally:
            if intake is not None:
                intake.close()

    def _discard(self, output: OutputAdapter | None) -> None:
        if output is None:
            return
        try:
            output.abort()
        except Exception:
            log.exception("Job %s: discarding the output failed", self.job_id)

    def _score_all(self, intake: IntakeAdapter, output: OutputAdapter) -> None:
        scorer = self.services.models.scorer(self.record.deployment_id)
        options = score_options(self.settings)
        chunk_rows = (
            self.services.settings.explanation_chunk_rows
            if options.max_explanations
            else self.services.settings.chunk_rows
        )
        shaper: OutputShaper | None = None

        def checked(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            nonlocal shaper
            for batch in batches:
                if shaper is None:
                    shaper = OutputShaper(self.settings, batch.schema.names)
                    missing = scorer.missing_features(batch.schema.names)
                    if missing:
                        raise JobAborted(
                            "the input lacks feature columns the deployment needs: " + ", ".join(missing)
                        )
                yield batch

        for chunk in _fixed_chunks(checked(intake.batches()), chunk_rows):
            assert shaper is not None
            if self.cancelled.is_set():
                raise JobCancelled()
            scored = scorer.score(chunk, options)
            output.write(shaper.shape(chunk, scored))
            failed = int(np.count_nonzero(scored.failed))
            self._record_progress(intake, output, chunk.num_rows - failed, failed)
            self._check_failure_ratio(scored)

    def _record_progress(
        self, intake: IntakeAdapter, output: OutputAdapter, scored: int, failed: int
    ) -> None:
        self.processed_rows += scored + failed
        total = intake.bytes_total

        def change(record: JobRecord) -> None:
            record.scored_rows += scored
            record.failed_rows += failed
            record.intake_size = intake.bytes_read
            record.output_size = output.bytes_written
            if total:
                record.percentage_completed = min(99.0, round(100.0 * intake.bytes_read / total, 2))
            record.status_details = f"Scoring: {record.scored_rows} rows scored, {record.failed_rows} failed"

        self.book.update(self.job_id, change)

    def _check_failure_ratio(self, scored: ScoredBatch) -> None:
        if self.settings.abort_on_error is False or not self.processed_rows:
            return
        record = self.record
        limit = self.services.settings.max_failed_row_ratio
        if record.failed_rows > limit * self.processed_rows:
            reasons = [
                text for text, bad in zip(scored.status.to_pylist(), scored.failed, strict=True) if bad
            ]
            example = f"; e.g. {reasons[0]}" if reasons else ""
            raise JobAborted(
                f"{record.failed_rows} of {self.processed_rows} rows failed, more than {limit:.0%} "
                f"(abortOnError is true{example})"
            )


def _fixed_chunks(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Chunks of exactly ``rows`` rows (the last one shorter), however the intake's batches fall.

    The intake's batches follow the reader's blocks, which depend on how fast an upload arrived;
    models score a row with slightly different floating-point rounding depending on its place in
    the matrix (BLAS kernels treat the tail rows of a block differently), so chunks that followed
    those blocks made two runs over the same file differ in the last digit. Fixed chunks make the
    output byte-identical from run to run. An input without rows gives one empty chunk, scored
    all the same so that the output gets its header row.
    """
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    empty: pa.RecordBatch | None = None
    yielded = False
    for batch in batches:
        if not batch.num_rows:
            empty = empty or batch
            continue
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= rows:
            merged = pa.Table.from_batches(pending).combine_chunks()
            yield _one_batch(merged.slice(0, rows))
            yielded = True
            rest = merged.slice(rows)
            pending = rest.to_batches() if rest.num_rows else []
            pending_rows = rest.num_rows
    if pending_rows:
        yield _one_batch(pa.Table.from_batches(pending))
    elif not yielded and empty is not None:
        yield empty


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    """``table`` as one record batch (its columns made contiguous)."""
    return table.combine_chunks().to_batches()[0]


def score_options(settings: JobSettings) -> ScoreOptions:
    from airflow_batchpred.server.models import ScoreOptions

    return ScoreOptions(
        max_explanations=settings.max_explanations or 0,
        threshold_high=settings.threshold_high,
        threshold_low=settings.threshold_low,
        prediction_threshold=settings.prediction_threshold,
        include_probabilities=settings.include_probabilities is not False,
        include_probabilities_classes=tuple(settings.include_probabilities_classes or ()),
        explanation_algorithm=settings.explanation_algorithm,
    )


class OutputShaper:
    """Builds output chunks: passthrough columns, predictions, explanations, ``prediction_status``;
    then applies ``columnNamesRemapping`` (a ``None`` target removes the column).

    :raises JobAborted: when passthrough columns are missing from the input.
    """

    def __init__(self, settings: JobSettings, input_names: list[str]) -> None:
        if settings.passthrough_columns_set == "all":
            self.passthrough = list(input_names)
        else:
            self.passthrough = list(settings.passthrough_columns or [])
            missing = [name for name in self.passthrough if name not in input_names]
            if missing:
                raise JobAborted("passthroughColumns not found in the input: " + ", ".join(missing))
        self.include_status = bool(settings.include_prediction_status)
        self.remapping = remapping_dict(settings)

    def shape(self, chunk: pa.RecordBatch, scored: ScoredBatch) -> pa.Table:
        names: list[str] = []
        columns: list[pa.Array | pa.ChunkedArray] = []
        for name in self.passthrough:
            names.append(name)
            columns.append(chunk.column(name))
        names.extend(scored.table.column_names)
        columns.extend(scored.table.columns)
        if self.include_status:
            names.append(PREDICTION_STATUS_COLUMN)
            columns.append(scored.status)
        if self.remapping:
            kept = [
                (self.remapping.get(name, name), column) for name, column in zip(names, columns, strict=True)
            ]
            kept = [(name, column) for name, column in kept if name is not None]
            names = [name for name, _ in kept]  # type: ignore[misc]
            columns = [column for _, column in kept]
        return pa.Table.from_arrays(columns, names=names)
