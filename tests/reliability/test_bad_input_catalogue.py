"""The bad-input catalogue (``docs/bad-input.md``): the cases no other test file covers, and a check
that every test the table names exists, so the catalogue cannot rot.

Each case runs the real path (operator → hook → local server) and checks the error names what is
wrong and how to fix it, and that nothing was half-written (no output file, no job for input the
provider refuses).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_batchpred.exceptions import (
    DataRobotApiError,
    DataRobotConnectionError,
    DataRobotError,
    DataRobotRequestError,
)
from airflow_batchpred.operators.local_file import DataRobotLocalFileBatchPredictionOperator
from airflow_batchpred.server import models

from support import LocalServer, free_port

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "docs" / "bad-input.md"
FAST_RETRIES = {"retry_limit": 2, "retry_delay": 0.05, "max_retry_delay": 0.2}


class _Ti:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _operator(
    tmp_path: Path, source: Path | None = None, **kwargs: Any
) -> DataRobotLocalFileBatchPredictionOperator:
    if source is None:
        source = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "in.csv", 20, seed=5)
    arguments: dict[str, Any] = {
        "task_id": "score",
        "deployment_id": models.DEMO_REGRESSION_ID,
        "input_file": str(source),
        "output_file": str(tmp_path / "out.csv"),
        "poll_interval": 0.1,
        "hook_params": FAST_RETRIES,
        **kwargs,
    }
    return DataRobotLocalFileBatchPredictionOperator(**arguments)


def _fails(operator: DataRobotLocalFileBatchPredictionOperator, error: type[Exception]) -> str:
    with pytest.raises(error) as caught:
        operator.execute({"ti": _Ti()})
    assert not Path(operator.output_file).exists(), "a failed task must leave no output file"
    assert not list(Path(operator.output_file).parent.glob("*.partial*")), "no partial output either"
    return str(caught.value)


def _set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, connection: dict[str, Any]) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))


# --- connections -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connection", "words"),
    [
        pytest.param(
            {"conn_type": "datarobot", "password": "tok-123456789"},
            ["'dr_bad' has no endpoint", "set its 'endpoint' field (extra)"],
            id="no-endpoint",
        ),
        pytest.param(
            {
                "conn_type": "datarobot",
                "password": "tok-123456789",
                "extra": {"endpoint": "127.0.0.1:9/api/v2"},
            },
            ["endpoint must start with http:// or https://"],
            id="endpoint-without-scheme",
        ),
        pytest.param(
            {"conn_type": "datarobot", "extra": {"endpoint": "http://127.0.0.1:9/api/v2"}},
            ["'dr_bad' has no API token", "'API Token' (password) field"],
            id="no-token",
        ),
        pytest.param(
            {
                "conn_type": "datarobot",
                "password": "tok-123456789",
                "extra": {"endpoint": "http://127.0.0.1:9/api/v2", "timeout_seconds": "soon"},
            },
            ["timeout_seconds must be a number, got 'soon'"],
            id="timeout-not-a-number",
        ),
    ],
)
def test_broken_datarobot_connection_names_the_field(
    connection: dict[str, Any],
    words: list[str],
    monkeypatch: pytest.MonkeyPatch,
    local_server: LocalServer,
    tmp_path: Path,
) -> None:
    _set_connection(monkeypatch, "dr_bad", connection)
    jobs_before = len(local_server.jobs())
    message = _fails(_operator(tmp_path, datarobot_conn_id="dr_bad"), DataRobotConnectionError)
    for word in words:
        assert word in message, message
    assert len(local_server.jobs()) == jobs_before


def test_wrong_api_token_is_reported_as_401_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch, local_server: LocalServer, tmp_path: Path
) -> None:
    _set_connection(
        monkeypatch,
        "dr_wrong_token",
        {
            "conn_type": "datarobot",
            "password": "wrong-token-000111",
            "extra": {"endpoint": local_server.endpoint},
        },
    )
    jobs_before = len(local_server.jobs())
    message = _fails(_operator(tmp_path, datarobot_conn_id="dr_wrong_token"), DataRobotApiError)
    assert "401" in message
    assert "Missing or invalid API token" in message
    assert "wrong-token-000111" not in message
    assert len(local_server.jobs()) == jobs_before


def test_unreachable_endpoint_is_a_request_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/api/v2"
    _set_connection(
        monkeypatch,
        "dr_closed",
        {"conn_type": "datarobot", "password": "tok-123456789", "extra": {"endpoint": endpoint}},
    )
    message = _fails(_operator(tmp_path, datarobot_conn_id="dr_closed"), DataRobotRequestError)
    assert "127.0.0.1" in message


def test_unknown_connection_id_is_named(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="dr_nowhere") as caught:
        _operator(tmp_path, datarobot_conn_id="dr_nowhere").execute({"ti": _Ti()})
    assert (
        "isn't defined" in str(caught.value)
        or "not defined" in str(caught.value)
        or "not found" in str(caught.value)
    )
    assert not (tmp_path / "out.csv").exists()


# --- CSV content and encodings through the operator --------------------------------------------


def test_malformed_csv_fails_the_task_and_writes_nothing(local_server: LocalServer, tmp_path: Path) -> None:
    good = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "good.csv", 5, seed=1).read_text()
    lines = good.splitlines()
    lines[3] += ",1,2"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    message = _fails(_operator(tmp_path, bad), DataRobotError)
    assert "Malformed CSV" in message


def test_latin_1_file_read_as_utf_8_names_the_encoding_setting(
    local_server: LocalServer, tmp_path: Path
) -> None:
    good = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "good.csv", 5, seed=1).read_text()
    lines = good.splitlines()
    lines = [lines[0] + ",city"] + [line + ",Zürich" for line in lines[1:]]
    latin = tmp_path / "latin.csv"
    latin.write_bytes(("\n".join(lines) + "\n").encode("latin_1"))
    message = _fails(_operator(tmp_path, latin), DataRobotError)
    assert "not valid utf-8" in message
    assert "csvSettings.encoding" in message
    # The fix the message gives works.
    _operator(tmp_path, latin, csv_settings={"encoding": "latin_1"}).execute({"ti": _Ti()})
    assert len((tmp_path / "out.csv").read_text(encoding="latin_1").splitlines()) == 6  # header + 5 rows


def test_empty_input_file_fails_the_task_and_writes_nothing(
    local_server: LocalServer, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    message = _fails(_operator(tmp_path, empty), DataRobotError)
    assert "empty" in message


def test_missing_feature_columns_fail_the_task_naming_them(local_server: LocalServer, tmp_path: Path) -> None:
    good = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "good.csv", 5, seed=1).read_text()
    header, *rows = good.splitlines()
    names = header.split(",")
    keep = [i for i, name in enumerate(names) if name not in ("bmi", "s5")]
    cut = tmp_path / "cut.csv"
    cut.write_text("\n".join(",".join(line.split(",")[i] for i in keep) for line in [header, *rows]) + "\n")
    message = _fails(_operator(tmp_path, cut), DataRobotError)
    assert "lacks feature columns the deployment needs: bmi, s5" in message


def test_unknown_deployment_fails_the_task_naming_it(local_server: LocalServer, tmp_path: Path) -> None:
    jobs_before = len(local_server.jobs())
    message = _fails(_operator(tmp_path, deployment_id="0123456789abcdef01234567"), DataRobotApiError)
    assert "Deployment 0123456789abcdef01234567 does not exist" in message
    assert "404" in message
    assert len(local_server.jobs()) == jobs_before


def test_wrong_url_scheme_message_shows_the_right_shape() -> None:
    from airflow_batchpred.contract import SettingsValidationError, parse_job_settings

    with pytest.raises(SettingsValidationError) as caught:
        parse_job_settings(
            {
                "deployment_id": models.DEMO_REGRESSION_ID,
                "intake_settings": {"type": "s3", "url": "gs://b/k"},
                "output_settings": {"type": "localFile"},
            }
        )
    assert "url must look like s3://bucket/key, got 'gs://b/k'" in str(caught.value.problems)


# --- the catalogue itself ------------------------------------------------------------------------

_ROW = re.compile(r"^\|(?P<cells>.+)\|\s*$")
_TEST_REF = re.compile(
    r"`(?P<file>tests/[^`:]+\.py)::(?P<test>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<param>[^\]]+)\])?`"
)


def catalogue_rows() -> list[list[str]]:
    rows: list[list[str]] = []
    for line in CATALOGUE.read_text().splitlines():
        match = _ROW.match(line.strip())
        if not match or set(line.strip()) <= {"|", "-", ":", " "}:
            continue
        cells = [cell.strip() for cell in match["cells"].split(" | ")]
        if cells[0] in ("#", "area") or set(cells[0]) <= {"-", ":", " "}:
            continue
        rows.append(cells)
    return rows


def _defined_tests(file: Path) -> set[str]:
    tree = ast.parse(file.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def test_the_catalogue_has_forty_cases_each_with_an_existing_test() -> None:
    rows = catalogue_rows()
    assert len(rows) >= 40, f"only {len(rows)} rows in {CATALOGUE}"
    areas = {row[1] for row in rows}
    for area in (
        "operator arguments",
        "connections",
        "CSV content",
        "encodings",
        "database targets",
        "server requests",
    ):
        assert area in areas, f"no case for {area}"
    missing: list[str] = []
    for row in rows:
        assert len(row) == 6, f"row needs #, area, what is wrong, error, fix, test: {row}"
        number, _area, wrong, error, fix, test = row
        assert wrong, row
        assert fix, row
        assert error.count("`") >= 2 or '"' in error, f"quote the error the user sees: {row}"
        references = list(_TEST_REF.finditer(test))
        assert references, f"row {number} names no test as `tests/...py::test_name`: {test}"
        for reference in references:
            file = REPO / reference["file"]
            if not file.is_file():
                missing.append(f"row {number}: no file {reference['file']}")
                continue
            if reference["test"] not in _defined_tests(file):
                missing.append(f"row {number}: no test {reference['test']} in {reference['file']}")
            elif reference["param"] and reference["param"] not in file.read_text():
                missing.append(f"row {number}: no case id {reference['param']!r} in {reference['file']}")
    assert not missing, "\n".join(missing)
    numbers = [row[0] for row in rows]
    assert len(set(numbers)) == len(numbers), "row numbers must be unique"
