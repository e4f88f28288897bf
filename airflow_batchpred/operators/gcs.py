"""Score objects in Google Cloud Storage with a DataRobot deployment."""

from __future__ import annotations

from typing import Any

from airflow_batchpred.hooks.cloud_credentials import GOOGLE_CLOUD
from airflow_batchpred.operators._object_storage import ObjectStorageBatchPredictionOperator


class DataRobotGCSBatchPredictionOperator(ObjectStorageBatchPredictionOperator):
    """Score ``source_url`` (``gs://bucket/object``) into ``destination_url``.

    The credential is the DataRobot ``gcp`` credential ``credential_id``, or the one mirroring the
    Airflow ``google_cloud_platform`` connection ``gcp_conn_id`` (its service-account key, from
    ``keyfile_dict`` or ``key_path``).

    :param source_url: the GCS object to score.
    :param destination_url: the GCS object to write (appears only when the job completes).
    :param gcp_conn_id: an Airflow ``google_cloud_platform`` connection to map to a DataRobot
        ``gcp`` credential.
    :param credential_id: a DataRobot ``gcp`` credential id instead.
    :param credential: the official client's ``credential=`` form (id, dict or object).
    :param format: ``"csv"`` (default) or ``"parquet"``.
    :param output_format: the destination's format when it differs from ``format``.

    Either side may be local instead (``input_file`` / ``output_file``). Every other argument is
    that of :class:`~airflow_batchpred.operators.batch_prediction.DataRobotBatchPredictionOperator`.
    """

    adapter_type = "gcp"
    connection_type = GOOGLE_CLOUD
    template_fields = (*ObjectStorageBatchPredictionOperator.template_fields, "gcp_conn_id")

    def __init__(self, *, gcp_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gcp_conn_id = gcp_conn_id

    @property
    def connection_id(self) -> str | None:
        return self.gcp_conn_id
