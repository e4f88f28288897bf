"""``batchPredictions/``: create, list, read, update and abort jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from airflow_batchpred.contract import JobSettings, JobStatus, SettingsValidationError, parse_job_settings
from airflow_batchpred.server.adapters import INTAKE_ADAPTERS, OUTPUT_ADAPTERS
from airflow_batchpred.server.errors import ApiError, nest_problems
from airflow_batchpred.server.jobs.record import LOCAL_FILE, JobRecord
from airflow_batchpred.server.jobs.runner import score_options
from airflow_batchpred.server.jobs.spec import job_spec, stored_settings
from airflow_batchpred.server.models import ModelError
from airflow_batchpred.server.routes.common import (
    api_base,
    check_id,
    paginate,
    read_json_object,
    services,
)
from airflow_batchpred.server.services import Services
from airflow_batchpred.server.store import iso, new_id, parse_iso, utc_now

router = APIRouter()

_ORDERINGS = ("created", "-created", "status", "-status")
_TYPE_SPELLINGS = {"local_file": LOCAL_FILE, "localfile": LOCAL_FILE}


def get_job(svc: Services, job_id: str) -> JobRecord:
    """The job, or 404 naming it."""
    record = svc.book.get(check_id(job_id, "Batch prediction job"))
    if record is None:
        raise ApiError(
            404, f"Batch prediction job {job_id} does not exist or was not submitted to the queue."
        )
    return record


def render(request: Request, record: JobRecord) -> dict[str, Any]:
    svc = services(request)
    return record.to_json(api_base(request), svc.runner.queue_position(record.id))


def _validated_settings(body: dict[str, Any]) -> JobSettings:
    for key, label in (
        ("modelId", "modelId"),
        ("model_id", "modelId"),
        ("modelPackageId", "modelPackageId"),
        ("model_package_id", "modelPackageId"),
    ):
        if body.get(key):
            raise ApiError(
                422,
                f"The local server scores deployments only: replace {label} with deploymentId "
                "(GET deployments/ lists them).",
                {label: "not supported by the local server; use deploymentId"},
            )
    try:
        settings = parse_job_settings(body, camel=True)
    except SettingsValidationError as exc:
        summary = "; ".join(f"{path}: {message}" for path, message in exc.problems)
        raise ApiError(422, f"Invalid field data: {summary}", nest_problems(exc.problems)) from None
    for field, registry, kind in (
        ("intakeSettings", INTAKE_ADAPTERS, settings.intake_settings.type),
        ("outputSettings", OUTPUT_ADAPTERS, settings.output_settings.type),
    ):
        if kind not in registry:
            supported = ", ".join(sorted(registry))
            message = f"{field}.type {kind!r} is not supported by this server (supported: {supported})"
            raise ApiError(422, f"Invalid field data: {message}", {field: {"type": message}})
    return settings


@router.post("/batchPredictions/")
async def create_job(request: Request) -> JSONResponse:
    settings = _validated_settings(await read_json_object(request))
    return _accept_job(request, settings)


def _accept_job(request: Request, settings: JobSettings) -> JSONResponse:
    """Check what only the server can check, record the job and queue it if its data is ready."""
    svc = services(request)
    deployment_id = settings.deployment_id or ""
    if svc.models.get(deployment_id) is None:
        known = ", ".join(info.id for info in svc.models.list())
        raise ApiError(404, f"Deployment {deployment_id} does not exist. Known deployments: {known}.")
    try:
        svc.models.scorer(deployment_id).validate(score_options(settings))
    except ModelError as exc:
        raise ApiError(422, f"Invalid field data: {exc}") from None
    intake_cls = INTAKE_ADAPTERS[settings.intake_settings.type]
    intake_cls.check(settings.intake_settings, svc)
    OUTPUT_ADAPTERS[settings.output_settings.type].check(settings.output_settings, svc)
    now = iso(utc_now())
    record = JobRecord(
        id=new_id(),
        created=now,
        spec=job_spec(settings),
        settings=stored_settings(settings),
        deployment_id=deployment_id,
        intake_type=settings.intake_settings.type,
        output_type=settings.output_settings.type,
        logs=[f"Job created by local from {request.client.host if request.client else 'unknown'} at {now}"],
        intake_dataset_display_name=intake_cls.display_name(settings.intake_settings, svc),
    )
    if record.intake_type != LOCAL_FILE:
        record.status_details = "Job created, waiting in the queue"
    svc.book.add(record)
    if record.intake_type != LOCAL_FILE:
        svc.runner.submit(record.id)
    body = render(request, record)
    return JSONResponse(body, status_code=202, headers={"Location": body["links"]["self"]})


@router.post("/batchPredictions/fromExisting/")
async def copy_job(request: Request) -> JSONResponse:
    """Queue a new job with the settings of an existing one (local-file intake needs a new upload)."""
    body = await read_json_object(request)
    source_id = body.get("predictionJobId")
    if not isinstance(source_id, str) or not source_id:
        raise ApiError(422, "predictionJobId is required", {"predictionJobId": "this field is required"})
    source = get_job(services(request), source_id)
    return _accept_job(request, _validated_settings(source.settings))


@router.get("/batchPredictions/")
async def list_jobs(request: Request) -> dict[str, Any]:
    svc = services(request)
    query = request.query_params
    records = svc.book.all()
    statuses = query.getlist("status")
    unknown = [value for value in statuses if value not in JobStatus.__members__]
    if unknown:
        allowed = ", ".join(JobStatus.__members__)
        raise ApiError(
            422, f"Unknown status {unknown[0]!r}; use one of {allowed}", {"status": f"one of {allowed}"}
        )
    if statuses:
        records = [r for r in records if r.status in statuses]
    if query.get("deploymentId"):
        records = [r for r in records if r.deployment_id == query["deploymentId"]]
    if query.get("jobId"):
        records = [r for r in records if r.id == query["jobId"]]
    for param, attribute in (("intakeType", "intake_type"), ("outputType", "output_type")):
        if query.get(param):
            wanted = _TYPE_SPELLINGS.get(query[param].lower(), query[param])
            records = [r for r in records if getattr(r, attribute) == wanted]
    start, end = _time_window(query.get("startDateTime"), query.get("endDateTime"), query.get("cutoffHours"))
    if start is not None:
        records = [r for r in records if parse_iso(r.created) >= start]
    if end is not None:
        records = [r for r in records if parse_iso(r.created) <= end]
    order = query.get("orderBy") or "-created"
    if order not in _ORDERINGS:
        raise ApiError(
            422, f"orderBy must be one of {', '.join(_ORDERINGS)}", {"orderBy": "unknown ordering"}
        )
    key = order.lstrip("-")
    records.sort(key=lambda r: (getattr(r, key), r.created), reverse=order.startswith("-"))
    return paginate(request, records, lambda record: render(request, record))


def _time_window(start: str | None, end: str | None, cutoff_hours: str | None) -> tuple[Any, Any]:
    def parse(name: str, value: str | None) -> Any:
        if not value:
            return None
        try:
            return parse_iso(value)
        except ValueError:
            raise ApiError(422, f"{name} must be an ISO-8601 date-time", {name: "not a date-time"}) from None

    start_at, end_at = parse("startDateTime", start), parse("endDateTime", end)
    if start_at is None and cutoff_hours:
        try:
            start_at = utc_now() - timedelta(hours=float(cutoff_hours))
        except ValueError:
            raise ApiError(422, "cutoffHours must be a number", {"cutoffHours": "not a number"}) from None
    return start_at, end_at


@router.get("/batchPredictions/{job_id}/")
async def get_job_route(request: Request, job_id: str) -> JSONResponse:
    # Clients poll this route; answering a JSONResponse skips FastAPI's response-model encoding.
    return JSONResponse(render(request, get_job(services(request), job_id)))


_COUNTER_FIELDS = {
    "scoredRows": "scored_rows",
    "failedRows": "failed_rows",
    "skippedRows": "skipped_rows",
    "jobIntakeSize": "intake_size",
    "jobOutputSize": "output_size",
}


@router.patch("/batchPredictions/{job_id}/")
async def patch_job(request: Request, job_id: str) -> dict[str, Any]:
    svc = services(request)
    record = get_job(svc, job_id)
    body = await read_json_object(request)
    allowed = {"hidden", "logs", *_COUNTER_FIELDS}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(
            422,
            f"Cannot update {', '.join(unknown)} on the local server; "
            f"updatable: {', '.join(sorted(allowed))}",
            {name: "not updatable" for name in unknown},
        )
    if not body:
        raise ApiError(422, "Nothing to update: send at least one of " + ", ".join(sorted(allowed)))
    if "hidden" in body and not isinstance(body["hidden"], bool):
        raise ApiError(422, "hidden must be true or false", {"hidden": "must be a boolean"})
    if body.get("hidden") and not record.is_terminal:
        raise ApiError(
            409, f"Job {job_id} cannot be hidden: it is {record.status}, not in a deletable state."
        )
    for name in _COUNTER_FIELDS:
        if name in body and (not isinstance(body[name], int) or body[name] < 0):
            raise ApiError(
                422, f"{name} must be a non-negative integer", {name: "must be a non-negative integer"}
            )
    logs = body.get("logs")
    if logs is not None and not (isinstance(logs, list) and all(isinstance(line, str) for line in logs)):
        raise ApiError(422, "logs must be a list of strings", {"logs": "must be a list of strings"})

    def change(target: JobRecord) -> None:
        if "hidden" in body:
            target.hidden = iso(utc_now()) if body["hidden"] else None
        for name, attribute in _COUNTER_FIELDS.items():
            if name in body:
                setattr(target, attribute, body[name])
        if logs:
            target.logs.extend(logs)

    return render(request, svc.book.update(record.id, change))


@router.delete("/batchPredictions/{job_id}/")
async def delete_job(request: Request, job_id: str) -> Response:
    svc = services(request)
    record = get_job(svc, job_id)
    if not svc.book.finish(record.id, JobStatus.ABORTED, f"Job aborted by request at {iso(utc_now())}"):
        raise ApiError(409, f"Job {job_id} cannot be aborted: it is already {record.status.lower()}.")
    return Response(status_code=202)
