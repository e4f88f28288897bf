"""Score blobs in Azure Blob Storage with a DataRobot deployment."""

from __future__ import annotations

from typing import Any

from airflow_batchpred.hooks.cloud_credentials import WASB
from airflow_batchpred.operators._object_storage import ObjectStorageBatchPredictionOperator


class DataRobotAzureBatchPredictionOperator(ObjectStorageBatchPredictionOperator):
    """Score the blob at ``source_url`` into the blob at ``destination_url``.

    URLs are blob URLs: ``https://<account>.blob.core.windows.net/<container>/<blob>`` (or the
    path-style form of Azurite and custom endpoints). The credential is the DataRobot ``azure``
    credential ``credential_id``, or the one mirroring the Airflow ``wasb`` connection
    ``wasb_conn_id`` (its connection string, or account name + key).

    :param source_url: the blob to score.
    :param destination_url: the blob to write (appears only when the job completes).
    :param wasb_conn_id: an Airflow ``wasb`` connection to map to a DataRobot ``azure`` credential.
    :param credential_id: a DataRobot ``azure`` credential id instead.
    :param credential: the official client's ``credential=`` form (id, dict or object).
    :param format: ``"csv"`` (default) or ``"parquet"``.
    :param output_format: the destination's format when it differs from ``format``.

    Either side may be local instead (``input_file`` / ``output_file``). Every other argument is
    that of :class:`~airflow_batchpred.operators.batch_prediction.DataRobotBatchPredictionOperator`.
    """

    adapter_type = "azure"
    connection_type = WASB
    template_fields = (*ObjectStorageBatchPredictionOperator.template_fields, "wasb_conn_id")

    def __init__(self, *, wasb_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wasb_conn_id = wasb_conn_id

    @property
    def connection_id(self) -> str | None:
        return self.wasb_conn_id
