"""The Airflow Asset a batch prediction operator writes, when it is known at DAG parse time.

:class:`~airflow_batchpred.operators.batch_prediction.DataRobotBatchPredictionOperator` adds it to
its ``outlets`` by default (``output_asset=False`` turns that off), so a DAG scheduled on the Asset
runs after fresh predictions land. The URI follows the OpenLineage dataset names of
:mod:`airflow_batchpred.utils.openlineage` (``s3://bucket/key``, ``gs://bucket/key``,
``wasbs://container@account.dfs.core.windows.net/blob``, ``file:///abs/path``).

Nothing is looked up here (this runs at parse time): an output given by a template (``{{ ... }}``),
a database table (its host lives in a connection or data store) or a BigQuery table without its
project gets no default Asset; pass ``outlets=[Asset(...)]`` for those.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from airflow_batchpred.utils.openlineage import azure_blob_dataset, split_object_url

if TYPE_CHECKING:
    from airflow_batchpred.operators.batch_prediction import DataRobotBatchPredictionOperator


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, Mapping):
        return any(_templated(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_templated(v) for v in value)
    return not isinstance(value, int | float | bool | type(None))


def object_uri(kind: str, url: str) -> str | None:
    """The Asset URI of an object-storage output (``s3``, ``gcp``, ``azure``)."""
    named = azure_blob_dataset(url) if kind == "azure" else split_object_url(url)
    return f"{named[0]}/{named[1]}" if named else None


def output_asset_uri(operator: DataRobotBatchPredictionOperator) -> str | None:
    """The URI of the output ``operator`` writes, or ``None`` if it is templated or not a fixed path."""
    output: Any = operator.output_settings
    if isinstance(output, BaseModel):
        output = output.model_dump(by_alias=False)
    if output is not None:
        if not isinstance(output, Mapping) or _templated(output):
            return None
        kind = output.get("type", "localFile")
        if kind in ("s3", "gcp", "azure") and output.get("url"):
            return object_uri(kind, str(output["url"]))
        if kind not in ("localFile", "local_file"):
            return None
    else:
        destination = getattr(operator, "destination_url", None)
        kind = getattr(operator, "adapter_type", None)
        if destination:
            if _templated(destination) or kind not in ("s3", "gcp", "azure"):
                return None
            return object_uri(kind, str(destination))
    output_file = operator.output_file
    if not output_file or _templated(output_file):
        return None
    return f"file://{os.path.abspath(output_file)}"
