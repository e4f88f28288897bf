"""``admin/faults/``: switch fault injection on and off at run time (never faulted itself)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from airflow_batchpred.server.errors import ApiError
from airflow_batchpred.server.faults import FaultPlan
from airflow_batchpred.server.routes.common import read_json, services

router = APIRouter()


@router.get("/admin/faults/")
async def get_faults(request: Request) -> dict[str, Any]:
    return services(request).faults.snapshot()


@router.put("/admin/faults/")
async def set_faults(request: Request) -> dict[str, Any]:
    try:
        plan = FaultPlan.from_json(await read_json(request))
    except ValueError as exc:
        raise ApiError(422, f"Invalid fault plan: {exc}") from None
    injector = services(request).faults
    injector.configure(plan)
    return injector.snapshot()


@router.delete("/admin/faults/")
async def clear_faults(request: Request) -> dict[str, Any]:
    injector = services(request).faults
    injector.configure(None)
    return injector.snapshot()
