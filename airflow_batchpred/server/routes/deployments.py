"""``deployments/``: the deployments the model registry serves (read-only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from airflow_batchpred.server.errors import ApiError
from airflow_batchpred.server.routes.common import paginate, services

router = APIRouter()


def _deployment(request: Request, deployment_id: str) -> Any:
    svc = services(request)
    info = svc.models.get(deployment_id)
    if info is None:
        known = ", ".join(item.id for item in svc.models.list())
        raise ApiError(404, f"Deployment {deployment_id} does not exist. Known deployments: {known}.")
    return info


@router.get("/deployments/")
async def list_deployments(request: Request) -> dict[str, Any]:
    return paginate(request, services(request).models.list(), lambda info: info.to_json())


@router.get("/deployments/{deployment_id}/")
async def get_deployment(request: Request, deployment_id: str) -> dict[str, Any]:
    return _deployment(request, deployment_id).to_json()  # type: ignore[no-any-return]


@router.get("/deployments/{deployment_id}/features/")
async def list_features(request: Request, deployment_id: str) -> dict[str, Any]:
    info = _deployment(request, deployment_id)
    features = [{"name": feature.name, "featureType": feature.feature_type} for feature in info.features]
    return paginate(request, features)
