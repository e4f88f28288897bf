"""``externalDataStores/``: JDBC (and connector) data stores referenced by database adapters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from airflow_batchpred.server.errors import ApiError
from airflow_batchpred.server.jobs.record import CREATED_BY
from airflow_batchpred.server.routes.common import (
    paginate,
    read_json_object,
    services,
    stored_or_404,
)
from airflow_batchpred.server.services import Services
from airflow_batchpred.server.store import DATA_STORE, iso, new_id, utc_now

router = APIRouter()

_TYPES = ("jdbc", "dr-database-v1", "dr-connector-v1")
_PARAM_FIELDS = {"driverId", "jdbcUrl", "fields", "jdbcFields", "connectorId"}


def _get(svc: Services, data_store_id: str) -> dict[str, Any]:
    return stored_or_404(svc, DATA_STORE, data_store_id, "Data store")


def _check_params(params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise ApiError(
            422,
            'params must be an object such as {"driverId": ..., "jdbcUrl": ...}',
            {"params": "must be an object"},
        )
    unknown = sorted(set(params) - _PARAM_FIELDS)
    if unknown:
        raise ApiError(
            422,
            f"Unknown params field(s): {', '.join(unknown)}",
            {"params": {name: "unknown field" for name in unknown}},
        )
    return params


@router.post("/externalDataStores/")
async def create_data_store(request: Request) -> dict[str, Any]:
    svc = services(request)
    body = await read_json_object(request)
    problems = {
        key: "this field is required" for key in ("type", "canonicalName", "params") if not body.get(key)
    }
    if problems:
        raise ApiError(
            422, "Invalid field data: " + ", ".join(f"{k} is required" for k in problems), problems
        )
    if body["type"] not in _TYPES:
        raise ApiError(422, f"type must be one of {', '.join(_TYPES)}", {"type": "unknown data store type"})
    record = {
        "id": new_id(),
        "type": body["type"],
        "canonicalName": str(body["canonicalName"]),
        "creator": CREATED_BY["userId"],
        "params": _check_params(body["params"]),
        "updated": iso(utc_now()),
        "role": "OWNER",
    }
    svc.store.put(DATA_STORE, record["id"], record)
    return record


@router.get("/externalDataStores/")
async def list_data_stores(request: Request) -> dict[str, Any]:
    records = services(request).store.list(DATA_STORE)
    wanted_type = request.query_params.get("type")
    if wanted_type and wanted_type != "all":
        records = [r for r in records if r["type"] == wanted_type]
    name = request.query_params.get("name")
    if name:
        records = [r for r in records if name.lower() in r["canonicalName"].lower()]
    return paginate(request, records)


@router.get("/externalDataStores/{data_store_id}/")
async def get_data_store(request: Request, data_store_id: str) -> dict[str, Any]:
    return _get(services(request), data_store_id)


@router.patch("/externalDataStores/{data_store_id}/")
async def update_data_store(request: Request, data_store_id: str) -> dict[str, Any]:
    svc = services(request)
    record = _get(svc, data_store_id)
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"canonicalName", "params"})
    if unknown or not body:
        raise ApiError(
            422,
            "Send canonicalName and/or params to update a data store.",
            {name: "not updatable" for name in unknown} or None,
        )
    if "canonicalName" in body:
        record["canonicalName"] = str(body["canonicalName"])
    if "params" in body:
        record["params"] = {**record["params"], **_check_params(body["params"])}
    record["updated"] = iso(utc_now())
    svc.store.put(DATA_STORE, record["id"], record)
    return record


@router.delete("/externalDataStores/{data_store_id}/")
async def delete_data_store(request: Request, data_store_id: str) -> Response:
    svc = services(request)
    record = _get(svc, data_store_id)
    svc.store.delete(DATA_STORE, record["id"])
    return Response(status_code=204)
