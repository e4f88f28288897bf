"""The effective job spec: validated settings with the server's defaults filled in."""

from __future__ import annotations

from typing import Any

from airflow_batchpred.contract import ColumnRemap, JobSettings

DEFAULT_NUM_CONCURRENT = 4

#: Server defaults of optional job fields, as they appear in ``jobSpec``.
SPEC_DEFAULTS: dict[str, Any] = {
    "numConcurrent": DEFAULT_NUM_CONCURRENT,
    "chunkSize": "auto",
    "maxExplanations": 0,
    "abortOnError": True,
    "includeProbabilities": True,
    "includeProbabilitiesClasses": [],
    "includePredictionStatus": False,
    "skipDriftTracking": False,
    "predictionWarningEnabled": False,
    "disableRowLevelErrorHandling": False,
    "columnNamesRemapping": {},
}

_REDACTED_PREDICTION_INSTANCE_FIELDS = ("apiKey", "datarobotKey")


def job_spec(settings: JobSettings) -> dict[str, Any]:
    """``jobSpec`` of the job JSON: camelCase settings plus defaults, secrets redacted."""
    spec = settings.to_wire()
    for key, value in SPEC_DEFAULTS.items():
        spec.setdefault(key, value)
    spec["csvSettings"] = settings.csv.to_wire()
    # to_wire drops None values; in the remapping a None means "remove this column" and must stay.
    spec["columnNamesRemapping"] = _remapping_wire(settings.column_names_remapping)
    instance = spec.get("predictionInstance")
    if isinstance(instance, dict):
        redacted = [
            f"predictionInstance.{key}" for key in _REDACTED_PREDICTION_INSTANCE_FIELDS if key in instance
        ]
        for key in _REDACTED_PREDICTION_INSTANCE_FIELDS:
            instance.pop(key, None)
        if redacted:
            spec["redactedFields"] = redacted
    return spec


def stored_settings(settings: JobSettings) -> dict[str, Any]:
    """The settings as kept with the job to run it (re-parsed by the runner), secrets removed."""
    stored = settings.to_wire()
    stored["columnNamesRemapping"] = _remapping_wire(settings.column_names_remapping)
    instance = stored.get("predictionInstance")
    if isinstance(instance, dict):
        for key in _REDACTED_PREDICTION_INSTANCE_FIELDS:
            instance.pop(key, None)
    return stored


def _remapping_wire(remapping: dict[str, str | None] | list[ColumnRemap] | None) -> Any:
    if remapping is None:
        return {}
    if isinstance(remapping, dict):
        return dict(remapping)
    return [{"inputName": item.input_name, "outputName": item.output_name} for item in remapping]


def remapping_dict(settings: JobSettings) -> dict[str, str | None]:
    """The column remapping as ``{output column: new name, or None to drop it}``."""
    remapping = settings.column_names_remapping
    if remapping is None:
        return {}
    if isinstance(remapping, dict):
        return dict(remapping)
    return {item.input_name: item.output_name for item in remapping}
