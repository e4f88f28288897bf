"""``GET version/``: the only route that needs no token (the official client calls it first)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from airflow_batchpred.contract import API_VERSION

router = APIRouter()


@router.get("/version/")
async def get_version() -> dict[str, Any]:
    major, minor, _patch = API_VERSION.split(".")
    return {"major": int(major), "minor": int(minor), "versionString": API_VERSION}
