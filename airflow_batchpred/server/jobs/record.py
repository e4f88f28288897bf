"""The state of one job and its JSON form (section 2.3 of the API notes)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_batchpred.contract import JobStatus
from airflow_batchpred.server.store import parse_iso

LOCAL_FILE = "localFile"
CREATED_BY = {"userId": "000000000000000000000001", "username": "local", "fullName": "Local User"}


@dataclass
class JobRecord:
    """Everything the server knows about a job; persisted as JSON on every change."""

    id: str
    created: str
    spec: dict[str, Any]
    settings: dict[str, Any]
    deployment_id: str
    intake_type: str
    output_type: str
    status: str = JobStatus.INITIALIZING.value
    status_details: str = "Job created, waiting for data"
    started: str | None = None
    finished: str | None = None
    elapsed_seconds: int | None = None
    percentage_completed: float = 0.0
    scored_rows: int = 0
    failed_rows: int = 0
    skipped_rows: int = 0
    intake_size: int | None = None
    output_size: int | None = None
    logs: list[str] = field(default_factory=list)
    hidden: str | None = None
    queued: bool = False
    upload_started: bool = False
    intake_dataset_display_name: str | None = None
    results_deleted: bool = False

    @property
    def job_status(self) -> JobStatus:
        return JobStatus(self.status)

    @property
    def is_terminal(self) -> bool:
        return self.job_status.is_terminal

    @property
    def is_multipart(self) -> bool:
        return bool(self.spec.get("intakeSettings", {}).get("multipart"))

    @property
    def downloadable(self) -> bool:
        return self.output_type == LOCAL_FILE and self.status in (
            JobStatus.RUNNING.value,
            JobStatus.COMPLETED.value,
        )

    def elapsed(self) -> int:
        if self.elapsed_seconds is not None:
            return self.elapsed_seconds
        if self.started is None:
            return 0
        return max(0, int(time.time() - parse_iso(self.started).timestamp()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        known = cls.__dataclass_fields__
        return cls(**{key: value for key, value in data.items() if key in known})

    def to_json(self, api_base: str, queue_position: int | None) -> dict[str, Any]:
        """The job JSON.

        :param api_base: absolute API base ending in ``/api/v2`` (no trailing slash).
        :param queue_position: jobs ahead of this one, when it waits in the queue.
        """
        self_link = f"{api_base}/batchPredictions/{self.id}/"
        links: dict[str, str] = {"self": self_link}
        if self.intake_type == LOCAL_FILE:
            links["csvUpload"] = f"{self_link}csvUpload/"
        if self.downloadable:
            links["download"] = f"{self_link}download/"
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "statusDetails": self.status_details or self.status,
            "percentageCompleted": float(self.percentage_completed),
            "elapsedTimeSec": self.elapsed(),
            "scoredRows": self.scored_rows,
            "failedRows": self.failed_rows,
            "skippedRows": self.skipped_rows,
            "jobIntakeSize": self.intake_size,
            "jobOutputSize": self.output_size,
            "logs": list(self.logs),
            "links": links,
            "jobSpec": self.spec,
            "created": self.created,
            "createdBy": CREATED_BY,
            "hidden": self.hidden,
            "queued": self.queued,
            "queuePosition": queue_position,
            "source": "api",
            "intakeDatasetDisplayName": self.intake_dataset_display_name,
            "resultsDeleted": self.results_deleted,
        }
        return body
