"""The ASGI application: :func:`create_app` wires settings, store, models, runner and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from airflow_batchpred.contract import API_PREFIX
from airflow_batchpred.server.auth import require_token
from airflow_batchpred.server.config import ServerSettings
from airflow_batchpred.server.errors import install_error_handlers
from airflow_batchpred.server.faults import EdgeMiddleware, FaultInjector, FaultPlan
from airflow_batchpred.server.jobs.book import JobBook
from airflow_batchpred.server.jobs.runner import JobRunner
from airflow_batchpred.server.jobs.uploads import UploadRegistry
from airflow_batchpred.server.openapi import honest_openapi
from airflow_batchpred.server.routes import (
    admin,
    batch_predictions,
    credentials,
    data_stores,
    datasets,
    deployments,
    files,
    version,
)
from airflow_batchpred.server.services import Services
from airflow_batchpred.server.store import Store

log = logging.getLogger(__name__)


class BatchPredictionApp(FastAPI):
    """FastAPI with :class:`EdgeMiddleware` outside everything else (it needs the server's ``send``)."""

    def build_middleware_stack(self) -> ASGIApp:
        return EdgeMiddleware(super().build_middleware_stack(), self.state.services.faults)


def build_services(settings: ServerSettings, models: Any = None) -> Services:
    """Open the store, load the model registry and recover jobs a previous process left behind.

    :param models: a model registry to use instead of the one in ``data_dir/models``.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if models is None:
        from airflow_batchpred.server.models import ModelRegistry

        models = ModelRegistry(settings.models_dir, allow_unsafe=settings.allow_unsafe_models)
        models.ensure_demo_models()
    store = Store(settings.database_path)
    book = JobBook(store)
    interrupted = book.fail_interrupted_jobs()
    if interrupted:
        log.warning("Marked %d job(s) interrupted by the previous shutdown as FAILED", len(interrupted))
    faults = FaultInjector()
    if settings.faults:
        faults.configure(FaultPlan.from_json(settings.faults))
    services = Services(
        settings=settings,
        store=store,
        models=models,
        book=book,
        uploads=UploadRegistry(),
        runner=None,  # type: ignore[arg-type] - set just below (the runner needs the services)
        faults=faults,
    )
    services.runner = JobRunner(services)
    return services


def create_app(settings: ServerSettings, models: Any = None) -> FastAPI:
    """Build the server application.

    :param settings: server settings (tokens must not be empty).
    :param models: optional model registry (defaults to the one in ``settings.models_dir``).
    """
    if not settings.tokens:
        raise ValueError("the server needs at least one API token")
    services = build_services(settings, models)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        services.runner.start()
        try:
            yield
        finally:
            services.runner.stop()
            services.store.close()

    app = BatchPredictionApp(
        title="airflow-batchpred local batch prediction server",
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.state.services = services
    app.openapi = lambda: honest_openapi(app)  # type: ignore[method-assign]
    install_error_handlers(app)
    app.include_router(version.router, prefix=API_PREFIX)
    authenticated = [Depends(require_token)]
    for module in (batch_predictions, files, credentials, data_stores, datasets, deployments, admin):
        app.include_router(module.router, prefix=API_PREFIX, dependencies=authenticated)
    return app
