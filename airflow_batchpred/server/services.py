"""The server's shared services, built once by :func:`airflow_batchpred.server.app.create_app`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_batchpred.server.config import ServerSettings
from airflow_batchpred.server.jobs.book import JobBook
from airflow_batchpred.server.jobs.uploads import UploadRegistry
from airflow_batchpred.server.store import Store

if TYPE_CHECKING:
    from airflow_batchpred.server.faults import FaultInjector
    from airflow_batchpred.server.jobs.runner import JobRunner
    from airflow_batchpred.server.models import ModelRegistry


@dataclass
class Services:
    """Everything routes, the runner and adapters share."""

    settings: ServerSettings
    store: Store
    models: ModelRegistry
    book: JobBook
    uploads: UploadRegistry
    runner: JobRunner
    faults: FaultInjector

    def job_dir(self, job_id: str) -> Path:
        """The job's private directory (ids are validated as 24 hex characters before use)."""
        path = self.settings.data_dir / "jobs" / job_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def dataset_dir(self, dataset_id: str) -> Path:
        return self.settings.data_dir / "datasets" / dataset_id
