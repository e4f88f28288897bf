"""Helpers shared by the route modules: services, absolute links, JSON bodies, pagination."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi import Request

from airflow_batchpred.contract import API_PREFIX
from airflow_batchpred.server.errors import ApiError
from airflow_batchpred.server.services import Services

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_ID_PATTERN = re.compile(r"^[0-9a-f]{24}$")

T = TypeVar("T")


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def api_base(request: Request) -> str:
    """Absolute API base (``http://host:port/api/v2``) on the host the caller used."""
    public = services(request).settings.public_base_url
    base = public if public else str(request.base_url)
    return base.rstrip("/") + API_PREFIX


def check_id(value: str, what: str) -> str:
    """404 unless ``value`` looks like an id; also keeps ids safe to use in file paths."""
    if not _ID_PATTERN.match(value):
        raise ApiError(404, f"{what} {value} does not exist.")
    return value


def stored_or_404(svc: Services, kind: str, record_id: str, what: str) -> dict[str, Any]:
    """The stored record of ``kind`` (e.g. a credential), or 404 naming it."""
    record = svc.store.get(kind, check_id(record_id, what))
    if record is None:
        raise ApiError(404, f"{what} {record_id} does not exist.")
    return record


async def read_json(request: Request) -> Any:
    """Read a JSON body of at most ``max_json_body_bytes`` (413 beyond), streaming."""
    limit = services(request).settings.max_json_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"The request body is larger than the limit of {limit} bytes.")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise ApiError(413, f"The request body is larger than the limit of {limit} bytes.")
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(422, f"The request body is not valid JSON: {exc}") from None


async def read_json_object(request: Request) -> dict[str, Any]:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise ApiError(422, "The request body must be a JSON object.")
    return data


def page_params(request: Request) -> tuple[int, int]:
    """``offset`` and ``limit`` query parameters (defaults 0 and 100)."""
    values = []
    for name, default in (("offset", 0), ("limit", DEFAULT_PAGE_SIZE)):
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            values.append(default)
            continue
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(422, f"{name} must be an integer", {name: "must be an integer"}) from None
        if value < 0 or (name == "limit" and not 0 < value <= MAX_PAGE_SIZE):
            bound = f"between 1 and {MAX_PAGE_SIZE}" if name == "limit" else "0 or more"
            raise ApiError(422, f"{name} must be {bound}", {name: f"must be {bound}"})
        values.append(value)
    return values[0], values[1]


def paginate(request: Request, items: Sequence[T], render: Any = None) -> dict[str, Any]:
    """The pagination envelope ``{count, next, previous, data, totalCount}`` with absolute links."""
    offset, limit = page_params(request)
    page = list(items[offset : offset + limit])
    data = [render(item) for item in page] if render else page

    def link(new_offset: int) -> str:
        url = request.url.include_query_params(offset=new_offset, limit=limit)
        public = services(request).settings.public_base_url
        if public:
            return public.rstrip("/") + url.path + ("?" + url.query if url.query else "")
        return str(url)

    has_next = offset + limit < len(items)
    return {
        "count": len(data),
        "next": link(offset + limit) if has_next else None,
        "previous": link(max(0, offset - limit)) if offset > 0 else None,
        "data": data,
        "totalCount": len(items),
    }
