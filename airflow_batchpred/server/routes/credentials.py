"""``credentials/``: stored secrets for adapters; the secret fields never leave the server."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from airflow_batchpred.contract import SECRET_CREDENTIAL_FIELDS
from airflow_batchpred.server.errors import ApiError
from airflow_batchpred.server.routes.common import (
    paginate,
    read_json_object,
    services,
    stored_or_404,
)
from airflow_batchpred.server.services import Services
from airflow_batchpred.server.store import CREDENTIAL, iso, new_id, utc_now

router = APIRouter()

_PUBLIC_FIELDS = ("credentialId", "name", "credentialType", "creationDate", "description")
_DESCRIPTIVE_FIELDS = {"name", "description", "credentialType"}
#: Non-secret fields a credential may carry (kept, not echoed: DataRobot echoes none of them).
_SECRET_FIELDS = SECRET_CREDENTIAL_FIELDS | {
    "user",
    "awsAccessKeyId",
    "configId",
    "clientId",
    "snowflakeAccountName",
    "azureTenantId",
    "enterpriseId",
    "publicKeyId",
    "oauthScopes",
    "authenticationId",
    "databricksAccessToken",
}


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record[key] for key in _PUBLIC_FIELDS}


def _get(svc: Services, credential_id: str) -> dict[str, Any]:
    return stored_or_404(svc, CREDENTIAL, credential_id, "Credential")


def _name_taken(svc: Services, name: str, except_id: str | None = None) -> bool:
    return any(r["name"] == name and r["credentialId"] != except_id for r in svc.store.list(CREDENTIAL))


def _split(body: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - _DESCRIPTIVE_FIELDS - _SECRET_FIELDS)
    if unknown:
        raise ApiError(
            422,
            f"Unknown credential field(s): {', '.join(unknown)}",
            {name: "unknown field" for name in unknown},
        )
    return {key: value for key, value in body.items() if key in _SECRET_FIELDS}


@router.post("/credentials/")
async def create_credential(request: Request) -> JSONResponse:
    svc = services(request)
    body = await read_json_object(request)
    problems = {
        key: "this field is required"
        for key in ("name", "credentialType")
        if not isinstance(body.get(key), str) or not body[key]
    }
    if problems:
        raise ApiError(
            422, "Invalid field data: " + ", ".join(f"{k} is required" for k in problems), problems
        )
    if body.get("description") is not None and not isinstance(body["description"], str):
        raise ApiError(422, "description must be a string", {"description": "must be a string"})
    secret = _split(body)
    if _name_taken(svc, body["name"]):
        raise ApiError(409, f"A credential named {body['name']!r} already exists.")
    record = {
        "credentialId": new_id(),
        "name": body["name"],
        "credentialType": body["credentialType"],
        "creationDate": iso(utc_now()),
        "description": body.get("description") or "",
    }
    svc.store.put(CREDENTIAL, record["credentialId"], record)
    svc.store.put_secret(CREDENTIAL, record["credentialId"], secret)
    return JSONResponse(_public(record), status_code=201)


@router.get("/credentials/")
async def list_credentials(request: Request) -> dict[str, Any]:
    records = services(request).store.list(CREDENTIAL)
    types = request.query_params.getlist("types")
    if types:
        records = [r for r in records if r["credentialType"] in types]
    return paginate(request, records, _public)


@router.get("/credentials/{credential_id}/")
async def get_credential(request: Request, credential_id: str) -> dict[str, Any]:
    return _public(_get(services(request), credential_id))


@router.patch("/credentials/{credential_id}/")
async def update_credential(request: Request, credential_id: str) -> dict[str, Any]:
    svc = services(request)
    record = _get(svc, credential_id)
    body = await read_json_object(request)
    if not body:
        raise ApiError(422, "Nothing to update: send a name, a description or secret fields.")
    if "credentialType" in body and body["credentialType"] != record["credentialType"]:
        raise ApiError(
            422,
            "credentialType cannot change; create a new credential instead.",
            {"credentialType": "cannot change"},
        )
    secret_update = _split(body)
    if "name" in body:
        if not isinstance(body["name"], str) or not body["name"]:
            raise ApiError(422, "name must be a non-empty string", {"name": "must be a non-empty string"})
        if _name_taken(svc, body["name"], except_id=record["credentialId"]):
            raise ApiError(409, f"A credential named {body['name']!r} already exists.")
        record["name"] = body["name"]
    if "description" in body:
        record["description"] = body["description"] or ""
    svc.store.put(CREDENTIAL, record["credentialId"], record)
    if secret_update:
        secret = svc.store.get_secrets(CREDENTIAL, record["credentialId"])
        secret.update(secret_update)
        svc.store.put_secret(CREDENTIAL, record["credentialId"], secret)
    return _public(record)


@router.delete("/credentials/{credential_id}/")
async def delete_credential(request: Request, credential_id: str) -> Response:
    svc = services(request)
    record = _get(svc, credential_id)
    in_use = [
        job.id
        for job in svc.book.all()
        if not job.is_terminal and record["credentialId"] in _referenced_ids(job.spec)
    ]
    if in_use:
        raise ApiError(409, f"Credential {credential_id} is in use by running job(s) {', '.join(in_use)}.")
    svc.store.delete(CREDENTIAL, record["credentialId"])
    return Response(status_code=204)


def _referenced_ids(spec: dict[str, Any]) -> set[str]:
    ids = set()
    for side in ("intakeSettings", "outputSettings"):
        settings = spec.get(side) or {}
        for key in ("credentialId", "cloudStorageCredentialId"):
            if settings.get(key):
                ids.add(settings[key])
    return ids
