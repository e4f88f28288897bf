"""Fault injection for tests (off by default).

A :class:`FaultPlan` makes requests whose path matches ``routes`` fail at ``rate``, with a kind
drawn from ``kinds``:

* ``"429"`` — 429 with ``Retry-After``; ``"502"``, ``"503"`` (with ``Retry-After``), ``"504"``;
* ``"500"`` — a plain server error (the official client does not retry it);
* ``"slow"`` — waits ``slowSeconds`` and then serves the request normally;
* ``"drop"`` — closes the connection without an answer.

``limit`` caps the number of faults injected (then requests pass), which makes "fail twice, then
succeed" scenarios deterministic; ``methods`` restricts faults to some HTTP methods.

``phase: "before"`` answers the fault without running the handler (a POST creates nothing);
``phase: "after"`` runs the handler and then replaces its answer, to test that a client does not
duplicate work after an ambiguous failure. Routes under ``/api/v2/admin/`` are never faulted.
Set the plan with ``PUT /api/v2/admin/faults/`` or ``--faults JSON``; ``GET`` shows counters.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_batchpred.contract import API_PREFIX

ADMIN_PREFIX = f"{API_PREFIX}/admin/"
FAULT_KINDS = ("429", "500", "502", "503", "504", "slow", "drop")
_MESSAGES = {
    "429": "Too many requests (injected fault); retry after the Retry-After delay.",
    "500": "Internal server error (injected fault).",
    "502": "Bad gateway (injected fault).",
    "503": "Service unavailable (injected fault); retry after the Retry-After delay.",
    "504": "Gateway timeout (injected fault).",
}


@dataclass(frozen=True)
class FaultPlan:
    """What to inject; field names follow the JSON body of the admin route (camelCase there)."""

    rate: float = 1.0
    kinds: tuple[str, ...] = ("503",)
    routes: str = ".*"
    methods: tuple[str, ...] = ()
    seed: int | None = None
    retry_after: int = 1
    phase: str = "before"
    slow_seconds: float = 2.0
    limit: int | None = None
    pattern: re.Pattern[str] = field(default=re.compile(".*"), repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> FaultPlan:
        """Validate the admin body; raise ``ValueError`` naming the bad field."""
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        known = {"rate", "kinds", "routes", "methods", "seed", "retryAfter", "phase", "slowSeconds", "limit"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        rate = float(data.get("rate", 1.0))
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        kinds = tuple(str(kind) for kind in data.get("kinds", ["503"]))
        bad = [kind for kind in kinds if kind not in FAULT_KINDS]
        if bad or not kinds:
            raise ValueError(
                f"kinds must be a non-empty list of {', '.join(FAULT_KINDS)}; got {bad or kinds}"
            )
        phase = data.get("phase", "before")
        if phase not in ("before", "after"):
            raise ValueError("phase must be 'before' or 'after'")
        routes = str(data.get("routes", ".*"))
        try:
            pattern = re.compile(routes)
        except re.error as exc:
            raise ValueError(f"routes is not a valid regular expression: {exc}") from None
        return cls(
            rate=rate,
            kinds=kinds,
            routes=routes,
            methods=tuple(str(method).upper() for method in data.get("methods", [])),
            seed=None if data.get("seed") is None else int(data["seed"]),
            retry_after=int(data.get("retryAfter", 1)),
            phase=phase,
            slow_seconds=float(data.get("slowSeconds", 2.0)),
            limit=None if data.get("limit") is None else int(data["limit"]),
            pattern=pattern,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "kinds": list(self.kinds),
            "routes": self.routes,
            "methods": list(self.methods),
            "seed": self.seed,
            "retryAfter": self.retry_after,
            "phase": self.phase,
            "slowSeconds": self.slow_seconds,
            "limit": self.limit,
        }


class FaultInjector:
    """The active plan and counters of what was injected."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.plan: FaultPlan | None = None
        self._random = random.Random()
        self._counts: dict[str, int] = {}
        self._seen = 0

    def configure(self, plan: FaultPlan | None) -> None:
        with self._lock:
            self.plan = plan
            self._random = random.Random(plan.seed if plan else None)
            self._counts = {}
            self._seen = 0

    def choose(self, method: str, path: str) -> tuple[str, FaultPlan] | None:
        """The fault to inject into this request, if any."""
        with self._lock:
            plan = self.plan
            if plan is None or not plan.pattern.search(path):
                return None
            if plan.methods and method.upper() not in plan.methods:
                return None
            self._seen += 1
            if plan.limit is not None and sum(self._counts.values()) >= plan.limit:
                return None
            if self._random.random() >= plan.rate:
                return None
            kind = self._random.choice(plan.kinds)
            self._counts[kind] = self._counts.get(kind, 0) + 1
            return kind, plan

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "plan": self.plan.to_json() if self.plan else None,
                "matchedRequests": self._seen,
                "injected": dict(self._counts),
                "injectedTotal": sum(self._counts.values()),
            }


class EdgeMiddleware:
    """Outermost ASGI layer: adds the missing trailing slash to API paths and injects faults.

    It must wrap the whole app so that it receives the server's own ``send`` (needed to drop a
    connection without answering).
    """

    def __init__(self, app: ASGIApp, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(API_PREFIX) and not path.endswith("/"):
            scope = dict(scope)
            scope["path"] = path + "/"
            raw = scope.get("raw_path")
            if raw is not None and not raw.endswith(b"/"):
                scope["raw_path"] = raw + b"/"
            path = scope["path"]
        choice = None if path.startswith(ADMIN_PREFIX) else self.injector.choose(scope["method"], path)
        if choice is None:
            await self.app(scope, receive, send)
            return
        kind, plan = choice
        if kind == "slow":
            await asyncio.sleep(plan.slow_seconds)
            await self.app(scope, receive, send)
            return
        if plan.phase == "after":
            await self.app(scope, receive, _discard)
        if kind == "drop":
            await _drop_connection(send)
        else:
            await _send_fault(send, kind, plan.retry_after)


async def _discard(_message: Message) -> None:
    return None


async def _send_fault(send: Send, kind: str, retry_after: int) -> None:
    body = json.dumps({"message": _MESSAGES[kind]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if kind in ("429", "503"):
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": int(kind), "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _drop_connection(send: Send) -> None:
    # uvicorn's send is a bound method of the request cycle, which holds the transport.
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is not None:
        transport.abort()
        cycle.disconnected = True  # type: ignore[union-attr]
        return
    # Other servers: start an answer and break it off, which they turn into a closed connection.
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
    raise ConnectionAbortedError("injected dropped connection")
