"""JSON error responses.

Every error the server sends is ``{"message": ..., "errors": {...}?}`` with
``Content-Type: application/json``: the official client reads the content type of every error
response and crashes when it is missing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered to the caller as JSON.

    :param status_code: HTTP status.
    :param message: human text naming what is wrong and, where possible, how to fix it.
    :param errors: optional map of field path to problem (validation errors).
    :param headers: extra response headers (e.g. ``Retry-After``).
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.errors = errors
        self.headers = headers


def error_body(message: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if errors:
        body["errors"] = errors
    return body


def error_response(
    status_code: int,
    message: str,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(message, errors), status_code=status_code, headers=headers)


def nest_problems(problems: list[tuple[str, str]]) -> dict[str, Any]:
    """Turn ``[("intakeSettings.url", "required")]`` into ``{"intakeSettings": {"url": "required"}}``."""
    nested: dict[str, Any] = {}
    for path, message in problems:
        node = nested
        parts = path.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = message
    return nested


_DEFAULT_MESSAGES = {
    404: "Not found: no such route. Routes live under /api/v2/ (e.g. /api/v2/batchPredictions/).",
    405: "Method not allowed on this route.",
}


def install_error_handlers(app: FastAPI) -> None:
    """Map every error FastAPI/Starlette can raise to the JSON error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, exc.message, exc.errors, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code in _DEFAULT_MESSAGES and detail in (None, "Not Found", "Method Not Allowed"):
            detail = _DEFAULT_MESSAGES[exc.status_code]
        return error_response(exc.status_code, detail or "Request failed", headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            (".".join(str(part) for part in err["loc"][1:]) or str(err["loc"][0]), str(err["msg"]))
            for err in exc.errors()
        ]
        return error_response(422, "Invalid request parameters", nest_problems(problems))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, f"Internal server error: {type(exc).__name__}")
