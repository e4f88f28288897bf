"""API-token authentication: ``Authorization: Token <t>`` or ``Bearer <t>``."""

from __future__ import annotations

import hmac

from fastapi import Request

from airflow_batchpred.server.errors import ApiError

_SCHEMES = ("token", "bearer")


async def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries one of the server's tokens.

    Async on purpose: FastAPI runs sync dependencies in a worker thread, which costs milliseconds
    per request under load.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    accepted = request.app.state.services.settings.tokens
    if (
        scheme.lower() not in _SCHEMES
        or not token
        or not any(hmac.compare_digest(token.encode(), known.encode()) for known in accepted)
    ):
        raise ApiError(
            401,
            "Missing or invalid API token: send 'Authorization: Token <token>' or "
            "'Authorization: Bearer <token>' with a token the server was started with.",
            headers={"WWW-Authenticate": 'Token realm="batchpred", Bearer realm="batchpred"'},
        )
