"""The job book: every job in memory for fast reads, written through to SQLite on every change.

All state transitions go through here so that the first terminal state wins (an abort racing a
completion cannot flip a finished job) and every change is persisted before anyone can observe it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from airflow_batchpred.contract import JobStatus
from airflow_batchpred.server.jobs.record import JobRecord
from airflow_batchpred.server.store import JOB, Store, iso, parse_iso, utc_now

log = logging.getLogger(__name__)

RESTART_DETAILS = "The server restarted while this job was {status}; its progress was lost. Resubmit the job."


class JobBook:
    """Jobs by id, with abort flags and persistence.

    :param store: the durable store; jobs are loaded from it at construction.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.RLock()
        self._jobs: dict[str, JobRecord] = {}
        self._cancel_flags: dict[str, threading.Event] = {}
        for data in store.list(JOB):
            record = JobRecord.from_dict(data)
            self._jobs[record.id] = record

    def fail_interrupted_jobs(self) -> list[str]:
        """Mark jobs a previous process left INITIALIZING/RUNNING as FAILED; return their ids."""
        interrupted = []
        with self._lock:
            for record in self._jobs.values():
                if not record.is_terminal:
                    status = record.status
                    self._finish(record, JobStatus.FAILED, RESTART_DETAILS.format(status=status))
                    interrupted.append(record.id)
        return interrupted

    # -- reads ---------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        return self._jobs.get(job_id)

    def all(self) -> list[JobRecord]:
        with self._lock:
            return list(self._jobs.values())

    def cancel_flag(self, job_id: str) -> threading.Event:
        with self._lock:
            flag = self._cancel_flags.get(job_id)
            if flag is None:
                flag = self._cancel_flags[job_id] = threading.Event()
            return flag

    # -- writes --------------------------------------------------------------------------------

    def add(self, record: JobRecord) -> None:
        with self._lock:
            self._jobs[record.id] = record
            self._persist(record)

    def update(self, job_id: str, change: Callable[[JobRecord], Any]) -> JobRecord:
        """Apply ``change`` to the record under the lock and persist it."""
        with self._lock:
            record = self._jobs[job_id]
            change(record)
            self._persist(record)
            return record

    def log(self, job_id: str, line: str) -> None:
        self.update(job_id, lambda record: record.logs.append(line))

    def start(self, job_id: str) -> bool:
        """INITIALIZING → RUNNING; ``False`` when the job already ended (e.g. aborted while queued)."""
        with self._lock:
            record = self._jobs[job_id]
            if record.status != JobStatus.INITIALIZING.value:
                return False
            now = utc_now()
            record.status = JobStatus.RUNNING.value
            record.started = iso(now)
            record.queued = False
            record.status_details = f"Job started processing at {iso(now)}"
            record.logs.append(f"Job started processing at {iso(now)}")
            self._persist(record)
            return True

    def finish(self, job_id: str, status: JobStatus, details: str) -> bool:
        """Move a job to a terminal state; ``False`` if it already was in one (the first wins)."""
        with self._lock:
            record = self._jobs[job_id]
            if record.is_terminal:
                return False
            self._finish(record, status, details)
        if status is not JobStatus.COMPLETED:
            self.cancel_flag(job_id).set()
        return True

    def _finish(self, record: JobRecord, status: JobStatus, details: str) -> None:
        now = utc_now()
        record.elapsed_seconds = (
            max(0, int(now.timestamp() - parse_iso(record.started).timestamp())) if record.started else 0
        )
        record.status = status.value
        record.status_details = details
        record.finished = iso(now)
        record.queued = False
        if status is JobStatus.COMPLETED:
            record.percentage_completed = 100.0
        record.logs.append(details)
        self._persist(record)
        log.info("Job %s %s: %s", record.id, status.value, details)

    def _persist(self, record: JobRecord) -> None:
        self._store.put(JOB, record.id, record.to_dict(), created=record.created)
