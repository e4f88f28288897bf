"""Settings of the local batch-prediction server, from CLI arguments and ``BATCHPRED_*`` variables.

Every field of :class:`ServerSettings` can be set by an environment variable named
``BATCHPRED_<FIELD NAME IN UPPER CASE>`` (for example ``BATCHPRED_PORT=9000``); CLI arguments win
over the environment. ``BATCHPRED_TOKENS`` takes a comma-separated list.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "BATCHPRED_"
LOOPBACK_HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server needs to know at start.

    :param host: address to bind; only loopback unless the operator asks for another explicitly.
    :param port: TCP port; 0 lets the OS choose.
    :param data_dir: where the SQLite store, uploads, results, datasets and models live.
    :param tokens: API tokens accepted in ``Authorization: Token x`` / ``Bearer x``.
    :param public_base_url: base URL (scheme://host[:port]) used in links instead of the caller's host.
    :param max_concurrent_jobs: jobs scored at the same time; later jobs wait INITIALIZING with a
        ``queuePosition``.
    :param chunk_rows: most rows scored in one chunk (abort, progress and output happen per chunk).
    :param explanation_chunk_rows: most rows per chunk when explanations are asked for (slower).
    :param read_block_bytes: bytes pyarrow reads per CSV block.
    :param max_json_body_bytes: largest JSON request body; bigger bodies get 413.
    :param max_failed_row_ratio: with ``abortOnError`` (the default) a job is ABORTED once its failed
        rows exceed this share of the rows processed so far (checked after every chunk).
    :param upload_verdict_seconds: how long a finished ``csvUpload`` PUT waits for the job to read
        the data, so that undecodable or malformed data is answered with 422 instead of 202.
    :param allow_unsafe_models: let the model registry load formats that can run code (pickle).
    :param faults: fault-injection settings applied at start (see :mod:`.faults`); ``None`` = off.
    """

    host: str = LOOPBACK_HOST
    port: int = 8080
    data_dir: Path = field(default_factory=lambda: Path.home() / ".batchpred-server")
    tokens: tuple[str, ...] = ()
    public_base_url: str | None = None
    max_concurrent_jobs: int = 2
    chunk_rows: int = 20_000
    explanation_chunk_rows: int = 2_000
    read_block_bytes: int = 1 << 20
    max_json_body_bytes: int = 1 << 20
    max_failed_row_ratio: float = 0.5
    upload_verdict_seconds: float = 10.0
    allow_unsafe_models: bool = False
    faults: dict[str, Any] | None = None

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "batchpred.sqlite3"

    @property
    def token_file(self) -> Path:
        return self.data_dir / "api-token"

    def with_overrides(self, **overrides: Any) -> ServerSettings:
        """Return a copy with the given fields replaced; ``None`` values are ignored."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServerSettings:
        """Build settings from ``BATCHPRED_*`` variables over the defaults."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = environ.get(ENV_PREFIX + spec.name.upper())
            if raw is None or raw == "":
                continue
            values[spec.name] = _convert(spec.name, raw)
        return cls(**values)


def _convert(name: str, raw: str) -> Any:
    default = ServerSettings.__dataclass_fields__[name].default
    if name == "data_dir":
        return Path(raw)
    if name == "tokens":
        return tuple(token.strip() for token in raw.split(",") if token.strip())
    if name == "faults":
        return json.loads(raw)
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw
