"""An honest OpenAPI document for the server.

The routes read their JSON bodies themselves (to stream, bound and validate them with the
contract's messages) and answer with ``JSONResponse``/``Response`` objects, so FastAPI's generated
document would claim ``200`` everywhere, no request bodies, no query parameters, no auth, and a
``422`` shaped like FastAPI's own validation error. :func:`honest_openapi` fixes that after FastAPI
built the document:

* every operation but ``version/`` needs the API token (``security``), and every error of every
  operation has the server's one error shape (``Error``: ``message`` and optional ``errors``),
  documented as the ``default`` response;
* the success status codes and bodies are the ones the handlers really send (202 for accepted
  jobs and uploads, 201 for credentials, 204 for deletes, 303 for dataset status, ``text/csv``
  for downloads);
* request bodies (JSON objects, ``text/csv`` uploads, ``multipart/form-data`` datasets) and the
  query parameters of the list routes are declared.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from airflow_batchpred.contract import API_PREFIX, JobStatus

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["message"],
    "properties": {"message": {"type": "string"}, "errors": {"type": "object"}},
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_OBJECT = {"type": "object"}
_JSON_OBJECT = {"application/json": {"schema": _OBJECT}}
_ERROR_RESPONSE = {
    "description": "Any error: what is wrong and how to fix it",
    "content": {"application/json": {"schema": _ERROR_REF}},
}

_PAGE = {
    "type": "object",
    "required": ["count", "data", "totalCount"],
    "properties": {
        "count": {"type": "integer"},
        "next": {"type": ["string", "null"]},
        "previous": {"type": ["string", "null"]},
        "data": {"type": "array", "items": {}},
        "totalCount": {"type": "integer"},
    },
}
_PAGE_PARAMETERS = [
    {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
]
_JOB_LIST_PARAMETERS = [
    {
        "name": "status",
        "in": "query",
        "required": False,
        "schema": {"type": "array", "items": {"type": "string", "enum": [s.value for s in JobStatus]}},
        "style": "form",
        "explode": True,
    },
    *(
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in ("deploymentId", "jobId", "intakeType", "outputType", "startDateTime", "endDateTime")
    ),
    {"name": "cutoffHours", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
    {
        "name": "orderBy",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["created", "-created", "status", "-status"]},
    },
]


def _ok(code: str, description: str, content: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if content is not None:
        response["content"] = content
    return {code: response}


_JSON_BODY = {"required": False, "content": _JSON_OBJECT}
_CSV_BODY = {"required": True, "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}}}
_FILE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        }
    },
}

#: (method, path under the API prefix) → (success responses, request body, extra query parameters)
_OPERATIONS: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]] = {
    ("post", "/batchPredictions/"): (_ok("202", "Job accepted", _JSON_OBJECT), _JSON_BODY, []),
    ("post", "/batchPredictions/fromExisting/"): (_ok("202", "Job accepted", _JSON_OBJECT), _JSON_BODY, []),
    ("get", "/batchPredictions/"): (
        _ok("200", "A page of jobs", {"application/json": {"schema": _PAGE}}),
        None,
        _PAGE_PARAMETERS + _JOB_LIST_PARAMETERS,
    ),
    ("get", "/batchPredictions/{job_id}/"): (_ok("200", "The job", _JSON_OBJECT), None, []),
    ("patch", "/batchPredictions/{job_id}/"): (_ok("200", "The updated job", _JSON_OBJECT), _JSON_BODY, []),
    ("delete", "/batchPredictions/{job_id}/"): (_ok("202", "Abort accepted"), None, []),
    ("put", "/batchPredictions/{job_id}/csvUpload/"): (_ok("202", "Data accepted"), _CSV_BODY, []),
    ("put", "/batchPredictions/{job_id}/csvUpload/part/{part_number}/"): (
        _ok("202", "Part accepted"),
        _CSV_BODY,
        [],
    ),
    ("post", "/batchPredictions/{job_id}/csvUpload/finalizeMultipart/"): (
        _ok("202", "Upload finalized"),
        None,
        [],
    ),
    ("get", "/batchPredictions/{job_id}/download/"): (
        _ok("200", "The scored CSV", {"text/csv": {"schema": {"type": "string"}}}),
        None,
        [],
    ),
    ("post", "/credentials/"): (_ok("201", "Credential created", _JSON_OBJECT), _JSON_BODY, []),
    ("patch", "/credentials/{credential_id}/"): (_ok("200", "Credential", _JSON_OBJECT), _JSON_BODY, []),
    ("delete", "/credentials/{credential_id}/"): (_ok("204", "Deleted"), None, []),
    ("post", "/externalDataStores/"): (_ok("200", "Data store created", _JSON_OBJECT), _JSON_BODY, []),
    ("patch", "/externalDataStores/{data_store_id}/"): (
        _ok("200", "Data store", _JSON_OBJECT),
        _JSON_BODY,
        [],
    ),
    ("delete", "/externalDataStores/{data_store_id}/"): (_ok("204", "Deleted"), None, []),
    ("post", "/datasets/fromFile/"): (_ok("202", "Dataset accepted", _JSON_OBJECT), _FILE_BODY, []),
    ("post", "/datasets/{dataset_id}/versions/fromFile/"): (
        _ok("202", "Dataset version accepted", _JSON_OBJECT),
        _FILE_BODY,
        [],
    ),
    ("get", "/status/{status_id}/"): (
        {
            **_ok("303", "Done: see Location", _JSON_OBJECT),
            **_ok("200", "The dataset (after the redirect)", _JSON_OBJECT),
        },
        None,
        [],
    ),
    ("put", "/admin/faults/"): (_ok("200", "The fault plan and counters", _JSON_OBJECT), _JSON_BODY, []),
}
_PAGED = ("/credentials/", "/externalDataStores/", "/datasets/", "/deployments/")


def honest_openapi(app: FastAPI) -> dict[str, Any]:
    """Build (once) and return the corrected OpenAPI document of ``app``."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ERROR_SCHEMA
    if not schemas:
        components.pop("schemas")
    components["securitySchemes"] = {
        "apiToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "'Authorization: Bearer <token>' (or 'Token <token>') with a server token",
        }
    }
    document["security"] = [{"apiToken": []}]
    for path, operations in document.get("paths", {}).items():
        route = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else path
        for method, operation in operations.items():
            success, body, parameters = _OPERATIONS.get((method, route), (None, None, []))
            if success is None and method == "get" and (route in _PAGED or route.endswith("/versions/")):
                success = _ok("200", "A page", {"application/json": {"schema": _PAGE}})
                parameters = _PAGE_PARAMETERS
            responses = {
                code: value for code, value in operation.get("responses", {}).items() if code < "300"
            }
            if success is not None:
                responses = dict(success)
            responses["default"] = _ERROR_RESPONSE
            operation["responses"] = responses
            if body is not None:
                operation["requestBody"] = body
            if parameters:
                operation["parameters"] = [*operation.get("parameters", []), *parameters]
            if route == "/version/":
                operation["security"] = []
    app.openapi_schema = document
    return document
