"""``dataset`` intake: scores a dataset stored in the local AI Catalog (``datasets/``).

Catalog files are stored as uploaded; they are read with the default CSV settings (``,``, ``"``,
UTF-8), like DataRobot reads ingested catalog data. ``csvSettings`` of the job still shapes the
output.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from airflow_batchpred.contract import CsvSettings
from airflow_batchpred.server.adapters.base import AdapterContext, IntakeAdapter, register_intake
from airflow_batchpred.server.csv_io import iter_csv_batches
from airflow_batchpred.server.errors import ApiError
from airflow_batchpred.server.store import DATASET, DATASET_VERSION

if TYPE_CHECKING:
    from airflow_batchpred.server.services import Services


def dataset_file(services: Services, dataset_id: str, version_id: str) -> Path:
    return services.dataset_dir(dataset_id) / f"{version_id}.csv"


def resolve_version(services: Services, dataset_id: str, version_id: str | None) -> dict[str, Any]:
    """The stored version record; latest version when ``version_id`` is None.

    :raises ApiError: 404 naming the unknown dataset or version.
    """
    dataset = services.store.get(DATASET, dataset_id)
    if dataset is None:
        raise ApiError(404, f"Dataset {dataset_id} does not exist. Create it with POST datasets/fromFile/.")
    version_id = version_id or dataset["versionId"]
    version = services.store.get(DATASET_VERSION, version_id)
    if version is None or version.get("datasetId") != dataset_id:
        raise ApiError(404, f"Dataset {dataset_id} has no version {version_id}.")
    return version


@register_intake
class DatasetIntake(IntakeAdapter):
    """Reads the CSV file of a catalog dataset version."""

    type = "dataset"

    def __init__(self, settings: Any, context: AdapterContext) -> None:
        super().__init__(settings, context)
        version = resolve_version(context.services, settings.dataset_id, settings.dataset_version_id)
        path = dataset_file(context.services, settings.dataset_id, version["versionId"])
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._total = path.stat().st_size

    @classmethod
    def check(cls, settings: Any, services: Services) -> None:
        resolve_version(services, settings.dataset_id, settings.dataset_version_id)

    @classmethod
    def display_name(cls, settings: Any, services: Services) -> str | None:
        return str(resolve_version(services, settings.dataset_id, settings.dataset_version_id)["name"])

    def batches(self) -> Iterator[pa.RecordBatch]:
        yield from iter_csv_batches(
            self._file, CsvSettings(), self.context.services.settings.read_block_bytes
        )

    @property
    def bytes_read(self) -> int:
        return self._file.tell()

    @property
    def bytes_total(self) -> int | None:
        return self._total

    def close(self) -> None:
        self._file.close()
