"""Local-file data flow: ``csvUpload/`` (single and multipart) and ``download/``.

Request and response bodies are streamed: an upload goes to a spool file piece by piece while the
job may already be scoring it, and a download follows the result file as it grows.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from airflow_batchpred.contract import CsvSettings, JobStatus
from airflow_batchpred.server.adapters.local_file import result_paths
from airflow_batchpred.server.csv_io import CsvFormatError, read_header
from airflow_batchpred.server.errors import ApiError
from airflow_batchpred.server.jobs.record import LOCAL_FILE, JobRecord
from airflow_batchpred.server.jobs.uploads import Spool, UploadState
from airflow_batchpred.server.routes.batch_predictions import get_job
from airflow_batchpred.server.routes.common import services
from airflow_batchpred.server.services import Services

router = APIRouter()

_WRITE_BUFFER_BYTES = 256 * 1024
_DOWNLOAD_CHUNK_BYTES = 256 * 1024
_POLL_SECONDS = 0.05


def _require_csv(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "text/csv":
        raise ApiError(
            406,
            f"Content-Type must be text/csv (parameters such as '; charset=utf-8' are fine), "
            f"got {content_type or 'none'!r}.",
        )


def _upload_target(svc: Services, job_id: str) -> tuple[JobRecord, UploadState]:
    record = get_job(svc, job_id)
    if record.intake_type != LOCAL_FILE:
        raise ApiError(
            422, f"Job {job_id} reads its data from {record.intake_type!r}; it does not take uploaded data."
        )
    return record, svc.uploads.state(record.id, svc.job_dir(record.id))


def _refuse_if_finished(record: JobRecord) -> None:
    if record.is_terminal:
        raise ApiError(422, f"Job {record.id} is {record.status}: {record.status_details}")


@router.put("/batchPredictions/{job_id}/csvUpload/")
async def upload_csv(request: Request, job_id: str) -> Response:
    svc = services(request)
    record, state = _upload_target(svc, job_id)
    if record.is_multipart:
        raise ApiError(
            422,
            f"Job {job_id} was created for a multipart upload: PUT csvUpload/part/<n>/ for each part, "
            "then POST csvUpload/finalizeMultipart/.",
        )
    _require_csv(request)
    with state.lock:
        if record.upload_started or state.spool is not None:
            raise ApiError(409, f"An upload has already begun for job {job_id}; a job takes its data once.")
        _refuse_if_finished(record)
        declared = request.headers.get("content-length", "")
        expected_size = int(declared) if declared.isdigit() else None
        spool = state.spool = Spool(state.job_dir / "upload.csv", expected_size)
        svc.book.update(record.id, lambda target: setattr(target, "upload_started", True))
    spool.open()
    queue_early = record.spec.get("intakeSettings", {}).get("async", True) is not False
    if queue_early:
        svc.runner.submit(record.id)
    cancelled = svc.book.cancel_flag(record.id)
    buffer = bytearray()
    try:
        async for piece in request.stream():
            if cancelled.is_set():
                break
            buffer += piece
            if len(buffer) >= _WRITE_BUFFER_BYTES:
                spool.append(bytes(buffer))
                buffer.clear()
        if buffer and not cancelled.is_set():
            spool.append(bytes(buffer))
    except ClientDisconnect:
        spool.fail("the upload was interrupted: the connection closed before all data arrived")
        svc.book.finish(record.id, JobStatus.ABORTED, "Job aborted: the upload was interrupted")
        raise ApiError(422, "The upload was interrupted before all data arrived.") from None
    spool.finish()
    if cancelled.is_set():
        current = svc.book.get(record.id)
        raise ApiError(
            422, f"Job {job_id} was aborted during the upload: {current.status_details if current else ''}"
        )
    if not queue_early:
        svc.runner.submit(record.id)
    await _await_verdict(svc, record.id, spool)
    return Response(status_code=202)


async def _await_verdict(svc: Services, job_id: str, spool: Spool) -> None:
    """Answer 422 when the uploaded data turns out unreadable within a short wait.

    A running job reads the data soon after it arrives; a job still queued gets a quick check of
    the header. Problems found later still end the job ABORTED with the reason.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + svc.settings.upload_verdict_seconds
    checked_header = False
    while True:
        record = svc.book.get(job_id)
        assert record is not None
        if record.status in (JobStatus.ABORTED.value, JobStatus.FAILED.value):
            raise ApiError(422, f"The uploaded data was rejected: {record.status_details}")
        if record.status == JobStatus.COMPLETED.value or (record.intake_size or 0) >= spool.size > 0:
            return
        if record.status == JobStatus.INITIALIZING.value and not checked_header:
            checked_header = True
            problem = await run_in_threadpool(_header_problem, spool.path, record)
            if problem:
                svc.book.finish(job_id, JobStatus.ABORTED, f"Job aborted: {problem}")
                raise ApiError(422, f"The uploaded data was rejected: {problem}")
        if loop.time() >= deadline:
            return
        await asyncio.sleep(_POLL_SECONDS)


def _header_problem(path: Path, record: JobRecord) -> str | None:
    settings = CsvSettings.model_validate(record.spec.get("csvSettings") or {})
    try:
        with open(path, "rb") as stream:
            read_header(stream, settings)
    except CsvFormatError as exc:
        return str(exc)
    except FileNotFoundError:
        return None  # the job started meanwhile, read the data and removed it
    return None


@router.put("/batchPredictions/{job_id}/csvUpload/part/{part_number}/")
async def upload_part(request: Request, job_id: str, part_number: str) -> Response:
    svc = services(request)
    record, state = _upload_target(svc, job_id)
    if not record.is_multipart:
        raise ApiError(
            422,
            f"Job {job_id} was not created for a multipart upload: PUT the whole file to csvUpload/ "
            "or create the job with intakeSettings.multipart true.",
        )
    if not part_number.isdigit():
        raise ApiError(422, f"Part number must be a non-negative integer, got {part_number!r}.")
    _require_csv(request)
    # upload_started is set by the finalize call and, unlike the upload state, survives the job.
    if state.finalized or record.upload_started:
        raise ApiError(409, f"The multipart upload of job {job_id} was already finalized; no more parts.")
    _refuse_if_finished(record)
    state.parts_dir.mkdir(parents=True, exist_ok=True)
    index = int(part_number)
    final_path = state.parts_dir / f"{index:08d}.csv"
    temporary = final_path.with_suffix(".uploading")
    sink: BinaryIO = await run_in_threadpool(open, temporary, "wb")
    try:
        buffer = bytearray()
        async for piece in request.stream():
            buffer += piece
            if len(buffer) >= _WRITE_BUFFER_BYTES:
                sink.write(buffer)
                buffer.clear()
        sink.write(buffer)
    except ClientDisconnect:
        sink.close()
        temporary.unlink(missing_ok=True)
        raise ApiError(422, f"The upload of part {index} was interrupted.") from None
    sink.close()
    os.replace(temporary, final_path)
    with state.lock:
        if state.finalized:
            raise ApiError(409, f"The multipart upload of job {job_id} was finalized during this part.")
        state.parts[index] = final_path
    return Response(status_code=202)


@router.post("/batchPredictions/{job_id}/csvUpload/finalizeMultipart/")
async def finalize_multipart(request: Request, job_id: str) -> Response:
    svc = services(request)
    record = get_job(svc, job_id)
    if record.intake_type != LOCAL_FILE or not record.is_multipart:
        raise ApiError(409, f"Only multipart jobs can be finalized; job {job_id} is not a multipart upload.")
    state = svc.uploads.state(record.id, svc.job_dir(record.id))
    with state.lock:
        if state.finalized or record.upload_started:
            raise ApiError(409, f"The multipart upload of job {job_id} was already finalized.")
        _refuse_if_finished(record)
        if not state.parts:
            raise ApiError(422, f"No data was uploaded for job {job_id}: PUT csvUpload/part/0/ first.")
        state.finalized = True
    svc.book.update(record.id, lambda target: setattr(target, "upload_started", True))
    svc.runner.submit(record.id)
    return Response(status_code=202)


def _accepts_csv(accept: str) -> bool:
    if not accept.strip():
        return True
    for item in accept.split(","):
        media = item.split(";", 1)[0].strip().lower()
        if media in ("*/*", "text/*", "text/csv"):
            return True
    return False


@router.get("/batchPredictions/{job_id}/download/")
async def download(request: Request, job_id: str) -> StreamingResponse:
    svc = services(request)
    record = get_job(svc, job_id)
    if record.output_type != LOCAL_FILE:
        raise ApiError(404, f"Job {job_id} writes to {record.output_type!r}; there is nothing to download.")
    if record.status in (JobStatus.ABORTED.value, JobStatus.FAILED.value):
        raise ApiError(422, f"Job {job_id} was {record.status.lower()}: {record.status_details}")
    if record.status == JobStatus.INITIALIZING.value:
        raise ApiError(
            404,
            f"Job {job_id} does not exist or is not completed: it is INITIALIZING; the download "
            "is available once it is RUNNING.",
        )
    if not _accepts_csv(request.headers.get("accept", "")):
        raise ApiError(406, "Not acceptable: the download is text/csv; send Accept: text/csv or */*.")
    return StreamingResponse(
        _follow_result(svc, record.id),
        media_type="text/csv",
        headers={"Content-Disposition": f"attachment;filename=result-{record.id}.csv"},
    )


async def _follow_result(svc: Services, job_id: str) -> AsyncIterator[bytes]:
    """Yield the result file as it grows, until the job ends."""
    partial, final = result_paths(svc.job_dir(job_id))
    source = await _open_result(svc, job_id, partial, final)
    if source is None:
        return
    try:
        while True:
            data = source.read(_DOWNLOAD_CHUNK_BYTES)
            if data:
                yield data
                continue
            record = svc.book.get(job_id)
            if record is not None and record.status == JobStatus.COMPLETED.value:
                # The writer closed the file before the job turned COMPLETED: drain what is left.
                while data := source.read(_DOWNLOAD_CHUNK_BYTES):
                    yield data
                return
            if record is None or record.is_terminal:
                return
            await asyncio.sleep(_POLL_SECONDS)
    finally:
        source.close()


async def _open_result(svc: Services, job_id: str, partial: Path, final: Path) -> BinaryIO | None:
    while True:
        for path in (final, partial):
            try:
                return open(path, "rb")
            except FileNotFoundError:
                continue
        record = svc.book.get(job_id)
        if record is None or (record.is_terminal and not final.exists()):
            return None
        await asyncio.sleep(_POLL_SECONDS)
