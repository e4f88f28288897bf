"""The interface of intake and output adapters, and their registry.

An adapter moves rows between the job runner and one kind of storage, chosen by the ``type`` of
``intakeSettings`` / ``outputSettings``. To add a type (``s3``, ``jdbc``, ...):

1. create ``adapters/<type>.py`` with a subclass of :class:`IntakeAdapter` and/or
   :class:`OutputAdapter` whose ``type`` is the wire name, decorated with :func:`register_intake`
   / :func:`register_output`;
2. import the module in ``adapters/__init__.py`` so the decorator runs.

The contract model of the settings (e.g. :class:`airflow_batchpred.contract.S3Intake`) arrives
already validated. Types the contract knows but no adapter registers are rejected at job creation
with a 422 naming the type.

Life of an intake: :meth:`IntakeAdapter.check` at job creation (cheap; raise :class:`ApiError`
for problems the caller can fix, e.g. an unknown dataset), then in the worker thread
:meth:`IntakeAdapter.batches` yields :class:`pyarrow.RecordBatch` chunks whose columns are all
strings (the scorer converts feature columns), and :meth:`IntakeAdapter.close` runs at the end
whatever happened.

Life of an output: created in the worker thread before the job turns RUNNING, then
:meth:`OutputAdapter.write` per scored chunk, and exactly one of :meth:`OutputAdapter.commit`
(the job succeeded: make the result visible) or :meth:`OutputAdapter.abort` (the job failed or was
aborted: leave nothing half-written behind).

Raise :class:`IntakeError` / :class:`OutputError` with a message meant for the job's
``statusDetails`` when the data or the target is unusable; the job ends ABORTED with that text.
Long blocking waits must watch :attr:`AdapterContext.cancelled` and raise :class:`JobCancelled`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import pyarrow as pa

from airflow_batchpred.contract import CsvSettings

if TYPE_CHECKING:
    from airflow_batchpred.server.services import Services


class IntakeError(Exception):
    """The intake data cannot be read; the message goes to the job's ``statusDetails``."""


class OutputError(Exception):
    """The output target cannot be written; the message goes to the job's ``statusDetails``."""


class JobCancelled(Exception):
    """The job was aborted (``DELETE``) while an adapter waited or worked."""


@dataclass
class AdapterContext:
    """What an adapter may use while a job runs.

    :param job_id: the job.
    :param job_dir: a private directory of the job inside the data dir (created).
    :param csv: the job's effective CSV settings (delimiter, quote char, encoding).
    :param services: the server's shared services (store, uploads, settings, ...).
    :param cancelled: set when the job is aborted; check it in long loops and blocking waits.
    """

    job_id: str
    job_dir: Path
    csv: CsvSettings
    services: Services
    cancelled: threading.Event


class Adapter(ABC):
    """What intake and output adapters share: the wire ``type``, the settings and the context."""

    type: ClassVar[str]

    def __init__(self, settings: Any, context: AdapterContext) -> None:
        self.settings = settings
        self.context = context

    @classmethod
    def check(cls, settings: Any, services: Services) -> None:
        """Validate at job creation; raise :class:`~airflow_batchpred.server.errors.ApiError`."""
        return None


class IntakeAdapter(Adapter):
    """Reads the rows to score."""

    @classmethod
    def display_name(cls, settings: Any, services: Services) -> str | None:
        """Name shown as ``intakeDatasetDisplayName`` in the job JSON (datasets only)."""
        return None

    @abstractmethod
    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield the rows as record batches of string columns, in order."""

    @property
    def bytes_read(self) -> int:
        """Bytes of intake consumed so far (for ``jobIntakeSize`` and progress)."""
        return 0

    @property
    def bytes_total(self) -> int | None:
        """Total intake bytes when known (for ``percentageCompleted``)."""
        return None

    def close(self) -> None:
        """Release resources; called once after :meth:`batches` ends, fails or is abandoned."""
        return None


class OutputAdapter(Adapter):
    """Writes the scored rows."""

    @abstractmethod
    def write(self, table: pa.Table) -> None:
        """Write one scored chunk (columns already in output order and named for output)."""

    @abstractmethod
    def commit(self) -> None:
        """Make everything written visible; called once when the job succeeds."""

    @abstractmethod
    def abort(self) -> None:
        """Discard everything written; called once when the job fails or is aborted."""

    @property
    def bytes_written(self) -> int:
        """Bytes written so far (for ``jobOutputSize``)."""
        return 0


INTAKE_ADAPTERS: dict[str, type[IntakeAdapter]] = {}
OUTPUT_ADAPTERS: dict[str, type[OutputAdapter]] = {}

_Intake = TypeVar("_Intake", bound=type[IntakeAdapter])
_Output = TypeVar("_Output", bound=type[OutputAdapter])


def register_intake(cls: _Intake) -> _Intake:
    """Class decorator: make ``cls`` the intake adapter of ``cls.type``."""
    INTAKE_ADAPTERS[cls.type] = cls
    return cls


def register_output(cls: _Output) -> _Output:
    """Class decorator: make ``cls`` the output adapter of ``cls.type``."""
    OUTPUT_ADAPTERS[cls.type] = cls
    return cls
