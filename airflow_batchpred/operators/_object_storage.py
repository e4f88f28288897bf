"""The shape the S3, Azure and GCS operators share: URLs in, URLs out, a connection or a credential."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow_batchpred.exceptions import DataRobotSettingsError
from airflow_batchpred.hooks.cloud_credentials import connection_key_for, credential_id_of
from airflow_batchpred.operators.batch_prediction import DataRobotBatchPredictionOperator


class ObjectStorageBatchPredictionOperator(DataRobotBatchPredictionOperator):
    """Score ``source_url`` into ``destination_url`` of one cloud store (a thin base operator).

    Either side may instead be local: leave ``source_url`` unset and give ``input_file``, or leave
    ``destination_url`` unset and give ``output_file`` (S3 → local file, local file → GCS ...).
    Explicit ``intake_settings``/``output_settings`` win over the defaults built here.

    :param source_url: the object to score.
    :param destination_url: the object to write; it appears only if the job completes.
    :param credential_id: a DataRobot credential id to use on both sides.
    :param credential: the official client's ``credential=`` form: an id, a dict with
        ``credential_id``/``credentialId``, or an object with a ``credential_id`` attribute.
    :param format: ``"csv"`` (default) or ``"parquet"``, for both objects.
    :param output_format: the destination's format when it differs from ``format``.
    """

    #: The wire ``type`` of the adapter (``s3``, ``azure``, ``gcp``).
    adapter_type: ClassVar[str]
    #: The Airflow connection type mapped to a credential (``aws``, ``wasb``, ``google_cloud_platform``).
    connection_type: ClassVar[str]

    template_fields = (
        *DataRobotBatchPredictionOperator.template_fields,
        "source_url",
        "destination_url",
        "credential_id",
        "format",
        "output_format",
    )

    def __init__(
        self,
        *,
        source_url: str | None = None,
        destination_url: str | None = None,
        credential_id: str | None = None,
        credential: Any = None,
        format: str = "csv",
        output_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if credential is not None:
            if credential_id:
                raise ValueError(f"{self.task_id}: give credential_id or credential, not both")
            credential_id = credential_id_of(credential)
        self.source_url = source_url
        self.destination_url = destination_url
        self.credential_id = credential_id
        self.format = format
        self.output_format = output_format

    @property
    def connection_id(self) -> str | None:
        """The (rendered) Airflow connection to map; subclasses return their ``*_conn_id``."""
        return None

    def cloud_settings(self, url: str, fmt: str) -> dict[str, Any]:
        """Settings of one side: type, url, format, and the credential (or the connection to map)."""
        settings: dict[str, Any] = {"type": self.adapter_type, "url": url, "format": fmt}
        conn_id = self.connection_id
        if self.credential_id and conn_id:
            key = connection_key_for(self.connection_type)
            raise DataRobotSettingsError(
                [(key, f"give {key} or credential_id, not both")], task_id=self.task_id
            )
        if self.credential_id:
            settings["credential_id"] = self.credential_id
        elif conn_id:
            settings[connection_key_for(self.connection_type)] = conn_id
        return settings

    def default_intake_settings(self) -> dict[str, Any]:
        if self.source_url:
            return self.cloud_settings(self.source_url, self.format)
        return super().default_intake_settings()

    def default_output_settings(self) -> dict[str, Any]:
        if self.destination_url:
            return self.cloud_settings(self.destination_url, self.output_format or self.format)
        return super().default_output_settings()
