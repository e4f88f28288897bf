"""The wire contract of the Batch Prediction API, shared by the provider and the local server.

This module is the only code the provider and the server have in common. It holds the names the
API uses (statuses, routes, field spellings) and typed models of the job settings and of every
intake/output adapter. The models accept snake_case (what DAG authors write) and camelCase (what
travels on the wire), and :meth:`WireModel.to_wire` produces the camelCase JSON the API expects.

Only ``pydantic`` is imported here, so both sides can import it cheaply.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

#: The ``versionString`` the local server reports; the official client 3.20 expects 2.49.
API_VERSION = "2.49.0"
API_PREFIX = "/api/v2"


class JobStatus(StrEnum):
    """Status of a batch prediction job, exactly as the API spells it."""

    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    ABORTED = "ABORTED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.ABORTED, JobStatus.FAILED})
FAILED_STATUSES = frozenset({JobStatus.ABORTED, JobStatus.FAILED})


class Route:
    """Relative routes under the API prefix (all end with a slash)."""

    VERSION = "version/"
    BATCH_PREDICTIONS = "batchPredictions/"
    CREDENTIALS = "credentials/"
    DATA_STORES = "externalDataStores/"
    DATASETS = "datasets/"
    DEPLOYMENTS = "deployments/"

    @staticmethod
    def job(job_id: str) -> str:
        return f"batchPredictions/{job_id}/"


class CredentialType(StrEnum):
    """Credential types the provider maps Airflow connections to."""

    BASIC = "basic"
    S3 = "s3"
    AZURE = "azure"
    GCP = "gcp"
    SNOWFLAKE_KEY_PAIR = "snowflake_key_pair_user_account"


#: Fields of a credential body that hold secrets: never logged, echoed or stored in job JSON.
SECRET_CREDENTIAL_FIELDS = frozenset(
    {
        "password",
        "awsSecretAccessKey",
        "awsSessionToken",
        "azureConnectionString",
        "gcpKey",
        "privateKeyStr",
        "passphrase",
        "token",
        "refreshToken",
        "clientSecret",
    }
)


class WireModel(BaseModel):
    """Base of every contract model: snake_case or camelCase in, camelCase out."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        str_strip_whitespace=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """Return the JSON body the API expects: camelCase keys, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _check_url_scheme(url: str, schemes: tuple[str, ...], field: str) -> str:
    if not url.lower().startswith(schemes):
        wanted = " or ".join(f"{scheme}bucket/key" for scheme in schemes)
        raise ValueError(f"{field} must look like {wanted}, got {url!r}")
    return url


# ---------------------------------------------------------------------------------------------
# CSV and time series settings
# ---------------------------------------------------------------------------------------------


class CsvSettings(WireModel):
    """How the intake CSV is read and the output CSV written."""

    delimiter: str = ","
    quotechar: str = '"'
    encoding: str = "utf-8"

    @field_validator("delimiter")
    @classmethod
    def _one_char_or_tab(cls, value: str) -> str:
        if value != "tab" and len(value) != 1:
            raise ValueError("delimiter must be one character or the word 'tab'")
        return value

    @field_validator("quotechar")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("quotechar must be exactly one character")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_codec(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"unknown encoding {value!r}; use a Python codec name such as 'utf-8', "
                "'latin_1', 'shift_jis' or 'ms_kanji'"
            ) from None
        return value

    @property
    def delimiter_char(self) -> str:
        return "\t" if self.delimiter == "tab" else self.delimiter


class TimeseriesSettings(WireModel):
    """Time-series scoring options; datetimes may be given as ISO strings (from templates)."""

    type: Literal["forecast", "historical", "training"]
    forecast_point: datetime | None = None
    predictions_start_date: datetime | None = None
    predictions_end_date: datetime | None = None
    relax_known_in_advance_features_check: bool | None = None

    @model_validator(mode="after")
    def _dates_fit_type(self) -> TimeseriesSettings:
        start, end = self.predictions_start_date, self.predictions_end_date
        if self.type == "forecast" and (start or end):
            raise ValueError(
                "predictions_start_date/predictions_end_date apply to type 'historical'; "
                "use forecast_point with type 'forecast'"
            )
        if self.type == "historical" and self.forecast_point:
            raise ValueError("forecast_point applies to type 'forecast', not 'historical'")
        if (start is None) != (end is None):
            raise ValueError("give both predictions_start_date and predictions_end_date, or neither")
        if start and end and start > end:
            raise ValueError("predictions_start_date must not be after predictions_end_date")
        return self


class PredictionInstance(WireModel):
    host_name: str
    ssl_enabled: bool | None = None
    datarobot_key: str | None = None
    api_key: str | None = None


# ---------------------------------------------------------------------------------------------
# Intake adapters
# ---------------------------------------------------------------------------------------------


class _TableSource(WireModel):
    """Mixin of the database intakes: a ``table`` (with ``schema``) or a ``query``, not both."""

    query: str | None = None
    table: str | None = None
    schema_name: str | None = Field(default=None, alias="schema")

    @model_validator(mode="after")
    def _table_or_query(self) -> _TableSource:
        if bool(self.query) == bool(self.table):
            raise ValueError("give exactly one of 'table' or 'query'")
        if self.query and self.schema_name:
            raise ValueError("'schema' goes with 'table'; put the schema inside the query instead")
        return self


class LocalFileIntake(WireModel):
    type: Literal["localFile"] = "localFile"
    async_: bool | None = Field(default=None, alias="async")
    multipart: bool | None = None


class S3Intake(WireModel):
    type: Literal["s3"] = "s3"
    url: str
    credential_id: str | None = None
    endpoint_url: str | None = None
    format: Literal["csv", "parquet"] | None = None

    @field_validator("url")
    @classmethod
    def _s3_url(cls, value: str) -> str:
        return _check_url_scheme(value, ("s3://",), "url")


class AzureIntake(WireModel):
    type: Literal["azure"] = "azure"
    url: str
    credential_id: str | None = None
    format: Literal["csv", "parquet"] | None = None

    @field_validator("url")
    @classmethod
    def _azure_url(cls, value: str) -> str:
        return _check_url_scheme(value, ("https://", "http://"), "url")


class GCPIntake(WireModel):
    type: Literal["gcp"] = "gcp"
    url: str
    credential_id: str | None = None
    format: Literal["csv", "parquet"] | None = None

    @field_validator("url")
    @classmethod
    def _gs_url(cls, value: str) -> str:
        return _check_url_scheme(value, ("gs://",), "url")


class DatasetIntake(WireModel):
    type: Literal["dataset"] = "dataset"
    dataset_id: str
    dataset_version_id: str | None = None


class JDBCIntake(_TableSource):
    type: Literal["jdbc"] = "jdbc"
    data_store_id: str
    catalog: str | None = None
    credential_id: str | None = None
    fetch_size: int | None = Field(default=None, ge=1, le=1_000_000)


class SnowflakeIntake(_TableSource):
    type: Literal["snowflake"] = "snowflake"
    data_store_id: str
    external_stage: str
    catalog: str | None = None
    credential_id: str | None = None
    cloud_storage_type: Literal["s3", "azure", "gcp"] | None = None
    cloud_storage_credential_id: str | None = None


class SynapseIntake(_TableSource):
    type: Literal["synapse"] = "synapse"
    data_store_id: str
    external_data_source: str
    credential_id: str | None = None
    cloud_storage_credential_id: str | None = None


class BigQueryIntake(WireModel):
    type: Literal["bigquery"] = "bigquery"
    dataset: str
    table: str
    bucket: str
    credential_id: str | None = None


# ---------------------------------------------------------------------------------------------
# Output adapters
# ---------------------------------------------------------------------------------------------

StatementType = Literal["insert", "update", "insert_update", "create_table"]
_STATEMENT_SPELLINGS = {"insertUpdate": "insert_update", "createTable": "create_table"}


class _TableTarget(WireModel):
    """Mixin of the database outputs: table, statement type and the columns it needs."""

    table: str
    statement_type: StatementType
    schema_name: str | None = Field(default=None, alias="schema")
    credential_id: str | None = None
    create_table_if_not_exists: bool | None = None
    update_columns: list[str] | None = None
    where_columns: list[str] | None = None

    @field_validator("statement_type", mode="before")
    @classmethod
    def _snake_statement(cls, value: Any) -> Any:
        return _STATEMENT_SPELLINGS.get(value, value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _columns_fit_statement(self) -> _TableTarget:
        if self.statement_type in ("update", "insert_update") and not self.where_columns:
            raise ValueError(
                f"statement_type {self.statement_type!r} needs where_columns: the key columns "
                "that match an output row to a table row"
            )
        if self.statement_type == "update" and not self.update_columns:
            raise ValueError("statement_type 'update' needs update_columns: the columns to set")
        if self.statement_type in ("insert", "create_table") and (self.update_columns or self.where_columns):
            raise ValueError(
                f"update_columns/where_columns do not apply to statement_type "
                f"{self.statement_type!r}; use 'update' or 'insert_update'"
            )
        return self


class LocalFileOutput(WireModel):
    type: Literal["localFile"] = "localFile"


class S3Output(S3Intake):
    partition_columns: list[str] | None = None


class AzureOutput(AzureIntake):
    partition_columns: list[str] | None = None


class GCPOutput(GCPIntake):
    partition_columns: list[str] | None = None


class JDBCOutput(_TableTarget):
    type: Literal["jdbc"] = "jdbc"
    data_store_id: str
    catalog: str | None = None
    commit_interval: int | None = Field(default=None, ge=0, le=86_400)


class SnowflakeOutput(_TableTarget):
    type: Literal["snowflake"] = "snowflake"
    data_store_id: str
    external_stage: str
    catalog: str | None = None
    cloud_storage_type: Literal["s3", "azure", "gcp"] | None = None
    cloud_storage_credential_id: str | None = None


class SynapseOutput(_TableTarget):
    type: Literal["synapse"] = "synapse"
    data_store_id: str
    external_data_source: str
    cloud_storage_credential_id: str | None = None


class BigQueryOutput(WireModel):
    type: Literal["bigquery"] = "bigquery"
    dataset: str
    table: str
    bucket: str
    credential_id: str | None = None


_TYPE_SPELLINGS = {"local_file": "localFile", "localfile": "localFile"}


def _adapter_type(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return getattr(value, "type", None)
    if isinstance(value, Mapping):
        raw = value.get("type", "localFile")
        return _TYPE_SPELLINGS.get(raw, raw) if isinstance(raw, str) else None
    return None


IntakeSettings = Annotated[
    Annotated[LocalFileIntake, Tag("localFile")]
    | Annotated[S3Intake, Tag("s3")]
    | Annotated[AzureIntake, Tag("azure")]
    | Annotated[GCPIntake, Tag("gcp")]
    | Annotated[DatasetIntake, Tag("dataset")]
    | Annotated[JDBCIntake, Tag("jdbc")]
    | Annotated[SnowflakeIntake, Tag("snowflake")]
    | Annotated[SynapseIntake, Tag("synapse")]
    | Annotated[BigQueryIntake, Tag("bigquery")],
    Discriminator(_adapter_type),
]

OutputSettings = Annotated[
    Annotated[LocalFileOutput, Tag("localFile")]
    | Annotated[S3Output, Tag("s3")]
    | Annotated[AzureOutput, Tag("azure")]
    | Annotated[GCPOutput, Tag("gcp")]
    | Annotated[JDBCOutput, Tag("jdbc")]
    | Annotated[SnowflakeOutput, Tag("snowflake")]
    | Annotated[SynapseOutput, Tag("synapse")]
    | Annotated[BigQueryOutput, Tag("bigquery")],
    Discriminator(_adapter_type),
]

INTAKE_TYPES: dict[str, type[WireModel]] = {
    "localFile": LocalFileIntake,
    "s3": S3Intake,
    "azure": AzureIntake,
    "gcp": GCPIntake,
    "dataset": DatasetIntake,
    "jdbc": JDBCIntake,
    "snowflake": SnowflakeIntake,
    "synapse": SynapseIntake,
    "bigquery": BigQueryIntake,
}
OUTPUT_TYPES: dict[str, type[WireModel]] = {
    "localFile": LocalFileOutput,
    "s3": S3Output,
    "azure": AzureOutput,
    "gcp": GCPOutput,
    "jdbc": JDBCOutput,
    "snowflake": SnowflakeOutput,
    "synapse": SynapseOutput,
    "bigquery": BigQueryOutput,
}


def _normalise_type(value: Any) -> Any:
    if isinstance(value, Mapping) and isinstance(value.get("type"), str):
        value = dict(value)
        value["type"] = _TYPE_SPELLINGS.get(value["type"], value["type"])
    return value


# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------


class ColumnRemap(WireModel):
    input_name: str
    output_name: str | None = None


class JobSettings(WireModel):
    """Body of ``POST batchPredictions/``: what scores, where from, where to, and how."""

    deployment_id: str | None = None
    model_id: str | None = None
    model_package_id: str | None = None
    pinned_model_id: str | None = None
    intake_settings: IntakeSettings = Field(default_factory=LocalFileIntake)
    output_settings: OutputSettings = Field(default_factory=LocalFileOutput)
    csv_settings: CsvSettings | None = None
    num_concurrent: int | None = Field(default=None, ge=1)
    chunk_size: Literal["auto", "fixed", "dynamic"] | Annotated[int, Field(ge=1024)] | None = None
    passthrough_columns: list[str] | None = None
    passthrough_columns_set: Literal["all"] | None = None
    max_explanations: int | None = Field(default=None, ge=0, le=100)
    threshold_high: float | None = None
    threshold_low: float | None = None
    explanation_algorithm: Literal["shap", "xemp"] | None = None
    max_ngram_explanations: int | Literal["all"] | None = None
    explanation_num_top_classes: int | None = Field(default=None, ge=1, le=10)
    explanation_class_names: list[str] | None = None
    prediction_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    prediction_warning_enabled: bool | None = None
    include_prediction_status: bool | None = None
    include_probabilities: bool | None = None
    include_probabilities_classes: list[str] | None = None
    skip_drift_tracking: bool | None = None
    abort_on_error: bool | None = None
    disable_row_level_error_handling: bool | None = None
    prediction_instance: PredictionInstance | None = None
    column_names_remapping: dict[str, str | None] | list[ColumnRemap] | None = None
    timeseries_settings: TimeseriesSettings | None = None
    secondary_datasets_config_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _accept_spellings(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        # The Terraform client spells it maxNGramExplanations; the Python client maxNgram...
        if "maxNGramExplanations" in data:
            data["maxNgramExplanations"] = data.pop("maxNGramExplanations")
        for key in ("intake_settings", "intakeSettings", "output_settings", "outputSettings"):
            if key in data:
                data[key] = _normalise_type(data[key])
        return data

    @model_validator(mode="after")
    def _exclusive_fields(self) -> JobSettings:
        chosen = [f for f in ("deployment_id", "model_id", "model_package_id") if getattr(self, f)]
        if len(chosen) != 1:
            raise ValueError(
                "give exactly one of deployment_id, model_id or model_package_id "
                f"(got {', '.join(chosen) or 'none'})"
            )
        if self.passthrough_columns and self.passthrough_columns_set:
            raise ValueError(
                "passthrough_columns and passthrough_columns_set are mutually exclusive: "
                "list the columns, or use passthrough_columns_set='all'"
            )
        if self.explanation_num_top_classes and self.explanation_class_names:
            raise ValueError("explanation_num_top_classes and explanation_class_names are mutually exclusive")
        if (
            self.threshold_high is not None
            and self.threshold_low is not None
            and self.threshold_low > self.threshold_high
        ):
            raise ValueError("threshold_low must not be greater than threshold_high")
        return self

    @property
    def csv(self) -> CsvSettings:
        return self.csv_settings or CsvSettings()


# ---------------------------------------------------------------------------------------------
# Readable validation errors
# ---------------------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class SettingsValidationError(ValueError):
    """Invalid job settings. ``problems`` lists ``(field path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {path}: {message}" for path, message in problems)
        super().__init__(f"Invalid batch prediction settings:\n{lines}")


_UNION_TAGS = set(INTAKE_TYPES) | set(OUTPUT_TYPES)


def _is_branch_label(part: str) -> bool:
    """True for the labels pydantic puts in a path for a union's branches (``literal[...]``, ``int``)."""
    return "[" in part or "-" in part or part in ("int", "str", "float", "bool", "none")


def _describe(error: Mapping[str, Any], camel: bool, model: type[BaseModel]) -> tuple[str, str]:
    loc = [
        str(part) for part in error["loc"] if str(part) not in _UNION_TAGS and not _is_branch_label(str(part))
    ]
    parts = [(part if camel else _snake(part)) for part in loc]
    path = ".".join(parts) or "(settings)"
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        message = "this field is required; add it"
    elif kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1], error)
        allowed = sorted(
            (info.alias if camel and info.alias else name)
            for name, info in (parent.model_fields.items() if parent else [])
        )
        message = "unknown field; remove it" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    elif kind == "union_tag_invalid":
        message = f"unknown type {error.get('input', {}).get('type')!r}; {message}"
    return path, message


def _model_at(model: type[BaseModel], loc: list[str], error: Mapping[str, Any]) -> type[BaseModel] | None:
    if loc and loc[-1] in ("intakeSettings", "intake_settings", "outputSettings", "output_settings"):
        raw_loc = [str(part) for part in error["loc"]]
        tag = raw_loc[len(loc)] if len(raw_loc) > len(loc) else None
        table = INTAKE_TYPES if "intake" in loc[-1].lower() else OUTPUT_TYPES
        return table.get(tag or "")
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        field = current.model_fields.get(part) or next(
            (f for f in current.model_fields.values() if f.alias == part), None
        )
        annotation = getattr(field, "annotation", None)
        current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return current


def parse_model(model: type[WireModel], data: Any, *, camel: bool = False) -> Any:
    """Validate ``data`` into ``model``; raise :class:`SettingsValidationError` naming each field.

    :param camel: name fields in camelCase (for API responses) instead of snake_case (for DAGs).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # A value that fits no branch of a union gets one error per branch, all on one field.
        merged: dict[str, list[str]] = {}
        for error in exc.errors():
            path, message = _describe(error, camel, model)
            if message not in merged.setdefault(path, []):
                merged[path].append(message)
        raise SettingsValidationError(
            [(path, "; or: ".join(messages)) for path, messages in merged.items()]
        ) from None


def parse_job_settings(data: Mapping[str, Any] | JobSettings, *, camel: bool = False) -> JobSettings:
    """Validate a job body (snake_case or camelCase) and return the typed settings."""
    if isinstance(data, JobSettings):
        return data
    result: JobSettings = parse_model(JobSettings, data, camel=camel)
    return result
