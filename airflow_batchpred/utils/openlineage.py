"""OpenLineage for batch prediction operators: input and output datasets and the deployment.

:meth:`DataRobotBatchPredictionOperator.get_openlineage_facets_on_complete
<airflow_batchpred.operators.batch_prediction.DataRobotBatchPredictionOperator.get_openlineage_facets_on_complete>`
calls :func:`get_openlineage_facets_on_complete`. Everything OpenLineage is imported inside the
functions, so ``apache-airflow-providers-openlineage`` (the ``openlineage`` extra) stays optional.

What the job read and wrote comes from the job itself (``jobSpec`` of ``GET batchPredictions/{id}/``),
so operators built on raw ``intake_settings``/``output_settings`` get lineage too. Datasets are
named by the OpenLineage naming conventions
(https://openlineage.io/docs/spec/naming and ``openlineage.client.naming.dataset``):

==================  =====================================================  ===========================
adapter             namespace                                              name
==================  =====================================================  ===========================
``localFile``       ``file://<worker host>``                               absolute path
``s3``              ``s3://<bucket>``                                      key
``gcp``             ``gs://<bucket>``                                      object
``azure``           ``wasbs://<container>@<account>.dfs.core.windows.net`` blob path
``jdbc``            ``postgres://<host>:<port>``                           ``db.schema.table``
``snowflake``       ``snowflake://<account>``                              ``db.schema.table``
``synapse``         ``sqlserver://<host>:<port>``                          ``schema.table``
``bigquery``        ``bigquery``                                           ``project.dataset.table``
``dataset``         ``datarobot://<API host>``                             ``datasets/<id>``
==================  =====================================================  ===========================

Database hosts come from the data store's JDBC URL (``GET externalDataStores/{id}/``). The job facet
``datarobotDeployment`` carries the deployment id; the run facet ``datarobotBatchPredictionJob``
the job id, URL, status and row counts.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from airflow_batchpred.contract import Route

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_batchpred.hooks.datarobot import DataRobotHook
    from airflow_batchpred.operators.batch_prediction import DataRobotBatchPredictionOperator

log = logging.getLogger(__name__)

#: Where the custom facets' JSON schema would live (OpenLineage requires a ``_schemaURL``).
FACET_SCHEMA_BASE = (
    "https://github.com/airflow-batchpred/airflow-batchpred/blob/main/docs/openlineage-and-assets.md"
)


def split_object_url(url: str) -> tuple[str, str] | None:
    """``s3://bucket/key`` or ``gs://bucket/key`` → ``("s3://bucket", "key")``."""
    parts = urlsplit(url)
    key = parts.path.lstrip("/")
    if not parts.netloc or not key:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc}", key


def azure_blob_dataset(url: str) -> tuple[str, str] | None:
    """A blob URL → ``("wasbs://<container>@<account>.dfs.core.windows.net", "<blob>")``.

    Accepts ``https://<account>.blob.core.windows.net/<container>/<blob>`` and the path-style form
    of Azurite and custom endpoints (``http://host:port/<account>/<container>/<blob>``).
    """
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    host = (parts.hostname or "").lower()
    if ".blob." in host or host.endswith(".core.windows.net"):
        account = host.split(".", 1)[0]
    elif len(segments) >= 3:
        account, segments = segments[0], segments[1:]
    else:
        return None
    if len(segments) < 2:
        return None
    container, blob = segments[0], "/".join(segments[1:])
    return f"wasbs://{container}@{account}.dfs.core.windows.net", blob


def jdbc_dataset(jdbc_url: str, schema: str | None, table: str) -> tuple[str, str] | None:
    """A data store's JDBC URL and a table → its OpenLineage namespace and name.

    ``jdbc:postgresql://h:p/db`` → ``postgres://h:p``, ``db.schema.table`` (schema ``public`` if
    unset); ``jdbc:snowflake://<account>.snowflakecomputing.com/?db=..&schema=..`` →
    ``snowflake://<account>``, ``db.schema.table``; ``jdbc:sqlserver://h:p;databaseName=db`` →
    ``sqlserver://h:p``, ``schema.table``.
    """
    if not jdbc_url.startswith("jdbc:"):
        return None
    rest = jdbc_url[len("jdbc:") :]
    if rest.startswith("postgresql://"):
        parts = urlsplit(rest)
        database = unquote(parts.path.lstrip("/"))
        port = parts.port or 5432
        return f"postgres://{parts.hostname}:{port}", f"{database}.{schema or 'public'}.{table}"
    if rest.startswith("snowflake://"):
        parts = urlsplit(rest)
        host = (parts.hostname or "").lower()
        account = host.removesuffix(".snowflakecomputing.com")
        query = {key.lower(): values[0] for key, values in parse_qs(parts.query).items()}
        database = query.get("db", "")
        return f"snowflake://{account}", f"{database}.{schema or query.get('schema', 'PUBLIC')}.{table}"
    if rest.startswith("sqlserver://"):
        address, _, _properties = rest[len("sqlserver://") :].partition(";")
        host, _, sql_port = address.partition(":")
        return f"sqlserver://{host}:{sql_port or 1433}", f"{schema or 'dbo'}.{table}"
    return None


class _Namer:
    """Name the datasets of one job; caches the data stores it looks up."""

    def __init__(self, operator: DataRobotBatchPredictionOperator, hook: DataRobotHook) -> None:
        self.operator = operator
        self.hook = hook
        self._jdbc_urls: dict[str, str | None] = {}

    def jdbc_url(self, data_store_id: str) -> str | None:
        if data_store_id not in self._jdbc_urls:
            store = self.hook.request(
                "GET", f"{Route.DATA_STORES}{data_store_id}/", what=f"Get data store {data_store_id}"
            ).json()
            self._jdbc_urls[data_store_id] = (store.get("params") or {}).get("jdbcUrl")
        return self._jdbc_urls[data_store_id]

    def bigquery_project(self) -> str | None:
        conn_id = getattr(self.operator, "gcp_conn_id", None)
        if not conn_id:
            return None
        from airflow.sdk import BaseHook

        extra = BaseHook.get_connection(conn_id).extra_dejson
        return extra.get("project") or extra.get("extra__google_cloud_platform__project")

    def name(self, settings: Mapping[str, Any], side: str) -> tuple[str, str] | None:
        kind = settings.get("type")
        if kind == "localFile":
            path = self.operator.input_file if side == "intake" else self.operator.output_file
            return (f"file://{socket.gethostname()}", os.path.abspath(path)) if path else None
        if kind in ("s3", "gcp"):
            return split_object_url(str(settings.get("url", "")))
        if kind == "azure":
            return azure_blob_dataset(str(settings.get("url", "")))
        if kind == "dataset":
            host = urlsplit(self.hook.details.endpoint).netloc
            return f"datarobot://{host}", f"datasets/{settings.get('datasetId')}"
        if kind == "bigquery":
            dataset, table = str(settings.get("dataset", "")), settings.get("table")
            if "." not in dataset:
                project = self.bigquery_project()
                dataset = f"{project}.{dataset}" if project else dataset
            return "bigquery", f"{dataset}.{table}"
        if kind in ("jdbc", "snowflake", "synapse"):
            table, store_id = settings.get("table"), settings.get("dataStoreId")
            if not table or not store_id:
                return None  # a query: no table to name
            jdbc_url = self.jdbc_url(str(store_id))
            return jdbc_dataset(jdbc_url, settings.get("schema"), str(table)) if jdbc_url else None
        return None


@cache
def _facet_classes() -> tuple[type, type]:
    """The custom facets, defined on first use (``attrs`` and the client are imported lazily)."""
    import attr
    from openlineage.client.facet_v2 import JobFacet, RunFacet

    @attr.define
    class DataRobotDeploymentJobFacet(JobFacet):
        """The DataRobot deployment a batch prediction task scores with."""

        deploymentId: str | None = attr.field(default=None)
        endpoint: str | None = attr.field(default=None)

        @staticmethod
        def _get_schema() -> str:
            return f"{FACET_SCHEMA_BASE}#datarobotdeployment"

    @attr.define
    class DataRobotBatchPredictionJobRunFacet(RunFacet):
        """The batch prediction job of one task try."""

        jobId: str | None = attr.field(default=None)
        jobUrl: str | None = attr.field(default=None)
        status: str | None = attr.field(default=None)
        scoredRows: int | None = attr.field(default=None)
        failedRows: int | None = attr.field(default=None)

        @staticmethod
        def _get_schema() -> str:
            return f"{FACET_SCHEMA_BASE}#datarobotbatchpredictionjob"

    return DataRobotDeploymentJobFacet, DataRobotBatchPredictionJobRunFacet


def get_openlineage_facets_on_complete(operator: DataRobotBatchPredictionOperator) -> OperatorLineage:
    """Build the lineage of the job ``operator`` ran: its input, output, deployment and job.

    Reads the job (and the data stores it names) from the API. Returns empty lineage when no job
    was submitted or the job cannot be read; a dataset it cannot name is left out (logged).
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    job_id = operator.job_id
    if not job_id:
        return OperatorLineage()
    from airflow_batchpred.hooks.datarobot import job_url

    hook = operator.hook
    try:
        job = hook.get_job(job_id)
    except Exception:
        log.warning("OpenLineage: cannot read job %s; no lineage for it", job_id, exc_info=True)
        return OperatorLineage()
    spec = job.get("jobSpec") or {}
    namer = _Namer(operator, hook)
    datasets: dict[str, list[Any]] = {"intake": [], "output": []}
    for side, key in (("intake", "intakeSettings"), ("output", "outputSettings")):
        settings = spec.get(key) or {"type": "localFile"}
        try:
            named = namer.name(settings, side)
        except Exception:
            log.warning("OpenLineage: cannot name the %s of job %s", side, job_id, exc_info=True)
            named = None
        if named is None:
            log.info("OpenLineage: no dataset for the %s (%s) of job %s", side, settings.get("type"), job_id)
        else:
            datasets[side].append(Dataset(namespace=named[0], name=named[1]))
    deployment_facet, job_facet = _facet_classes()
    return OperatorLineage(
        inputs=datasets["intake"],
        outputs=datasets["output"],
        job_facets={
            "datarobotDeployment": deployment_facet(
                deploymentId=spec.get("deploymentId") or operator.deployment_id,
                endpoint=hook.details.endpoint,
            )
        },
        run_facets={
            "datarobotBatchPredictionJob": job_facet(
                jobId=str(job.get("id", job_id)),
                jobUrl=job_url(job),
                status=job.get("status"),
                scoredRows=job.get("scoredRows"),
                failedRows=job.get("failedRows"),
            )
        },
    )
