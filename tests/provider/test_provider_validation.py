"""Invalid operator arguments fail before any request reaches the server, naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_batchpred.exceptions import DataRobotSettingsError
from airflow_batchpred.operators.batch_prediction import DataRobotBatchPredictionOperator
from airflow_batchpred.operators.local_file import DataRobotLocalFileBatchPredictionOperator
from airflow_batchpred.server import models

S3_OUT = {"type": "s3", "url": "s3://bucket/out.csv"}
S3_IN = {"type": "s3", "url": "s3://bucket/in.csv"}

#: (case id, operator class, arguments, field the message must name, words of the fix it must give)
INVALID_CASES: list[tuple[str, type, dict[str, Any], str, str]] = [
    (
        "too-many-explanations",
        "local",
        {"max_explanations": 101},
        "max_explanations",
        "less than or equal to 100",
    ),
    (
        "negative-explanations",
        "local",
        {"max_explanations": -1},
        "max_explanations",
        "greater than or equal to 0",
    ),
    (
        "unknown-algorithm",
        "local",
        {"explanation_algorithm": "lime"},
        "explanation_algorithm",
        "'shap' or 'xemp'",
    ),
    (
        "passthrough-both",
        "local",
        {"passthrough_columns": ["a"], "passthrough_columns_set": "all"},
        "passthrough_columns",
        "mutually exclusive",
    ),
    (
        "passthrough-set-value",
        "local",
        {"passthrough_columns_set": "some"},
        "passthrough_columns_set",
        "'all'",
    ),
    (
        "thresholds-crossed",
        "local",
        {"threshold_low": 0.9, "threshold_high": 0.1},
        "threshold_low",
        "must not be greater than threshold_high",
    ),
    (
        "threshold-range",
        "local",
        {"prediction_threshold": 1.5},
        "prediction_threshold",
        "less than or equal to 1",
    ),
    ("delimiter", "local", {"csv_settings": {"delimiter": ";;"}}, "csv_settings.delimiter", "one character"),
    (
        "quotechar",
        "local",
        {"csv_settings": {"quotechar": "''"}},
        "csv_settings.quotechar",
        "exactly one character",
    ),
    ("encoding", "local", {"csv_settings": {"encoding": "klingon"}}, "csv_settings.encoding", "ms_kanji"),
    (
        "csv-unknown-key",
        "local",
        {"csv_settings": {"sep": ";"}},
        "csv_settings.sep",
        "unknown field; remove it",
    ),
    ("chunk-size", "local", {"chunk_size": 10}, "chunk_size", "greater than or equal to 1024"),
    ("num-concurrent", "local", {"num_concurrent": 0}, "num_concurrent", "greater than or equal to 1"),
    (
        "top-classes",
        "local",
        {"explanation_num_top_classes": 11},
        "explanation_num_top_classes",
        "less than or equal",
    ),
    ("not-a-bool", "local", {"include_probabilities": "maybe"}, "include_probabilities", "valid boolean"),
    (
        "timeseries-dates",
        "local",
        {"timeseries_settings": {"type": "forecast", "predictions_start_date": "2024-01-01T00:00:00"}},
        "timeseries_settings",
        "use forecast_point with type 'forecast'",
    ),
    (
        "timeseries-bad-date",
        "local",
        {"timeseries_settings": {"type": "forecast", "forecast_point": "next tuesday"}},
        "timeseries_settings.forecast_point",
        "datetime",
    ),
    ("no-deployment", "local", {"deployment_id": ""}, "deployment_id", "give exactly one of deployment_id"),
    (
        "missing-input",
        "local",
        {"input_file": "/nonexistent/in.csv"},
        "input_file",
        "give an existing CSV path",
    ),
    ("output-dir", "local", {"output_file": "/nonexistent/dir/out.csv"}, "output_file", "create it first"),
    ("poll-interval", "local", {"poll_interval": 0}, "poll_interval", "positive number of seconds"),
    ("timeout", "local", {"timeout": -5}, "timeout", "positive number of seconds"),
    (
        "s3-missing-url",
        "base",
        {"intake_settings": {"type": "s3"}},
        "intake_settings.url",
        "required; add it",
    ),
    (
        "s3-wrong-scheme",
        "base",
        {"intake_settings": {"type": "s3", "url": "gs://b/k"}},
        "intake_settings.url",
        "s3://",
    ),
    ("unknown-intake", "base", {"intake_settings": {"type": "ftp"}}, "intake_settings", "unknown type 'ftp'"),
    (
        "intake-unknown-field",
        "base",
        {"intake_settings": {**S3_IN, "bucket": "b"}},
        "intake_settings.bucket",
        "allowed: ",
    ),
    (
        "jdbc-update-without-keys",
        "base",
        {"output_settings": {"type": "jdbc", "data_store_id": "d", "table": "t", "statement_type": "update"}},
        "output_settings",
        "needs where_columns",
    ),
    (
        "local-output-no-wait",
        "local",
        {"wait_for_completion": False},
        "wait_for_completion",
        "set it to True",
    ),
    (
        "hook-params-key",
        "local",
        {"hook_params": {"retry_args": {}}},
        "hook_params",
        "allowed: timeout_seconds",
    ),
    ("hook-params-value", "local", {"hook_params": {"retry_limit": 0}}, "hook_params", "at least 1"),
    (
        "input-file-with-s3",
        "base",
        {"intake_settings": S3_IN, "input_file": "x.csv"},
        "input_file",
        "remove it",
    ),
]


def build(kind: str, arguments: dict[str, Any], tmp_path: Path) -> DataRobotBatchPredictionOperator:
    source = tmp_path / "in.csv"
    source.write_text("a,b\n1,2\n")
    if kind == "local":
        defaults: dict[str, Any] = {
            "deployment_id": models.DEMO_REGRESSION_ID,
            "input_file": str(source),
            "output_file": str(tmp_path / "out.csv"),
        }
        return DataRobotLocalFileBatchPredictionOperator(task_id="score", **{**defaults, **arguments})
    defaults = {
        "deployment_id": models.DEMO_REGRESSION_ID,
        "intake_settings": S3_IN,
        "output_settings": S3_OUT,
    }
    return DataRobotBatchPredictionOperator(task_id="score", **{**defaults, **arguments})


def test_there_are_at_least_fifteen_cases() -> None:
    assert len({case[0] for case in INVALID_CASES}) == len(INVALID_CASES) >= 15


@pytest.mark.parametrize(
    ("kind", "arguments", "field", "fix"),
    [case[1:] for case in INVALID_CASES],
    ids=[case[0] for case in INVALID_CASES],
)
def test_invalid_settings_fail_before_any_request(
    kind: str,
    arguments: dict[str, Any],
    field: str,
    fix: str,
    faults: Any,
    local_server: Any,
    tmp_path: Path,
) -> None:
    jobs_before = len(local_server.jobs())
    # rate 0 injects nothing but counts every API request that reaches the server.
    faults.set(rate=0.0, kinds=["500"], routes=".*")
    operator = build(kind, arguments, tmp_path)
    with pytest.raises(DataRobotSettingsError) as error:
        operator.execute(context={})
    assert faults.counters()["matchedRequests"] == 0
    assert len(local_server.jobs()) == jobs_before
    problems = error.value.problems
    assert any(path.startswith(field) or field in message for path, message in problems), problems
    assert field in str(error.value)
    assert fix in str(error.value)
    assert "'score'" in str(error.value)


def test_invalid_settings_fail_the_task_without_retries(
    run_dag: Any, local_server: Any, faults: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow.utils.session import create_session

    jobs_before = len(local_server.jobs())
    faults.set(rate=0.0, kinds=["500"], routes=".*")
    run = run_dag(
        "batchpred_invalid_settings",
        {"deployment_id": models.DEMO_REGRESSION_ID, "intake_settings": S3_IN, "max_explanations": 500},
    )
    assert str(getattr(run.state, "value", run.state)) == "failed"
    with create_session() as session:
        (task,) = run.get_task_instances(session=session)
        assert (str(getattr(task.state, "value", task.state)), task.try_number) == ("failed", 1)
    assert faults.counters()["matchedRequests"] == 0
    assert len(local_server.jobs()) == jobs_before
    assert "max_explanations: Input should be less than or equal to 100" in capsys.readouterr().out
