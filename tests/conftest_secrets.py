"""Suite-wide secrets scan (registered from ``conftest.py``).

Every token, password and key the tests create is collected while the session runs:

* the API token of every :class:`support.LocalServer` started (and ``api-token`` files of servers
  that generated their own);
* the passwords and keys of the stand-ins (``MotoS3``, ``AzuriteBlob``, ``PostgresServer``, ...)
  and of every fixture value that is an Airflow connection in JSON form;
* every ``AIRFLOW_CONN_*`` variable set while a test runs (password, and extra fields whose name
  says key, secret, token, password or connection string).

Then the places a secret could leak to are scanned:

* the captured output and logs and the failure text (exception text) of every test, as each
  report is made;
* at the end of the session: the Airflow task log folder, every XCom row and rendered template
  fields row of each Airflow metadata database, every record body (job JSON, credential and data
  store documents; not the separate ``secret`` column) of each server's store, and every server log.

A secret found fails the session: the teardown of the last test errors with the secret's owner
(never the secret itself) and the place it was found. Secrets shorter than
:data:`MIN_SECRET_LENGTH` characters are not scanned (a four-letter password matches ordinary words).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest

import support

MIN_SECRET_LENGTH = 8
_SECRET_FIELD_WORDS = ("password", "secret", "token", "key", "connection_string", "sas", "credential")
_NOT_SECRET_FIELDS = {"key_path", "key_id", "access_key_id", "aws_access_key_id", "keyfile_path"}
#: Airflow metadata tables a secret must never reach.
_AIRFLOW_TABLES = ("xcom", "rendered_task_instance_fields")


@dataclass
class Finding:
    owner: str
    location: str

    def __str__(self) -> str:
        return f"secret of {self.owner} found in {self.location}"


@dataclass
class SecretScanner:
    """Known secrets and where to look for them."""

    secrets: dict[str, str] = field(default_factory=dict)  # secret -> owner (a description)
    server_dirs: set[Path] = field(default_factory=set)
    server_logs: set[Path] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- collecting -------------------------------------------------------------------------
    def add(self, secret: Any, owner: str) -> None:
        if not isinstance(secret, str):
            return
        secret = secret.strip()
        if len(secret) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            self.secrets.setdefault(secret, owner)

    def add_server(self, server: support.LocalServer) -> None:
        self.add(server.token, f"local server on port {server.port} (API token)")
        self.server_dirs.add(Path(server.data_dir))
        self.server_logs.add(Path(server.log_file))

    def add_connection(self, value: Any, owner: str) -> None:
        """Secrets of an Airflow connection given as JSON (text or dict) or as a URI."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                try:
                    value = json.loads(text)
                except ValueError:
                    return
            elif "://" in text:
                password = urlsplit(text).password
                if password:
                    self.add(unquote(password), f"{owner} (password)")
                return
            else:
                return
        if not isinstance(value, dict):
            return
        self.add(value.get("password"), f"{owner} (password)")
        extra = value.get("extra")
        if isinstance(extra, str):
            try:
                extra = json.loads(extra)
            except ValueError:
                extra = None
        if isinstance(extra, dict):
            self._add_secret_fields(extra, f"{owner} extra")

    def _add_secret_fields(self, data: dict[str, Any], owner: str) -> None:
        for name, item in data.items():
            lowered = str(name).lower()
            if isinstance(item, dict):
                self._add_secret_fields(item, f"{owner}.{name}")
                continue
            if isinstance(item, str) and item.strip().startswith("{"):
                try:
                    nested = json.loads(item)
                except ValueError:
                    nested = None
                if isinstance(nested, dict):
                    self._add_secret_fields(nested, f"{owner}.{name}")
                    continue
            if (
                lowered in _NOT_SECRET_FIELDS
                or lowered.endswith(("_uri", "_url", "_file", "_path"))
                or not any(word in lowered for word in _SECRET_FIELD_WORDS)
            ):
                continue
            if lowered == "connection_string" and isinstance(item, str):
                for part in item.split(";"):
                    key, _, secret = part.partition("=")
                    if key.strip().lower() in ("accountkey", "sharedaccesssignature"):
                        self.add(secret, f"{owner}.{name} ({key.strip()})")
                continue
            self.add(item, f"{owner}.{name}")

    def add_fixture_value(self, name: str, value: Any) -> None:
        if isinstance(value, support.LocalServer):
            self.add_server(value)
            return
        if name.endswith("connection_json") or name.endswith("_connection"):
            self.add_connection(value, f"fixture {name}")
        for attribute in ("password", "secret_access_key", "account_key", "token"):
            try:
                secret = getattr(value, attribute, None)
            except Exception:  # noqa: S112 - a property that needs a connection: not a plain secret
                continue
            if isinstance(secret, str) and not isinstance(value, str):
                self.add(secret, f"{type(value).__name__}.{attribute} (fixture {name})")

    def add_environment(self, environ: dict[str, str] | os._Environ[str]) -> None:
        for name, value in list(environ.items()):
            if name.startswith("AIRFLOW_CONN_"):
                self.add_connection(value, f"connection {name[len('AIRFLOW_CONN_') :].lower()}")

    # -- scanning ---------------------------------------------------------------------------
    def _patterns(self) -> list[tuple[str, str]]:
        with self._lock:
            pairs = list(self.secrets.items())
        patterns: list[tuple[str, str]] = []
        for secret, owner in pairs:
            patterns.append((secret, owner))
            quoted = quote(secret, safe="")
            if quoted != secret:
                patterns.append((quoted, owner))
        return patterns

    def scan_text(self, text: str, location: str) -> list[Finding]:
        found = [Finding(owner, location) for secret, owner in self._patterns() if secret in text]
        self.findings.extend(found)
        return found

    def scan_file(self, path: Path, location: str | None = None) -> list[Finding]:
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return []
        return self.scan_text(text, location or str(path))

    def scan_tree(self, root: Path, label: str) -> list[Finding]:
        found: list[Finding] = []
        if not root.is_dir():
            return found
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                found += self.scan_file(path, f"{label} {path}")
        return found

    def scan_airflow_db(self, database: Path) -> list[Finding]:
        found: list[Finding] = []
        for table, row in _sqlite_rows(database, _AIRFLOW_TABLES):
            where = {name: row[name] for name in ("dag_id", "run_id", "task_id", "key") if name in row}
            text = " ".join(_as_text(value) for value in row.values())
            found += self.scan_text(text, f"{database} table {table} row {where}")
        return found

    def scan_server_store(self, database: Path) -> list[Finding]:
        found: list[Finding] = []
        for _table, row in _sqlite_rows(database, ("records",), columns="kind, id, body"):
            found += self.scan_text(_as_text(row["body"]), f"{database} {row['kind']} record {row['id']}")
        return found

    def scan_places(self, *, airflow_homes: Iterable[Path], search_roots: Iterable[Path]) -> list[Finding]:
        """Scan every end-of-session place: Airflow logs and DBs, server stores and logs."""
        found: list[Finding] = []
        databases: set[Path] = set()
        stores: set[Path] = {path / "batchpred.sqlite3" for path in self.server_dirs}
        logs: set[Path] = set(self.server_logs)
        for home in airflow_homes:
            found += self.scan_tree(home / "logs", "Airflow task log")
            databases.update(home.glob("*.db"))
        for root in search_roots:
            if not root.is_dir():
                continue
            databases.update(root.rglob("airflow.db"))
            stores.update(root.rglob("batchpred.sqlite3"))
            logs.update(root.rglob("*-server.log"))
        for database in sorted(databases):
            found += self.scan_airflow_db(database)
        for store in sorted(stores):
            found += self.scan_server_store(store)
        for log in sorted(logs):
            if log.is_file():
                found += self.scan_file(log, f"server log {log}")
        return found


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def _sqlite_rows(
    database: Path, tables: Iterable[str], columns: str = "*"
) -> Iterator[tuple[str, dict[str, Any]]]:
    if not database.is_file():
        return
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return
    try:
        existing = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table in tables:
            if table in existing:
                cursor = connection.execute(f"SELECT {columns} FROM {table}")  # noqa: S608 - fixed names
                names = [column[0] for column in cursor.description]
                for row in cursor:
                    yield table, dict(zip(names, row, strict=True))
    except sqlite3.Error:
        return
    finally:
        connection.close()


SCANNER = SecretScanner()

_original_start = support.LocalServer.start


def _recording_start(self: support.LocalServer, **kwargs: Any) -> support.LocalServer:
    SCANNER.add_server(self)
    return _original_start(self, **kwargs)


support.LocalServer.start = _recording_start  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
    result = yield
    SCANNER.add_fixture_value(fixturedef.argname, result)
    SCANNER.add_environment(os.environ)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    try:
        return (yield)
    finally:
        SCANNER.add_environment(os.environ)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for title, content in report.sections:
        SCANNER.scan_text(content, f"{report.nodeid} ({report.when}): {title}")
    if report.longrepr is not None:
        SCANNER.scan_text(report.longreprtext, f"{report.nodeid} ({report.when}): failure text")


@pytest.fixture(scope="session", autouse=True)
def _secrets_scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretScanner]:
    """Set up first, so torn down last: after every server and stand-in has stopped."""
    yield SCANNER
    base = tmp_path_factory.getbasetemp()
    for token_file in base.rglob("api-token"):
        SCANNER.add(token_file.read_text(errors="replace"), f"generated server token {token_file}")
    homes = [Path(os.environ["AIRFLOW_HOME"])] if os.environ.get("AIRFLOW_HOME") else []
    SCANNER.scan_places(airflow_homes=homes, search_roots=[base, *homes])
    # What was scanned, for whoever wants the evidence (one file per pytest-xdist worker).
    summary = {
        "secrets": len(SCANNER.secrets),
        "owners": sorted(set(SCANNER.secrets.values())),
        "servers": len(SCANNER.server_dirs),
        "findings": sorted({str(finding) for finding in SCANNER.findings}),
    }
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    (base / f"secrets-scan-{worker}.json").write_text(json.dumps(summary, indent=1))
    if SCANNER.findings:
        unique = sorted({str(finding) for finding in SCANNER.findings})
        pytest.fail(
            f"{len(unique)} secret leak(s) found by the suite-wide secrets scan "
            f"({len(SCANNER.secrets)} secrets known):\n" + "\n".join(unique),
            pytrace=False,
        )
