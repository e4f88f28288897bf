"""Base operator for DataRobot batch prediction jobs.

:class:`DataRobotBatchPredictionOperator` owns the whole job life cycle: validate the settings,
submit, upload a local file, wait (polling or deferred), download a local result, cancel, and
re-attach to the job an earlier try started. Operators for one intake/output pair (``local_file``,
later ``s3``, ``gcs``, ``jdbc`` ...) only fill in default ``intake_settings``/``output_settings``.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import warnings
from collections.abc import Mapping
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf
from pydantic import BaseModel

from airflow_batchpred.contract import (
    FAILED_STATUSES,
    CsvSettings,
    JobSettings,
    JobStatus,
    LocalFileIntake,
    SettingsValidationError,
    TimeseriesSettings,
    parse_job_settings,
)
from airflow_batchpred.exceptions import (
    DataRobotApiError,
    DataRobotError,
    DataRobotJobFailedError,
    DataRobotSettingsError,
    DataRobotTimeoutError,
)
from airflow_batchpred.hooks.datarobot import (
    DEFAULT_PART_SIZE,
    DataRobotHook,
    is_terminal,
    job_status,
    job_url,
    raise_for_job,
)
from airflow_batchpred.links import JOB_ID_XCOM_KEY, JOB_URL_XCOM_KEY, DataRobotBatchPredictionJobLink
from airflow_batchpred.triggers.batch_prediction import DataRobotBatchPredictionJobTrigger, progress_key

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Seconds before ``execution_timeout`` at which a deferred task's trigger gives up, so that the
#: task can still abort the job.
EXECUTION_TIMEOUT_MARGIN = 2.0
#: Keys accepted in ``hook_params`` (keyword arguments of :class:`DataRobotHook`).
HOOK_PARAM_NAMES = ("timeout_seconds", "retry_limit", "retry_delay", "max_retry_delay", "connect_timeout")

#: Operator arguments that map one-to-one onto job settings (snake_case names of the contract).
JOB_OPTION_FIELDS: tuple[str, ...] = (
    "passthrough_columns",
    "passthrough_columns_set",
    "max_explanations",
    "max_ngram_explanations",
    "threshold_high",
    "threshold_low",
    "explanation_algorithm",
    "explanation_num_top_classes",
    "explanation_class_names",
    "prediction_threshold",
    "prediction_warning_enabled",
    "include_prediction_status",
    "include_probabilities",
    "include_probabilities_classes",
    "csv_settings",
    "timeseries_settings",
    "column_names_remapping",
    "chunk_size",
    "num_concurrent",
    "abort_on_error",
    "skip_drift_tracking",
    "disable_row_level_error_handling",
)


class _ProgressLog:
    """Log a job's progress when it changes, not on every poll."""

    def __init__(self, operator: BaseOperator) -> None:
        self._operator = operator
        self._last: tuple[Any, ...] | None = None

    def __call__(self, job: Mapping[str, Any]) -> None:
        key = progress_key(dict(job))
        if key == self._last:
            return
        self._last = key
        if job.get("status") == JobStatus.INITIALIZING.value and job.get("queuePosition") is not None:
            self._operator.log.info(
                "Job %s: INITIALIZING, queue position %s", job.get("id"), job.get("queuePosition")
            )
            return
        self._operator.log.info(
            "Job %s: %s, %s%% done, %s rows scored, %s failed, %s skipped",
            job.get("id"),
            job.get("status"),
            job.get("percentageCompleted"),
            job.get("scoredRows"),
            job.get("failedRows"),
            job.get("skippedRows"),
        )


class _UploadThread(threading.Thread):
    """Upload the input file while the main thread streams the result down."""

    def __init__(
        self, hook: DataRobotHook, job: Mapping[str, Any], path: str, *, multipart: bool, part_size: int
    ) -> None:
        super().__init__(name=f"batchpred-upload-{job.get('id')}", daemon=True)
        self._hook, self._job, self._path = hook, job, path
        self._multipart, self._part_size = multipart, part_size
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._hook.upload_csv(self._job, self._path, multipart=self._multipart, part_size=self._part_size)
        except BaseException as exc:
            self.error = exc
        finally:
            self._hook.close()


class DataRobotBatchPredictionOperator(BaseOperator):
    """Score data with a DataRobot deployment through the Batch Prediction API.

    The settings are validated before anything is sent. The job id and URL are pushed to XCom
    (``job_id``, ``job_url``) before waiting, so the extra link works while the task waits or is
    deferred. The return value (XCom) is a summary: job id, status, scored/failed/skipped rows,
    elapsed seconds, output location, job URL and deployment id. A job that ends ``FAILED`` or
    ``ABORTED`` fails the task with the server's ``statusDetails`` and the last job log lines.

    **Re-attach.** Right after submitting, the job id is saved in the task state store (Airflow
    3.3+, ``context["task_state_store"]``). A retried try reads it back and waits for that job
    instead of submitting another one, or uses its result if it already COMPLETED. It resubmits
    if the job FAILED, was ABORTED or is gone (404). A ``localFile`` job whose upload was not
    confirmed complete is aborted and resubmitted: the upload died with the earlier try and
    cannot be resumed. On Airflow 3.0-3.2 there is no task state store: every try submits a new
    job (a warning says so).

    **Cancel.** ``on_kill`` (sync mode), the trigger's ``on_kill`` (deferred mode) and hitting
    ``timeout`` (both modes) abort the job on the server.

    :param deployment_id: the deployment that scores.
    :param intake_settings: where the data comes from: a contract model or a dict (snake_case or
        camelCase keys). Default ``{"type": "localFile"}``.
    :param output_settings: where the scores go. Default ``{"type": "localFile"}``.
    :param input_file: the CSV to upload, for ``localFile`` intake (streamed from disk).
    :param output_file: where to write the scored CSV, for ``localFile`` output; written to a
        temporary file in the same directory and renamed into place only if the job COMPLETED.
    :param multipart_upload: upload the input in parts (each starting with the header row).
    :param part_size: approximate size in bytes of each uploaded part.
    :param passthrough_columns: input columns to copy into the output.
    :param passthrough_columns_set: ``"all"`` to copy every input column.
    :param max_explanations: prediction explanations per row (0-100).
    :param max_ngram_explanations: text n-gram explanations (a number or ``"all"``).
    :param threshold_high: explain only rows whose prediction is above this value.
    :param threshold_low: explain only rows whose prediction is below this value.
    :param explanation_algorithm: ``"shap"`` or ``"xemp"``.
    :param explanation_num_top_classes: multiclass: explain the top N classes (1-10).
    :param explanation_class_names: multiclass: explain these classes.
    :param prediction_threshold: binary classification threshold (0-1).
    :param prediction_warning_enabled: add outlier warnings (regression).
    :param include_prediction_status: add a ``prediction_status`` column.
    :param include_probabilities: include class probability columns.
    :param include_probabilities_classes: only these class probability columns.
    :param csv_settings: ``{"delimiter", "quotechar", "encoding"}`` of the input and output CSV.
    :param timeseries_settings: time-series options; dates may be ISO strings (from templates).
    :param column_names_remapping: ``{old: new}`` (``None`` drops a column) or a list of
        ``{"input_name", "output_name"}``.
    :param chunk_size: ``"auto"``, ``"fixed"``, ``"dynamic"`` or a size in bytes.
    :param num_concurrent: concurrent chunks scored at once.
    :param abort_on_error: abort the job when too many rows fail.
    :param skip_drift_tracking: do not feed drift tracking.
    :param disable_row_level_error_handling: skip row-by-row error handling.
    :param datarobot_conn_id: the ``datarobot`` connection.
    :param hook_params: JSON-safe extra arguments of :class:`DataRobotHook` (e.g. ``retry_limit``).
    :param deferrable: wait in the triggerer instead of on a worker (default: Airflow's
        ``[operators] default_deferrable``).
    :param wait_for_completion: wait for the job to end; if ``False`` the task returns once the
        job is submitted (and its local input uploaded).
    :param poll_interval: seconds between status requests.
    :param timeout: seconds to wait for the job before aborting it and failing the task.
    :param output_asset: add the output as an Airflow ``Asset`` to ``outlets`` when its location is
        fixed at parse time (not templated) and no ``outlets`` are given; ``False`` turns it off.
        See :mod:`airflow_batchpred.utils.assets`.
    """

    template_fields = (
        "deployment_id",
        "intake_settings",
        "output_settings",
        "input_file",
        "output_file",
        *JOB_OPTION_FIELDS,
    )
    template_fields_renderers = {
        "intake_settings": "json",
        "output_settings": "json",
        "csv_settings": "json",
        "timeseries_settings": "json",
        "column_names_remapping": "json",
    }
    operator_extra_links = (DataRobotBatchPredictionJobLink(),)
    ui_color = "#e8f1fb"

    #: Key of the task state store entry holding ``{"job_id", "upload_complete"}`` across tries.
    #: Renaming it breaks re-attach for tries already in flight.
    state_store_key = "datarobot_batch_prediction_job"

    def __init__(
        self,
        *,
        deployment_id: str,
        intake_settings: BaseModel | Mapping[str, Any] | None = None,
        output_settings: BaseModel | Mapping[str, Any] | None = None,
        input_file: str | os.PathLike[str] | None = None,
        output_file: str | os.PathLike[str] | None = None,
        multipart_upload: bool = False,
        part_size: int = DEFAULT_PART_SIZE,
        passthrough_columns: list[str] | None = None,
        passthrough_columns_set: str | None = None,
        max_explanations: int | None = None,
        max_ngram_explanations: int | str | None = None,
        threshold_high: float | None = None,
        threshold_low: float | None = None,
        explanation_algorithm: str | None = None,
        explanation_num_top_classes: int | None = None,
        explanation_class_names: list[str] | None = None,
        prediction_threshold: float | None = None,
        prediction_warning_enabled: bool | None = None,
        include_prediction_status: bool | None = None,
        include_probabilities: bool | None = None,
        include_probabilities_classes: list[str] | None = None,
        csv_settings: CsvSettings | Mapping[str, Any] | None = None,
        timeseries_settings: TimeseriesSettings | Mapping[str, Any] | None = None,
        column_names_remapping: Mapping[str, str | None] | list[Mapping[str, Any]] | None = None,
        chunk_size: int | str | None = None,
        num_concurrent: int | None = None,
        abort_on_error: bool | None = None,
        skip_drift_tracking: bool | None = None,
        disable_row_level_error_handling: bool | None = None,
        datarobot_conn_id: str = DataRobotHook.default_conn_name,
        hook_params: dict[str, Any] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        wait_for_completion: bool = True,
        poll_interval: float = 5.0,
        timeout: float | timedelta | None = None,
        output_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        self.__dict__["_default_outlet_pending"] = output_asset and not kwargs.get("outlets")
        super().__init__(**kwargs)
        self.deployment_id = deployment_id
        self.intake_settings = intake_settings
        self.output_settings = output_settings
        self.input_file = os.fspath(input_file) if input_file is not None else None
        self.output_file = os.fspath(output_file) if output_file is not None else None
        self.multipart_upload = multipart_upload
        self.part_size = part_size
        self.passthrough_columns = passthrough_columns
        self.passthrough_columns_set = passthrough_columns_set
        self.max_explanations = max_explanations
        self.max_ngram_explanations = max_ngram_explanations
        self.threshold_high = threshold_high
        self.threshold_low = threshold_low
        self.explanation_algorithm = explanation_algorithm
        self.explanation_num_top_classes = explanation_num_top_classes
        self.explanation_class_names = explanation_class_names
        self.prediction_threshold = prediction_threshold
        self.prediction_warning_enabled = prediction_warning_enabled
        self.include_prediction_status = include_prediction_status
        self.include_probabilities = include_probabilities
        self.include_probabilities_classes = include_probabilities_classes
        self.csv_settings = csv_settings
        self.timeseries_settings = timeseries_settings
        self.column_names_remapping = column_names_remapping
        self.chunk_size = chunk_size
        self.num_concurrent = num_concurrent
        self.abort_on_error = abort_on_error
        self.skip_drift_tracking = skip_drift_tracking
        self.disable_row_level_error_handling = disable_row_level_error_handling
        self.datarobot_conn_id = datarobot_conn_id
        self.hook_params = dict(hook_params or {})
        self.deferrable = deferrable
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        self.job_id: str | None = None
        self._job_done = False
        if not self.__dict__.get("_init_depth"):
            self._add_default_outlet()
        if deferrable and not wait_for_completion:
            warnings.warn(
                "deferrable=True has no effect when wait_for_completion=False: the task returns "
                "as soon as the job is submitted",
                UserWarning,
                stacklevel=2,
            )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap each subclass's ``__init__`` so the default Asset outlet is added once, at the end
        of the outermost ``__init__``, when every argument of every level is set (and before any
        rendering, so a template never becomes an outlet)."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def __init__(self: DataRobotBatchPredictionOperator, *args: Any, **init_kwargs: Any) -> None:
            depth = self.__dict__.get("_init_depth", 0)
            self.__dict__["_init_depth"] = depth + 1
            try:
                init(self, *args, **init_kwargs)
            finally:
                self.__dict__["_init_depth"] = depth
            if depth == 0:
                self._add_default_outlet()

        cls.__init__ = __init__  # type: ignore[method-assign]

    def _add_default_outlet(self) -> None:
        # An expanded (mapped) task is rebuilt per map index on the worker: its outlets are the
        # ones declared in ``partial()``, never a default computed from the expanded values.
        if not self.__dict__.pop("_default_outlet_pending", False) or getattr(
            self, "_BaseOperator__from_mapped", False
        ):
            return
        from airflow_batchpred.utils.assets import output_asset_uri

        uri = output_asset_uri(self)
        if uri:
            from airflow.sdk import Asset

            self.outlets.append(Asset(uri))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the job's input and output datasets, deployment and job (see
        :mod:`airflow_batchpred.utils.openlineage`; needs the ``openlineage`` extra)."""
        from airflow_batchpred.utils.openlineage import get_openlineage_facets_on_complete

        return get_openlineage_facets_on_complete(self)

    @cached_property
    def hook(self) -> DataRobotHook:
        problems = self._hook_params_problems()
        if problems:
            raise DataRobotSettingsError(problems, task_id=self.task_id)
        return DataRobotHook(self.datarobot_conn_id, **self.hook_params)

    # -----------------------------------------------------------------------------------------
    # Settings
    # -----------------------------------------------------------------------------------------

    def default_intake_settings(self) -> dict[str, Any]:
        """Intake used when ``intake_settings`` is not given; subclasses override it."""
        intake: dict[str, Any] = {"type": "localFile"}
        if self.multipart_upload:
            intake["multipart"] = True
        return intake

    def default_output_settings(self) -> dict[str, Any]:
        """Output used when ``output_settings`` is not given; subclasses override it."""
        return {"type": "localFile"}

    def resolve_credentials(self, *, map_connections: bool = True) -> None:
        """Replace Airflow connection ids in the settings by DataRobot credential ids.

        ``intake_settings``/``output_settings`` (given or default) may name ``aws_conn_id``,
        ``wasb_conn_id``, ``gcp_conn_id`` or a ``credential`` object; see
        :func:`~airflow_batchpred.hooks.cloud_credentials.resolve_settings_credentials`. Runs at
        the start of :meth:`execute` (mapping the connections) and of :meth:`execute_complete`
        (``map_connections=False``: the keys are only dropped), never at DAG parse time.
        """
        from airflow_batchpred.hooks.cloud_credentials import resolve_settings_credentials

        for name, default in (
            ("intake_settings", self.default_intake_settings),
            ("output_settings", self.default_output_settings),
        ):
            current = getattr(self, name)
            effective = current if current is not None else default()
            resolved = resolve_settings_credentials(self.hook, effective, map_connections=map_connections)
            if resolved is not effective:
                setattr(self, name, resolved)

    def job_settings(self, *, check_files: bool = True) -> JobSettings:
        """Validate the rendered arguments into job settings, before any request.

        :raises DataRobotSettingsError: naming every wrong argument and how to fix it.
        """
        data: dict[str, Any] = {
            "deployment_id": self.deployment_id,
            "intake_settings": (
                self.intake_settings if self.intake_settings is not None else self.default_intake_settings()
            ),
            "output_settings": (
                self.output_settings if self.output_settings is not None else self.default_output_settings()
            ),
        }
        for name in JOB_OPTION_FIELDS:
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        problems: list[tuple[str, str]] = []
        settings: JobSettings | None = None
        try:
            settings = parse_job_settings(data)
        except SettingsValidationError as exc:
            problems.extend(exc.problems)
        if not isinstance(self.poll_interval, int | float) or self.poll_interval <= 0:
            problems.append(
                ("poll_interval", f"must be a positive number of seconds, got {self.poll_interval!r}")
            )
        if self.timeout is not None and (not isinstance(self.timeout, int | float) or self.timeout <= 0):
            problems.append(
                ("timeout", f"must be a positive number of seconds or None, got {self.timeout!r}")
            )
        problems.extend(self._hook_params_problems())
        if settings is not None:
            problems.extend(self._file_problems(settings, check_files=check_files))
        if problems:
            raise DataRobotSettingsError(problems, task_id=self.task_id)
        assert settings is not None
        return settings

    def _hook_params_problems(self) -> list[tuple[str, str]]:
        # Checked here because the trigger gets them too: a bad value would otherwise only
        # surface at defer time, after the job was submitted.
        unknown = sorted(set(self.hook_params) - set(HOOK_PARAM_NAMES))
        if unknown:
            return [("hook_params", f"unknown key(s) {unknown}; allowed: {', '.join(HOOK_PARAM_NAMES)}")]
        try:
            json.dumps(self.hook_params)
            DataRobotHook(self.datarobot_conn_id, **self.hook_params)
        except (TypeError, ValueError) as exc:
            return [("hook_params", f"{exc} (they must be JSON-serializable numbers)")]
        return []

    def _file_problems(self, settings: JobSettings, *, check_files: bool) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if settings.intake_settings.type == "localFile":
            if not self.input_file:
                problems.append(
                    ("input_file", "localFile intake needs input_file: the path of the CSV to score")
                )
            elif check_files and not os.path.isfile(self.input_file):
                problems.append(
                    ("input_file", f"no such file: {self.input_file!r}; give an existing CSV path")
                )
        elif self.input_file:
            problems.append(
                (
                    "input_file",
                    f"only used with localFile intake, not {settings.intake_settings.type!r}; remove it",
                )
            )
        if settings.output_settings.type == "localFile":
            if not self.output_file:
                problems.append(
                    ("output_file", "localFile output needs output_file: where to write the scores")
                )
            elif check_files and not os.path.isdir(os.path.dirname(os.path.abspath(self.output_file))):
                problems.append(
                    ("output_file", f"the directory of {self.output_file!r} does not exist; create it first")
                )
            if not self.wait_for_completion:
                problems.append(
                    ("wait_for_completion", "localFile output is downloaded by this task; set it to True")
                )
        elif self.output_file:
            problems.append(
                (
                    "output_file",
                    f"only used with localFile output, not {settings.output_settings.type!r}; remove it",
                )
            )
        return problems

    @staticmethod
    def _local_intake(settings: JobSettings) -> bool:
        return settings.intake_settings.type == "localFile"

    @staticmethod
    def _local_output(settings: JobSettings) -> bool:
        return settings.output_settings.type == "localFile"

    @staticmethod
    def _multipart(settings: JobSettings) -> bool:
        intake = settings.intake_settings
        return isinstance(intake, LocalFileIntake) and bool(intake.multipart)

    # -----------------------------------------------------------------------------------------
    # Task state store (re-attach)
    # -----------------------------------------------------------------------------------------

    def _store(self, context: Context) -> Any:
        return context.get("task_state_store")

    def _remember(self, context: Context, job_id: str, *, upload_complete: bool) -> None:
        store = self._store(context)
        if store is None:
            return
        try:
            store.set(self.state_store_key, {"job_id": job_id, "upload_complete": upload_complete})
        except Exception:
            self.log.warning(
                "Could not save job %s in the task state store; a retry cannot re-attach", job_id
            )

    def _forget(self, context: Context) -> None:
        store = self._store(context)
        if store is None:
            return
        try:
            store.delete(self.state_store_key)
        except Exception:
            self.log.warning("Could not clear the task state store entry %s", self.state_store_key)

    def _resume(self, context: Context, settings: JobSettings) -> dict[str, Any] | None:
        """Return the job an earlier try started if this try should wait for it, else ``None``."""
        store = self._store(context)
        if store is None:
            self.log.warning(
                "No task_state_store (Airflow < 3.3): a retry of this task submits a new job instead "
                "of re-attaching to the one an earlier try started"
            )
            return None
        saved = store.get(self.state_store_key)
        if not isinstance(saved, Mapping) or not saved.get("job_id"):
            return None
        job_id = str(saved["job_id"])
        upload_complete = bool(saved.get("upload_complete"))
        try:
            job = self.hook.get_job(job_id)
        except DataRobotApiError as exc:
            if exc.http_status_code == 404:
                self.log.warning("Job %s of an earlier try is gone; submitting a new one", job_id)
                return None
            raise
        status = job_status(job)
        if status in FAILED_STATUSES:
            self.log.warning(
                "Job %s of an earlier try ended %s (%s); submitting a new one",
                job_id,
                status.value if status else None,
                job.get("statusDetails"),
            )
            return None
        if self._local_intake(settings) and not upload_complete and self._read_whole_input(settings, job):
            self.log.info(
                "Job %s of an earlier try completed after reading the whole input (%s bytes; the try "
                "died before it could note the upload as done); using its results",
                job_id,
                job.get("jobIntakeSize"),
            )
        elif self._local_intake(settings) and not upload_complete:
            if not is_terminal(job):
                self.log.warning(
                    "Job %s of an earlier try is %s but its upload never finished (it died with that "
                    "try); aborting it and submitting a new one",
                    job_id,
                    job.get("status"),
                )
                if not self.hook.cancel_job(job_id):
                    # It ended before the abort took effect: if it read the whole file, it is ours.
                    ended = self.hook.get_job(job_id)
                    if self._read_whole_input(settings, ended):
                        self.log.info(
                            "Job %s of an earlier try completed with the whole input before the abort "
                            "took effect; using its results",
                            job_id,
                        )
                        return ended
            else:
                self.log.warning(
                    "Job %s of an earlier try completed, but its upload was not confirmed complete, "
                    "so its results may be partial; submitting a new one",
                    job_id,
                )
            return None
        self.log.info("Re-attaching to job %s (%s) started by an earlier try", job_id, job.get("status"))
        return job

    def _read_whole_input(self, settings: JobSettings, job: Mapping[str, Any]) -> bool:
        """Whether ``job`` COMPLETED after reading exactly the bytes of ``input_file``.

        A try killed after its upload was accepted but before it noted that in the task state
        store leaves such a job; its results are whole, and scoring again would duplicate it.
        """
        if job_status(job) != JobStatus.COMPLETED or not self.input_file or self._multipart(settings):
            return False
        try:
            size = os.path.getsize(self.input_file)
        except OSError:
            return False
        return bool(size) and job.get("jobIntakeSize") == size

    # -----------------------------------------------------------------------------------------
    # Execution
    # -----------------------------------------------------------------------------------------

    def _push_job_xcoms(self, context: Context, job: Mapping[str, Any]) -> None:
        ti = context["ti"]
        ti.xcom_push(key=JOB_ID_XCOM_KEY, value=str(job["id"]))
        url = job_url(job)
        if url:
            ti.xcom_push(key=JOB_URL_XCOM_KEY, value=url)

    def _remaining(self, started: float) -> float | None:
        return None if self.timeout is None else max(self.timeout - (time.monotonic() - started), 0.0)

    def _validate_before_mapping(self) -> None:
        """Validate every argument before connections are mapped (which writes to DataRobot)."""
        given = (self.intake_settings, self.output_settings)
        self.resolve_credentials(map_connections=False)
        try:
            self.job_settings()
        finally:
            self.intake_settings, self.output_settings = given

    def execute(self, context: Context) -> dict[str, Any]:
        self._validate_before_mapping()
        self.resolve_credentials()
        settings = self.job_settings()
        started = time.monotonic()
        job = self._resume(context, settings)
        resumed = job is not None
        if job is None:
            job = self.hook.submit_job(settings)
            self._remember(context, str(job["id"]), upload_complete=not self._local_intake(settings))
        self.job_id = str(job["id"])
        self._push_job_xcoms(context, job)
        self.log.info("Batch prediction job %s: %s", self.job_id, job_url(job))
        upload_needed = self._local_intake(settings) and not resumed

        if not self.wait_for_completion:
            if upload_needed:
                self._upload(context, job, settings)
            return self._summary(settings, self.hook.get_job(self.job_id))

        if self.deferrable:
            if upload_needed:
                self._upload(context, job, settings)
            job = self.hook.get_job(self.job_id)
            if is_terminal(job):
                return self._complete(context, settings, job)
            self.defer(
                trigger=DataRobotBatchPredictionJobTrigger(
                    job_id=self.job_id,
                    datarobot_conn_id=self.datarobot_conn_id,
                    poll_interval=self.poll_interval,
                    end_time=self._deferral_deadline(context, started),
                    cancel_on_kill=True,
                    hook_params=self.hook_params,
                ),
                method_name="execute_complete",
            )
        return self._run_sync(context, settings, job, upload_needed=upload_needed, started=started)

    def _deferral_deadline(self, context: Context, started: float) -> float | None:
        """Absolute deadline of the trigger: ``timeout``, and ``execution_timeout`` minus a margin.

        Airflow fails a deferred task whose ``execution_timeout`` passes without calling any
        ``on_kill``, which would leave the job running; the trigger fires first so that
        :meth:`execute_complete` aborts the job.
        """
        deadlines: list[float] = []
        remaining = self._remaining(started)
        if remaining is not None:
            deadlines.append(time.time() + remaining)
        if self.execution_timeout is not None:
            ti_start = getattr(context.get("ti"), "start_date", None)
            start = ti_start.timestamp() if ti_start is not None else time.time()
            deadlines.append(start + self.execution_timeout.total_seconds() - EXECUTION_TIMEOUT_MARGIN)
        return min(deadlines) if deadlines else None

    def _upload(self, context: Context, job: Mapping[str, Any], settings: JobSettings) -> None:
        assert self.input_file is not None
        try:
            self.hook.upload_csv(
                job,
                self.input_file,
                multipart=self._multipart(settings),
                part_size=self.part_size,
            )
        except DataRobotApiError as exc:
            # The server rejects the data of a job that ended meanwhile: report the job's reason.
            current = self.hook.get_job(str(job["id"]))
            failed = raise_for_job(current)
            if failed is None:
                self._abort_after_failure(context, str(job["id"]), "the upload failed")
                raise
            self._forget(context)
            self._job_done = True
            raise failed from exc
        except BaseException:
            self._abort_after_failure(context, str(job["id"]), "the upload failed")
            raise
        self._remember(context, str(job["id"]), upload_complete=True)

    def _abort_after_failure(self, context: Context, job_id: str, why: str) -> None:
        self.log.warning("Aborting job %s because %s", job_id, why)
        try:
            self.hook.copy().cancel_job(job_id)
        except Exception:
            self.log.warning("Could not abort job %s", job_id, exc_info=True)
        self._forget(context)
        self._job_done = True

    def _run_sync(
        self,
        context: Context,
        settings: JobSettings,
        job: Mapping[str, Any],
        *,
        upload_needed: bool,
        started: float,
    ) -> dict[str, Any]:
        job_id = str(job["id"])
        progress = _ProgressLog(self)
        uploader: _UploadThread | None = None
        if upload_needed and self._local_output(settings):
            assert self.input_file is not None
            uploader = _UploadThread(
                self.hook,
                job,
                self.input_file,
                multipart=self._multipart(settings),
                part_size=self.part_size,
            )
            uploader.start()
        elif upload_needed:
            self._upload(context, job, settings)

        upload_recorded = uploader is None

        def on_progress(current: Mapping[str, Any]) -> None:
            nonlocal upload_recorded
            progress(current)
            if uploader is None or uploader.is_alive():
                return
            if uploader.error is not None and not is_terminal(current):
                raise uploader.error
            if uploader.error is None and not upload_recorded:
                self._remember(context, job_id, upload_complete=True)
                upload_recorded = True

        try:
            if self._local_output(settings):
                assert self.output_file is not None
                final = self.hook.download_results(
                    job_id,
                    self.output_file,
                    poll_interval=self.poll_interval,
                    timeout=self._remaining(started),
                    on_progress=on_progress,
                )
            else:
                final = self.hook.wait_for_job(
                    job_id,
                    poll_interval=self.poll_interval,
                    timeout=self._remaining(started),
                    on_progress=on_progress,
                )
        except DataRobotTimeoutError:
            self._abort_after_failure(context, job_id, f"it did not end within timeout={self.timeout:g} s")
            raise
        except DataRobotJobFailedError as exc:
            self._forget(context)
            self._job_done = True
            if uploader is not None and uploader.error is not None:
                raise exc from uploader.error
            raise
        except BaseException as exc:
            if uploader is not None and exc is uploader.error:
                self._abort_after_failure(context, job_id, "the upload failed")
            elif uploader is not None and not self._job_done and isinstance(exc, DataRobotError):
                # The job lives on (the API was unreachable for a while): let the upload finish
                # and record it, so that a retry re-attaches instead of resubmitting. Not on a
                # kill or execution_timeout: on_kill must abort the job without waiting.
                uploader.join()
                if uploader.error is None and not upload_recorded:
                    self._remember(context, job_id, upload_complete=True)
            raise
        return self._complete(context, settings, final, downloaded=True)

    def _complete(
        self,
        context: Context,
        settings: JobSettings,
        job: Mapping[str, Any],
        *,
        downloaded: bool = False,
    ) -> dict[str, Any]:
        """Turn a terminal job into the task's result: fail, or download and summarise."""
        error = raise_for_job(job)
        if error is not None:
            self._forget(context)
            self._job_done = True
            raise error
        if self._local_output(settings) and not downloaded:
            assert self.output_file is not None
            job = self.hook.download_results(job, self.output_file, poll_interval=self.poll_interval)
        self._forget(context)
        self._job_done = True
        summary = self._summary(settings, job)
        self.log.info(
            "Job %s %s: %s rows scored, %s failed; output: %s",
            summary["job_id"],
            summary["status"],
            summary["scored_rows"],
            summary["failed_rows"],
            summary["output_location"],
        )
        return summary

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: fail, abort on timeout, or download and summarise."""
        if not event or event.get("status") not in ("success", "error", "timeout") or not event.get("job_id"):
            raise DataRobotError(f"Unexpected event from the batch prediction trigger: {event!r}")
        self.resolve_credentials(map_connections=False)
        settings = self.job_settings(check_files=False)
        job_id = str(event["job_id"])
        self.job_id = job_id
        if event["status"] == "timeout":
            self._abort_after_failure(context, job_id, "it did not end before the task's deadline")
            raise DataRobotTimeoutError(f"{event.get('message')}; aborted it", job_id=job_id)
        if event["status"] == "error":
            job = event.get("job") or {}
            if job_status(job) in FAILED_STATUSES:
                self._forget(context)
                self._job_done = True
                raise DataRobotJobFailedError.from_job(job)
            # Keep the stored job id: a retry re-attaches to the job, which may still be fine.
            raise DataRobotError(str(event.get("message")))
        return self._complete(context, settings, self.hook.get_job(job_id))

    def on_kill(self) -> None:
        """Abort the job when the task is killed (or hits ``execution_timeout``) in sync mode."""
        if not self.job_id or self._job_done:
            return
        try:
            self.hook.copy().cancel_job(self.job_id)
        except Exception:
            self.log.warning("Could not abort job %s on kill", self.job_id, exc_info=True)

    def _summary(self, settings: JobSettings, job: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "job_id": str(job.get("id")),
            "status": job.get("status"),
            "scored_rows": job.get("scoredRows"),
            "failed_rows": job.get("failedRows"),
            "skipped_rows": job.get("skippedRows"),
            "elapsed_seconds": job.get("elapsedTimeSec"),
            "output_location": self._output_location(settings),
            "job_url": job_url(job),
            "deployment_id": settings.deployment_id,
        }

    def _output_location(self, settings: JobSettings) -> str | None:
        output = settings.output_settings
        if output.type == "localFile":
            return os.path.abspath(self.output_file) if self.output_file else None
        url = getattr(output, "url", None)
        if url:
            return str(url)
        table = getattr(output, "table", None)
        schema = getattr(output, "schema_name", None) or getattr(output, "dataset", None)
        return f"{output.type}:{schema + '.' if schema else ''}{table}" if table else output.type
