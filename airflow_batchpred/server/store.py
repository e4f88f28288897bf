"""SQLite persistence (WAL mode) of jobs, credentials, data stores and datasets.

Records are JSON documents keyed by ``(kind, id)``. Secrets of credentials live in their own column
and only :meth:`Store.get_secrets` returns them. The job cache that serves fast GETs lives in
:mod:`.jobs.book`; this module is only the durable write-through layer beneath it.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

JOB = "job"
CREDENTIAL = "credential"
DATA_STORE = "dataStore"
DATASET = "dataset"
DATASET_VERSION = "datasetVersion"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    created TEXT NOT NULL,
    body TEXT NOT NULL,
    secret TEXT,
    PRIMARY KEY (kind, id)
);
"""


def new_id() -> str:
    """A 24-hex-character id, like DataRobot's ObjectIds."""
    return secrets.token_hex(12)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 with microseconds and a ``Z``, e.g. ``2019-11-07T18:11:36.870000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Store:
    """A thread-safe SQLite document store.

    :param path: database file; its directory is created when missing.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            yield self._conn.cursor()

    def put(self, kind: str, record_id: str, body: dict[str, Any], created: str | None = None) -> None:
        """Insert or replace a record's body (its secret, if any, is kept)."""
        text = json.dumps(body, separators=(",", ":"))
        with self._cursor() as cur:
            cur.execute(
                "INSERT INTO records (kind, id, created, body) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body",
                (kind, record_id, created or iso(utc_now()), text),
            )

    def put_secret(self, kind: str, record_id: str, secret: dict[str, Any]) -> None:
        with self._cursor() as cur:
            cur.execute(
                "UPDATE records SET secret = ? WHERE kind = ? AND id = ?",
                (json.dumps(secret), kind, record_id),
            )

    def get(self, kind: str, record_id: str) -> dict[str, Any] | None:
        with self._cursor() as cur:
            row = cur.execute(
                "SELECT body FROM records WHERE kind = ? AND id = ?", (kind, record_id)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def get_secrets(self, kind: str, record_id: str) -> dict[str, Any]:
        """The secret fields stored with a record (empty when none). Never send these to a caller."""
        with self._cursor() as cur:
            row = cur.execute(
                "SELECT secret FROM records WHERE kind = ? AND id = ?", (kind, record_id)
            ).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def list(self, kind: str) -> list[dict[str, Any]]:
        """Every record of a kind, oldest first."""
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT body FROM records WHERE kind = ? ORDER BY created, rowid", (kind,)
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def delete(self, kind: str, record_id: str) -> bool:
        with self._cursor() as cur:
            cur.execute("DELETE FROM records WHERE kind = ? AND id = ?", (kind, record_id))
            return cur.rowcount > 0
