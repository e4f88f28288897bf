"""Score a BigQuery table and write the scores to a BigQuery table."""

from __future__ import annotations

from typing import Any

from airflow_batchpred.hooks.data_stores import map_gcp_connection
from airflow_batchpred.operators.batch_prediction import DataRobotBatchPredictionOperator


class DataRobotBigQueryBatchPredictionOperator(DataRobotBatchPredictionOperator):
    """Score ``source_dataset.source_table`` into ``target_dataset.target_table`` (the seed's BigQuery
    example; ``include_prediction_status`` and ``passthrough_columns`` work as there).

    The GCP credential is an Airflow ``google_cloud_platform`` connection (``gcp_conn_id``: its
    service-account key, mapped at run time to a DataRobot ``gcp`` credential named after it; an
    anonymous connection maps to no credential, for emulators) or ``credential_id``. DataRobot
    stages the data in the GCS ``bucket``.

    :param source_dataset: dataset of the table to score (``project.dataset`` accepted).
    :param source_table: the table to score.
    :param target_table: the table to write the scores to (created if missing).
    :param target_dataset: its dataset (default: ``source_dataset``).
    :param bucket: the GCS bucket DataRobot uses for export and load.
    :param gcp_conn_id: Airflow ``google_cloud_platform`` connection holding the key.
    :param credential_id: a DataRobot ``gcp`` credential id (instead of ``gcp_conn_id``).

    Every other argument is that of :class:`DataRobotBatchPredictionOperator`.
    """

    template_fields = (
        *DataRobotBatchPredictionOperator.template_fields,
        "source_dataset",
        "source_table",
        "target_dataset",
        "target_table",
        "bucket",
        "gcp_conn_id",
        "credential_id",
    )

    def __init__(
        self,
        *,
        source_dataset: str,
        source_table: str,
        target_table: str,
        bucket: str,
        target_dataset: str | None = None,
        gcp_conn_id: str | None = None,
        credential_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_dataset = source_dataset
        self.source_table = source_table
        self.target_dataset = target_dataset
        self.target_table = target_table
        self.bucket = bucket
        self.gcp_conn_id = gcp_conn_id
        self.credential_id = credential_id
        self._mapped_credential: tuple[str | None] | None = None

    def _credential(self) -> dict[str, Any]:
        if self.credential_id:
            return {"credential_id": self.credential_id}
        if not self.gcp_conn_id:
            return {}
        if self._mapped_credential is None:
            self._mapped_credential = (map_gcp_connection(self.hook, self.gcp_conn_id),)
        credential_id = self._mapped_credential[0]
        return {"credential_id": credential_id} if credential_id else {}

    def default_intake_settings(self) -> dict[str, Any]:
        return {
            "type": "bigquery",
            "dataset": self.source_dataset,
            "table": self.source_table,
            "bucket": self.bucket,
            **self._credential(),
        }

    def default_output_settings(self) -> dict[str, Any]:
        return {
            "type": "bigquery",
            "dataset": self.target_dataset or self.source_dataset,
            "table": self.target_table,
            "bucket": self.bucket,
            **self._credential(),
        }
