"""The official ``datarobot`` client (3.20.0) scores end to end against the local server, and the
scored values equal an in-process prediction of the same model."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from conftest import Api, assert_close, expected_predictions, read_strings, target_column

from airflow_batchpred.server.models import (
    DEMO_BINARY_ID,
    DEMO_MULTICLASS_ID,
    DEMO_REGRESSION_ID,
    ModelRegistry,
    explanation_columns,
    prediction_column,
    write_demo_csv,
)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


@pytest.fixture
def dr(dr_client: Any) -> Any:
    import datarobot

    return datarobot


def test_score_to_file_with_passthrough_matches_in_process_predictions(
    dr: Any, registry: ModelRegistry, tmp_path: Path
) -> None:
    source = write_demo_csv(DEMO_REGRESSION_ID, tmp_path / "to_predict.csv", 300, seed=3)
    target = tmp_path / "predicted.csv"

    job = dr.BatchPredictionJob.score_to_file(
        DEMO_REGRESSION_ID, str(source), str(target), passthrough_columns_set="all"
    )
    job.wait_for_completion()

    status = job.get_status()
    assert status["status"] == "COMPLETED"
    assert status["scored_rows"] == 300
    inputs = read_strings(source)
    result = pa_csv.read_csv(target)
    prediction = target_column(registry, DEMO_REGRESSION_ID)
    assert result.column_names == [*inputs.column_names, prediction]
    assert result.num_rows == 300
    assert_close(
        result[prediction].to_pylist(),
        expected_predictions(registry, DEMO_REGRESSION_ID, inputs)[prediction].to_pylist(),
    )
    as_text = read_strings(target)
    for name in inputs.column_names:
        assert as_text[name].to_pylist() == inputs[name].to_pylist(), name


def test_score_to_file_with_explanations_matches_in_process(
    dr: Any, registry: ModelRegistry, tmp_path: Path
) -> None:
    source = write_demo_csv(DEMO_BINARY_ID, tmp_path / "to_predict.csv", 200, seed=5)
    target = tmp_path / "predicted.csv"

    job = dr.BatchPredictionJob.score_to_file(
        DEMO_BINARY_ID, str(source), str(target), max_explanations=3, threshold_high=0.5, threshold_low=0.15
    )
    job.wait_for_completion()

    result = pa_csv.read_csv(target)
    expected = expected_predictions(
        registry,
        DEMO_BINARY_ID,
        read_strings(source),
        max_explanations=3,
        threshold_high=0.5,
        threshold_low=0.15,
    )
    assert result.column_names == expected.column_names
    assert result.num_rows == 200
    info = registry.get(DEMO_BINARY_ID)
    assert info is not None
    assert info.positive_class is not None
    probability = prediction_column(info.target_name, info.positive_class)
    assert_close(result[probability].to_pylist(), expected[probability].to_pylist())
    feature, strength, _actual, _qualitative = explanation_columns(1)
    # An unexplained row has empty cells; CSV cannot tell an empty string from a null.
    assert result[feature].to_pylist() == [name or "" for name in expected[feature].to_pylist()]
    explained = [i for i, value in enumerate(expected[strength].to_pylist()) if value is not None]
    assert explained, "the thresholds left no row explained"
    assert_close(
        [result[strength][i].as_py() for i in explained], [expected[strength][i].as_py() for i in explained]
    )


def test_score_to_file_with_semicolon_quote_and_shift_jis(
    dr: Any, registry: ModelRegistry, tmp_path: Path
) -> None:
    plain = read_strings(write_demo_csv(DEMO_REGRESSION_ID, tmp_path / "plain.csv", 50, seed=7))
    labels = [f"患者;{i}" for i in range(plain.num_rows)]
    with_labels = plain.append_column("名前", pa.array(labels))
    lines = [";".join(with_labels.column_names)]
    for row in with_labels.to_pylist():
        lines.append(";".join(f"'{v}'" if ";" in v else v for v in row.values()))
    source = tmp_path / "to_predict.csv"
    source.write_bytes(("\n".join(lines) + "\n").encode("ms_kanji"))
    target = tmp_path / "predicted.csv"

    dr.BatchPredictionJob.score_to_file(
        DEMO_REGRESSION_ID,
        str(source),
        str(target),
        passthrough_columns=["名前"],
        csv_settings={"delimiter": ";", "quotechar": "'", "encoding": "ms_kanji"},
    )

    raw = target.read_bytes()
    assert "患者".encode("ms_kanji") in raw
    result = read_strings(raw.decode("ms_kanji").encode(), delimiter=";", quote_char="'")
    prediction = target_column(registry, DEMO_REGRESSION_ID)
    assert result.column_names == ["名前", prediction]
    assert result["名前"].to_pylist() == labels
    assert_close(
        result[prediction].to_pylist(),
        expected_predictions(registry, DEMO_REGRESSION_ID, plain)[prediction].to_pylist(),
    )


def test_multipart_local_file_intake_and_download(dr: Any, registry: ModelRegistry, tmp_path: Path) -> None:
    # More than the client's 5 MiB part size, so the upload really has several parts.
    source = write_demo_csv(DEMO_REGRESSION_ID, tmp_path / "big.csv", 140_000, seed=11)
    assert source.stat().st_size > 5 * 1024 * 1024

    job = dr.BatchPredictionJob.score(
        DEMO_REGRESSION_ID, intake_settings={"type": "localFile", "file": str(source), "multipart": True}
    )
    buffer = io.BytesIO()
    job.download(buffer)

    assert job.get_status()["status"] == "COMPLETED"
    assert job.get_status()["job_spec"]["intake_settings"]["multipart"] is True
    result = pa_csv.read_csv(pa.BufferReader(buffer.getvalue()))
    prediction = target_column(registry, DEMO_REGRESSION_ID)
    assert result.num_rows == 140_000
    expected = expected_predictions(registry, DEMO_REGRESSION_ID, read_strings(source))[prediction]
    assert_close(result[prediction].to_pylist(), expected.to_pylist())


def test_dataset_intake_to_local_file(dr: Any, registry: ModelRegistry, tmp_path: Path) -> None:
    source = write_demo_csv(DEMO_MULTICLASS_ID, tmp_path / "catalog.csv", 120, seed=13)
    dataset = dr.Dataset.create_from_file(file_path=str(source))
    assert dataset.processing_state == "COMPLETED"
    assert dataset.row_count == 120
    fetched = dr.Dataset.get(dataset.id)
    target = tmp_path / "predicted.csv"

    job = dr.BatchPredictionJob.score(
        DEMO_MULTICLASS_ID,
        intake_settings={"type": "dataset", "dataset": fetched},
        output_settings={"type": "localFile", "path": str(target)},
    )
    job.wait_for_completion()

    status = job.get_status()
    assert status["status"] == "COMPLETED"
    assert status["job_spec"]["intake_settings"]["dataset_version_id"] == fetched.version_id
    result = pa_csv.read_csv(target)
    expected = expected_predictions(registry, DEMO_MULTICLASS_ID, read_strings(source))
    assert result.column_names == expected.column_names
    info = registry.get(DEMO_MULTICLASS_ID)
    assert info is not None
    for name in info.classes:
        column = prediction_column(info.target_name, name)
        assert_close(result[column].to_pylist(), expected[column].to_pylist())
    label = prediction_column(info.target_name)
    assert [str(v) for v in result[label].to_pylist()] == [str(v) for v in expected[label].to_pylist()]


def test_score_pandas_joins_predictions_back(dr: Any, registry: ModelRegistry, tmp_path: Path) -> None:
    import pandas as pd

    source = write_demo_csv(DEMO_REGRESSION_ID, tmp_path / "frame.csv", 150, seed=17)
    frame = pd.read_csv(source)

    job, scored = dr.BatchPredictionJob.score_pandas(DEMO_REGRESSION_ID, frame)

    prediction = target_column(registry, DEMO_REGRESSION_ID)
    assert job.get_status()["status"] == "COMPLETED"
    assert len(scored) == 150
    assert list(scored["age"]) == list(frame["age"])
    expected = expected_predictions(registry, DEMO_REGRESSION_ID, read_strings(source))[prediction]
    assert_close(scored[prediction].tolist(), expected.to_pylist())


def test_get_status_and_delete_through_the_client(dr: Any, api: Api) -> None:
    created = api.create_job({"deploymentId": DEMO_REGRESSION_ID})
    job = dr.BatchPredictionJob.get(created["id"])
    assert job.get_status()["status"] == "INITIALIZING"

    job.delete()

    after = api.job(created["id"])
    assert after["status"] == "ABORTED"
    assert "aborted by request" in after["statusDetails"]


def test_client_refuses_nothing_about_the_version_route(local_server: Any) -> None:
    import datarobot

    client = datarobot.Client(endpoint=local_server.endpoint, token=local_server.token)
    assert client.endpoint == local_server.endpoint
    assert os.path.basename(client.endpoint.rstrip("/")) == "v2"
