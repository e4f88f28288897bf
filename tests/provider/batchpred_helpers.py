"""Helpers of the provider tests (imported by tests and ``conftest.py``)."""

from __future__ import annotations

import csv
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_batchpred.contract import CsvSettings
from airflow_batchpred.hooks.datarobot import DataRobotHook

#: Workers of the local server started by ``tests/conftest.py`` (its default).
SERVER_WORKERS = 2


class Faults:
    """Drive the server's fault injection (``/api/v2/admin/faults/``)."""

    def __init__(self, server: Any) -> None:
        self._url = f"{server.endpoint}/admin/faults/"
        self._headers = server.headers

    def set(self, **plan: Any) -> None:
        response = requests.put(self._url, json=plan, headers=self._headers, timeout=30)
        assert response.status_code < 300, response.text

    def clear(self) -> None:
        requests.delete(self._url, headers=self._headers, timeout=30).raise_for_status()

    def counters(self) -> dict[str, Any]:
        response = requests.get(self._url, headers=self._headers, timeout=30)
        response.raise_for_status()
        return dict(response.json())


def wait_until(condition: Callable[[], Any], *, what: str, timeout: float = 60.0) -> Any:
    """Poll ``condition`` until it returns something truthy (a helper, not an assertion on time)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


class BusyWorkers:
    """Keep every scoring worker of the server busy, so new jobs wait INITIALIZING in the queue.

    Each blocker is a localFile job whose upload sends the header and one row, then stalls until
    released: the server runs the job (it occupies a worker) waiting for the rest of the data.
    """

    def __init__(self, hook: DataRobotHook, deployment_id: str, header: bytes, row: bytes) -> None:
        self._hook, self._deployment_id = hook, deployment_id
        self._header, self._row = header, row
        self._release = threading.Event()
        self._threads: list[threading.Thread] = []
        self.job_ids: list[str] = []

    def _body(self) -> Iterator[bytes]:
        yield self._header + self._row
        self._release.wait(120)

    def _upload(self, upload_url: str) -> None:
        session = requests.Session()
        session.headers.update(self._hook.session.headers)
        try:
            session.put(upload_url, data=self._body(), headers={"Content-Type": "text/csv"}, timeout=180)
        except requests.RequestException:
            pass
        finally:
            session.close()

    def __enter__(self) -> BusyWorkers:
        for _ in range(SERVER_WORKERS):
            job = self._hook.submit_job({"deployment_id": self._deployment_id})
            self.job_ids.append(job["id"])
            thread = threading.Thread(target=self._upload, args=(job["links"]["csvUpload"],), daemon=True)
            thread.start()
            self._threads.append(thread)
        for job_id in self.job_ids:
            wait_until(
                lambda job_id=job_id: self._hook.get_job(job_id)["status"] == "RUNNING",
                what=f"blocker job {job_id} to run",
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        for job_id in self.job_ids:
            self._hook.cancel_job(job_id)
        self._release.set()
        for thread in self._threads:
            thread.join(30)


# ---------------------------------------------------------------------------------------------
# Comparing a scored CSV with the server's own model, row by row
# ---------------------------------------------------------------------------------------------


def read_csv_rows(path: Path, settings: CsvSettings | None = None) -> list[dict[str, str]]:
    settings = settings or CsvSettings()
    with open(path, encoding=settings.encoding, newline="") as handle:
        return list(csv.DictReader(handle, delimiter=settings.delimiter_char, quotechar=settings.quotechar))


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def assert_scores_match(
    local_server: Any,
    deployment_id: str,
    input_path: Path,
    output_path: Path,
    *,
    settings: CsvSettings | None = None,
    passthrough: tuple[str, ...] = (),
    **score_options: Any,
) -> int:
    """Score ``input_path`` in process with the server's model and compare every output cell.

    :return: the number of rows compared.
    """
    import pyarrow.csv as pa_csv

    from airflow_batchpred.server.models import ModelRegistry, ScoreOptions

    settings = settings or CsvSettings()
    table = pa_csv.read_csv(
        input_path,
        read_options=pa_csv.ReadOptions(encoding=settings.encoding),
        parse_options=pa_csv.ParseOptions(delimiter=settings.delimiter_char, quote_char=settings.quotechar),
    )
    scorer = ModelRegistry(Path(local_server.data_dir) / "models").scorer(deployment_id)
    expected_columns: dict[str, list[Any]] = {}
    for batch in table.to_batches():
        scored = scorer.score(batch, ScoreOptions(**score_options)).table
        for name in scored.column_names:
            expected_columns.setdefault(name, []).extend(scored.column(name).to_pylist())
    input_rows = read_csv_rows(input_path, settings)
    output_rows = read_csv_rows(output_path, settings)
    assert len(output_rows) == table.num_rows == len(input_rows)
    assert expected_columns, "the model produced no columns"
    for index, (source, scored_row) in enumerate(zip(input_rows, output_rows, strict=True)):
        for name in passthrough:
            assert scored_row[name] == source[name], (index, name)
        for name, values in expected_columns.items():
            expected, actual = values[index], scored_row[name]
            if expected is None or (isinstance(expected, float) and math.isnan(expected)):
                assert actual == "", (index, name, actual)
            elif isinstance(expected, int | float) and not isinstance(expected, bool):
                assert _as_float(actual) == pytest.approx(expected, rel=1e-9, abs=1e-12), (index, name)
            elif _as_float(str(expected)) is not None and _as_float(actual) is not None:
                assert _as_float(actual) == pytest.approx(_as_float(str(expected)), rel=1e-9), (index, name)
            else:
                assert actual == str(expected), (index, name)
    return len(output_rows)


def write_kanji_csv(
    deployment_id: str, path: Path, rows: int, settings: CsvSettings, *, seed: int = 9
) -> Path:
    """Demo scoring data plus a ``customer`` text column (Japanese, some with the delimiter), written
    with ``settings`` (delimiter, quote character, encoding)."""
    from airflow_batchpred.server import models

    plain = models.write_demo_csv(deployment_id, path.with_suffix(".plain.csv"), rows, seed=seed)
    with open(plain, newline="", encoding="utf-8") as handle:
        source = list(csv.reader(handle))
    plain.unlink()
    with open(path, "w", newline="", encoding=settings.encoding) as handle:
        writer = csv.writer(
            handle, delimiter=settings.delimiter_char, quotechar=settings.quotechar, quoting=csv.QUOTE_MINIMAL
        )
        writer.writerow(["customer", *source[0]])
        for number, row in enumerate(source[1:]):
            name = f"顧客{number};山田" if number % 3 == 0 else f"お客様 {number}"
            writer.writerow([name, *row])
    return path
