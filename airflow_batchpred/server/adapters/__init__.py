"""Intake and output adapters, registered by ``type`` (see :mod:`.base` for the interface).

Importing this package registers every built-in adapter.
"""

from __future__ import annotations

from airflow_batchpred.server.adapters import bigquery as _bigquery  # noqa: F401 - registers adapters
from airflow_batchpred.server.adapters import dataset, local_file  # noqa: F401 - registers adapters
from airflow_batchpred.server.adapters import gcp as _object_storage  # noqa: F401 - registers s3, azure, gcp
from airflow_batchpred.server.adapters import jdbc as _databases  # noqa: F401 - registers adapters
from airflow_batchpred.server.adapters import snowflake as _snowflake  # noqa: F401 - registers adapters
from airflow_batchpred.server.adapters import synapse as _synapse  # noqa: F401 - registers adapters
from airflow_batchpred.server.adapters.base import (
    INTAKE_ADAPTERS,
    OUTPUT_ADAPTERS,
    AdapterContext,
    IntakeAdapter,
    IntakeError,
    JobCancelled,
    OutputAdapter,
    OutputError,
    register_intake,
    register_output,
)

__all__ = [
    "INTAKE_ADAPTERS",
    "OUTPUT_ADAPTERS",
    "AdapterContext",
    "IntakeAdapter",
    "IntakeError",
    "JobCancelled",
    "OutputAdapter",
    "OutputError",
    "register_intake",
    "register_output",
]
