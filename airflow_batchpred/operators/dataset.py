"""Score an AI Catalog dataset: into a local file (the seed's AI Catalog example) or any output."""

from __future__ import annotations

import os
from typing import Any

from airflow_batchpred.contract import Route
from airflow_batchpred.exceptions import DataRobotApiError, DataRobotSettingsError
from airflow_batchpred.operators.batch_prediction import DataRobotBatchPredictionOperator


class DataRobotDatasetBatchPredictionOperator(DataRobotBatchPredictionOperator):
    """Score the AI Catalog dataset ``dataset_id`` with a deployment.

    Without ``output_settings`` the scores are written to ``output_file`` (local file output, like
    the seed's AI Catalog → CSV example); with ``output_settings`` they go to any output (S3,
    JDBC, Snowflake, BigQuery ...), and ``output_file`` is not used.

    Like the official client, the operator pins the dataset version before submitting: without
    ``dataset_version_id`` it reads the dataset (``GET datasets/{id}/``) and scores its latest
    version at that moment, so a version added while the job queues does not change what is
    scored. An unknown dataset fails the task before any job is created.

    :param dataset_id: the catalog dataset to score.
    :param dataset_version_id: a specific version (default: the latest, pinned at submission).
    :param output_file: where to write the scored CSV when the output is a local file.

    Every other argument is that of :class:`DataRobotBatchPredictionOperator`.
    """

    template_fields = (*DataRobotBatchPredictionOperator.template_fields, "dataset_id", "dataset_version_id")

    def __init__(
        self,
        *,
        dataset_id: str,
        dataset_version_id: str | None = None,
        output_file: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(output_file=output_file, **kwargs)
        self.dataset_id = dataset_id
        self.dataset_version_id = dataset_version_id
        self._pinned_version: str | None = None

    def _version(self) -> str:
        if self.dataset_version_id:
            return self.dataset_version_id
        if self._pinned_version is None:
            try:
                dataset = self.hook.request(
                    "GET", f"{Route.DATASETS}{self.dataset_id}/", what=f"Get dataset {self.dataset_id}"
                ).json()
            except DataRobotApiError as exc:
                if exc.http_status_code == 404:
                    raise DataRobotSettingsError(
                        [("dataset_id", f"dataset {self.dataset_id} does not exist in the AI Catalog")],
                        task_id=self.task_id,
                    ) from None
                raise
            self._pinned_version = str(dataset["versionId"])
            self.log.info(
                "Scoring dataset %s (%s), latest version %s",
                self.dataset_id,
                dataset.get("name"),
                self._pinned_version,
            )
        return self._pinned_version

    def default_intake_settings(self) -> dict[str, Any]:
        return {"type": "dataset", "dataset_id": self.dataset_id, "dataset_version_id": self._version()}
