"""``datasets/``: a minimal AI Catalog. A dataset is created from an uploaded CSV file and is
COMPLETED as soon as the upload is stored; ``dataset`` intake scores it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from airflow_batchpred.contract import CsvSettings
from airflow_batchpred.server.adapters.dataset import dataset_file, resolve_version
from airflow_batchpred.server.csv_io import CsvFormatError, read_header
from airflow_batchpred.server.errors import ApiError
from airflow_batchpred.server.jobs.record import CREATED_BY
from airflow_batchpred.server.routes.common import api_base, check_id, paginate, services, stored_or_404
from airflow_batchpred.server.services import Services
from airflow_batchpred.server.store import DATASET, DATASET_VERSION, iso, new_id, utc_now

router = APIRouter()

_COPY_BUFFER_BYTES = 1 << 20


def _dataset(svc: Services, dataset_id: str) -> dict[str, Any]:
    return stored_or_404(svc, DATASET, dataset_id, "Dataset")


async def _receive_file(request: Request) -> tuple[str, Path]:
    """Take the multipart field ``file`` from the request into a temporary file in the data dir."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(
            406,
            "Send the file as multipart/form-data with a field named 'file', "
            f"got {content_type or 'none'!r}.",
        )
    form = await request.form(max_files=1, max_fields=10)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(
                422, "The form has no file field named 'file'.", {"file": "this field is required"}
            )
        svc = services(request)
        incoming = svc.settings.data_dir / "datasets" / "incoming" / f"{new_id()}.csv"
        incoming.parent.mkdir(parents=True, exist_ok=True)
        await run_in_threadpool(_copy, upload.file, incoming)
        return upload.filename or "data.csv", incoming
    finally:
        await form.close()


def _copy(source: BinaryIO, target: Path) -> None:
    with open(target, "wb") as sink:
        shutil.copyfileobj(source, sink, _COPY_BUFFER_BYTES)


def _profile(path: Path) -> tuple[int, int, int]:
    """``(size, rows, columns)`` of a stored CSV; raises :class:`CsvFormatError` if unreadable."""
    with open(path, "rb") as stream:
        names, _head = read_header(stream, CsvSettings())
    newlines = 0
    last = b"\n"
    with open(path, "rb") as stream:
        while block := stream.read(_COPY_BUFFER_BYTES):
            newlines += block.count(b"\n")
            last = block[-1:]
    rows = newlines - 1 + (0 if last == b"\n" else 1)
    return path.stat().st_size, max(rows, 0), len(names)


async def _store_version(svc: Services, dataset_id: str, name: str, incoming: Path) -> dict[str, Any]:
    try:
        size, rows, columns = await run_in_threadpool(_profile, incoming)
    except CsvFormatError as exc:
        incoming.unlink(missing_ok=True)
        raise ApiError(422, f"The file cannot be read as CSV: {exc}") from None
    version_id = new_id()
    target = dataset_file(svc, dataset_id, version_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming.replace(target)
    now = iso(utc_now())
    version = {
        "datasetId": dataset_id,
        "versionId": version_id,
        "name": name,
        "categories": ["PREDICTION"],
        "creationDate": now,
        "createdBy": CREATED_BY["username"],
        "dataPersisted": True,
        "isDataEngineEligible": False,
        "isLatestVersion": True,
        "isSnapshot": True,
        "processingState": "COMPLETED",
        "datasetSize": size,
        "rowCount": rows,
        "featureCount": columns,
        "sampleSize": None,
        "description": "",
        "dataSourceType": "file",
        "uri": name,
        "error": "",
        "tags": [],
        "lastModificationDate": now,
    }
    for previous in svc.store.list(DATASET_VERSION):
        if previous["datasetId"] == dataset_id and previous["isLatestVersion"]:
            previous["isLatestVersion"] = False
            svc.store.put(DATASET_VERSION, previous["versionId"], previous)
    svc.store.put(DATASET_VERSION, version_id, version)
    svc.store.put(DATASET, dataset_id, version)
    return version


def _created(request: Request, version: dict[str, Any]) -> JSONResponse:
    status_url = f"{api_base(request)}/status/{version['versionId']}/"
    body = {
        "catalogId": version["datasetId"],
        "catalogVersionId": version["versionId"],
        "statusId": version["versionId"],
    }
    return JSONResponse(body, status_code=202, headers={"Location": status_url})


@router.post("/datasets/fromFile/")
async def create_dataset(request: Request) -> JSONResponse:
    svc = services(request)
    name, incoming = await _receive_file(request)
    return _created(request, await _store_version(svc, new_id(), name, incoming))


@router.post("/datasets/{dataset_id}/versions/fromFile/")
async def create_dataset_version(request: Request, dataset_id: str) -> JSONResponse:
    svc = services(request)
    _dataset(svc, dataset_id)
    name, incoming = await _receive_file(request)
    return _created(request, await _store_version(svc, dataset_id, name, incoming))


@router.get("/status/{status_id}/")
async def get_status(request: Request, status_id: str) -> JSONResponse:
    svc = services(request)
    version = svc.store.get(DATASET_VERSION, check_id(status_id, "Status"))
    if version is None:
        raise ApiError(404, f"Status {status_id} does not exist.")
    location = f"{api_base(request)}/datasets/{version['datasetId']}/"
    return JSONResponse({"status": "COMPLETED"}, status_code=303, headers={"Location": location})


@router.get("/datasets/")
async def list_datasets(request: Request) -> dict[str, Any]:
    return paginate(request, services(request).store.list(DATASET))


@router.get("/datasets/{dataset_id}/")
async def get_dataset(request: Request, dataset_id: str) -> dict[str, Any]:
    return _dataset(services(request), dataset_id)


@router.get("/datasets/{dataset_id}/versions/")
async def list_versions(request: Request, dataset_id: str) -> dict[str, Any]:
    svc = services(request)
    _dataset(svc, dataset_id)
    versions = [v for v in svc.store.list(DATASET_VERSION) if v["datasetId"] == dataset_id]
    return paginate(request, versions)


@router.get("/datasets/{dataset_id}/versions/{version_id}/")
async def get_version(request: Request, dataset_id: str, version_id: str) -> dict[str, Any]:
    svc = services(request)
    _dataset(svc, dataset_id)
    return resolve_version(svc, dataset_id, check_id(version_id, "Dataset version"))
