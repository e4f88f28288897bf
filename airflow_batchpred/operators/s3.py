"""Score objects in Amazon S3 (or an S3-compatible store) with a DataRobot deployment."""

from __future__ import annotations

from typing import Any

from airflow_batchpred.hooks.cloud_credentials import AWS
from airflow_batchpred.operators._object_storage import ObjectStorageBatchPredictionOperator


class DataRobotS3BatchPredictionOperator(ObjectStorageBatchPredictionOperator):
    """Score ``source_url`` (``s3://bucket/key``) into ``destination_url``; the data never passes
    through the Airflow worker.

    The S3 credential is the DataRobot credential ``credential_id``, or the one mirroring the
    Airflow ``aws`` connection ``aws_conn_id`` (created on first use, refreshed on every run; see
    :mod:`airflow_batchpred.hooks.cloud_credentials`). With neither, the job reads and writes
    without credentials (public buckets).

    :param source_url: the S3 object to score.
    :param destination_url: the S3 object to write (appears only when the job completes).
    :param aws_conn_id: an Airflow ``aws`` connection to map to a DataRobot ``s3`` credential.
    :param credential_id: a DataRobot ``s3`` credential id instead.
    :param credential: the official client's ``credential=`` form (id, dict or object).
    :param endpoint_url: an S3-compatible endpoint; default: the ``aws_conn_id`` connection's
        ``endpoint_url`` extra, if any.
    :param format: ``"csv"`` (default) or ``"parquet"``.
    :param output_format: the destination's format when it differs from ``format``.

    Either side may be local instead (``input_file`` / ``output_file``). Every other argument is
    that of :class:`~airflow_batchpred.operators.batch_prediction.DataRobotBatchPredictionOperator`.
    """

    adapter_type = "s3"
    connection_type = AWS
    template_fields = (*ObjectStorageBatchPredictionOperator.template_fields, "aws_conn_id", "endpoint_url")

    def __init__(
        self,
        *,
        aws_conn_id: str | None = None,
        endpoint_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.endpoint_url = endpoint_url

    @property
    def connection_id(self) -> str | None:
        return self.aws_conn_id

    def cloud_settings(self, url: str, fmt: str) -> dict[str, Any]:
        settings = super().cloud_settings(url, fmt)
        if self.endpoint_url:
            settings["endpoint_url"] = self.endpoint_url
        return settings
