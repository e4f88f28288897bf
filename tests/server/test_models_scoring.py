"""Scoring through the models package: column layout per target type, knobs, values, bad input."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from airflow_batchpred.server.models import (
    DEMO_BINARY_ID,
    DEMO_MULTICLASS_ID,
    DEMO_REGRESSION_ID,
    ModelRegistry,
    ScoreOptions,
    UnsupportedScoreOptionError,
    write_demo_csv,
)

ROWS = 400


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    models = ModelRegistry(tmp_path_factory.mktemp("models"))
    models.ensure_demo_models()
    return models


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


def read_as_strings(path: Path) -> pa.RecordBatch:
    """Read a CSV the way the server does: every column as text."""
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
    table = pa_csv.read_csv(
        path,
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
        ),
    )
    return table.combine_chunks().to_batches()[0]


def demo_batch(deployment_id: str, data_dir: Path, *, seed: int = 1, rows: int = ROWS) -> pa.RecordBatch:
    path = write_demo_csv(deployment_id, data_dir / f"{deployment_id}-{seed}-{rows}.csv", rows, seed=seed)
    return read_as_strings(path)


def feature_matrix(batch: pa.RecordBatch, names: tuple[str, ...]) -> np.ndarray:
    """The features as floats, independently of the scorer (empty text -> NaN)."""
    columns = []
    for name in names:
        cells = batch.column(batch.schema.get_field_index(name)).to_pylist()
        columns.append([float(cell) if cell and cell.strip() not in ("NA",) else np.nan for cell in cells])
    return np.array(columns, dtype=np.float64).T


def test_regression_columns_and_values_match_in_process_predict(
    registry: ModelRegistry, data_dir: Path
) -> None:
    batch = demo_batch(DEMO_REGRESSION_ID, data_dir)
    scorer = registry.scorer(DEMO_REGRESSION_ID)
    scored = scorer.score(batch, ScoreOptions())

    assert scored.table.column_names == ["progression_PREDICTION"]
    model = registry.load_model(DEMO_REGRESSION_ID)
    expected = model.predict(feature_matrix(batch, scorer.deployment.feature_names))
    np.testing.assert_allclose(scored.table["progression_PREDICTION"].to_numpy(), expected, rtol=0, atol=1e-9)
    assert not scored.failed.any()
    assert scored.status.to_pylist() == ["OK"] * ROWS


def test_binary_columns_and_values_match_in_process_predict_proba(
    registry: ModelRegistry, data_dir: Path
) -> None:
    batch = demo_batch(DEMO_BINARY_ID, data_dir)
    scorer = registry.scorer(DEMO_BINARY_ID)
    scored = scorer.score(batch, ScoreOptions())
    table = scored.table

    assert table.column_names == [
        "diagnosis_malignant_PREDICTION",
        "diagnosis_benign_PREDICTION",
        "diagnosis_PREDICTION",
        "THRESHOLD",
        "POSITIVE_CLASS",
    ]
    model = registry.load_model(DEMO_BINARY_ID)
    features = feature_matrix(batch, scorer.deployment.feature_names)
    proba = model.predict_proba(features)
    classes = list(model.classes_)
    np.testing.assert_allclose(
        table["diagnosis_malignant_PREDICTION"].to_numpy(),
        proba[:, classes.index("malignant")],
        rtol=0,
        atol=1e-9,
    )
    np.testing.assert_allclose(
        table["diagnosis_benign_PREDICTION"].to_numpy(), proba[:, classes.index("benign")], rtol=0, atol=1e-9
    )
    assert table["diagnosis_PREDICTION"].to_pylist() == list(model.predict(features))
    assert set(table["diagnosis_PREDICTION"].to_pylist()) == {"malignant", "benign"}
    assert table["THRESHOLD"].to_pylist() == [0.5] * ROWS
    assert table["POSITIVE_CLASS"].to_pylist() == ["malignant"] * ROWS


def test_multiclass_columns_and_values_match_in_process_predict_proba(
    registry: ModelRegistry, data_dir: Path
) -> None:
    batch = demo_batch(DEMO_MULTICLASS_ID, data_dir)
    scorer = registry.scorer(DEMO_MULTICLASS_ID)
    table = scorer.score(batch, ScoreOptions()).table

    assert table.column_names == [
        "species_setosa_PREDICTION",
        "species_versicolor_PREDICTION",
        "species_virginica_PREDICTION",
        "species_PREDICTION",
    ]
    model = registry.load_model(DEMO_MULTICLASS_ID)
    features = feature_matrix(batch, scorer.deployment.feature_names)
    proba = model.predict_proba(features)
    for index, name in enumerate(model.classes_):
        np.testing.assert_allclose(
            table[f"species_{name}_PREDICTION"].to_numpy(), proba[:, index], rtol=0, atol=1e-9
        )
    assert table["species_PREDICTION"].to_pylist() == list(model.predict(features))
    assert set(table["species_PREDICTION"].to_pylist()) == {"setosa", "versicolor", "virginica"}


def test_prediction_threshold_decides_the_binary_label(registry: ModelRegistry, data_dir: Path) -> None:
    batch = demo_batch(DEMO_BINARY_ID, data_dir)
    scorer = registry.scorer(DEMO_BINARY_ID)
    default = scorer.score(batch, ScoreOptions()).table
    strict = scorer.score(batch, ScoreOptions(prediction_threshold=0.99)).table

    positive = strict["diagnosis_malignant_PREDICTION"].to_numpy()
    expected = np.where(positive > 0.99, "malignant", "benign")
    assert strict["diagnosis_PREDICTION"].to_pylist() == expected.tolist()
    assert strict["THRESHOLD"].to_pylist() == [0.99] * ROWS
    changed = sum(a != b for a, b in zip(default["diagnosis_PREDICTION"].to_pylist(), expected, strict=True))
    assert changed == int(np.count_nonzero((positive > 0.5) & (positive <= 0.99)))
    assert changed > 0


def test_include_probabilities_false_drops_probability_columns(
    registry: ModelRegistry, data_dir: Path
) -> None:
    options = ScoreOptions(include_probabilities=False)
    binary = registry.scorer(DEMO_BINARY_ID).score(demo_batch(DEMO_BINARY_ID, data_dir), options).table
    multiclass = (
        registry.scorer(DEMO_MULTICLASS_ID).score(demo_batch(DEMO_MULTICLASS_ID, data_dir), options).table
    )

    assert binary.column_names == ["diagnosis_PREDICTION", "THRESHOLD", "POSITIVE_CLASS"]
    assert multiclass.column_names == ["species_PREDICTION"]


def test_include_probabilities_classes_keeps_only_listed_classes(
    registry: ModelRegistry, data_dir: Path
) -> None:
    scorer = registry.scorer(DEMO_MULTICLASS_ID)
    batch = demo_batch(DEMO_MULTICLASS_ID, data_dir)
    full = scorer.score(batch, ScoreOptions()).table
    kept = scorer.score(batch, ScoreOptions(include_probabilities_classes=("virginica",))).table

    assert kept.column_names == ["species_virginica_PREDICTION", "species_PREDICTION"]
    assert kept["species_virginica_PREDICTION"].equals(full["species_virginica_PREDICTION"])
    with pytest.raises(UnsupportedScoreOptionError, match=r"unknown classes \['tulip'\]"):
        scorer.score(batch, ScoreOptions(include_probabilities_classes=("tulip",)))


def test_numeric_input_columns_score_like_text_columns(registry: ModelRegistry, data_dir: Path) -> None:
    path = write_demo_csv(DEMO_BINARY_ID, data_dir / "typed.csv", 300, seed=5)
    typed = pa_csv.read_csv(path).combine_chunks().to_batches()[0]
    assert pa.types.is_floating(typed.schema.field("mean_radius").type)
    scorer = registry.scorer(DEMO_BINARY_ID)

    from_numbers = scorer.score(typed, ScoreOptions(max_explanations=3)).table
    from_text = scorer.score(read_as_strings(path), ScoreOptions(max_explanations=3)).table

    assert from_numbers.equals(from_text)


def test_non_numeric_cells_fail_their_rows_with_a_reason(registry: ModelRegistry) -> None:
    scorer = registry.scorer(DEMO_REGRESSION_ID)
    names = scorer.deployment.feature_names
    rows = [
        dict.fromkeys(names, "1.5"),
        {**dict.fromkeys(names, "1.5"), "bmi": "abc"},
        dict.fromkeys(names, "2"),
        {**dict.fromkeys(names, "1.5"), "age": "1,5", "bmi": "x"},  # the first bad column is reported
    ]
    batch = pa.RecordBatch.from_pylist(rows)
    scored = scorer.score(batch, ScoreOptions(max_explanations=2))

    assert scored.failed.tolist() == [False, True, False, True]
    assert scored.status.to_pylist() == [
        "OK",
        "Could not convert 'abc' in column 'bmi' to a number",
        "OK",
        "Could not convert '1,5' in column 'age' to a number",
    ]
    predictions = scored.table["progression_PREDICTION"].to_pylist()
    assert predictions[1] is None
    assert predictions[3] is None
    assert scored.table["EXPLANATION_1_FEATURE_NAME"].to_pylist()[1] is None
    model = registry.load_model(DEMO_REGRESSION_ID)
    good = model.predict(np.array([[1.5] * len(names), [2.0] * len(names)]))
    np.testing.assert_allclose([predictions[0], predictions[2]], good, rtol=0, atol=1e-9)


def test_missing_feature_is_listed_and_extra_columns_are_ignored(
    registry: ModelRegistry, data_dir: Path
) -> None:
    scorer = registry.scorer(DEMO_MULTICLASS_ID)
    batch = demo_batch(DEMO_MULTICLASS_ID, data_dir)

    assert scorer.missing_features(batch.schema.names) == []
    assert scorer.missing_features(["sepal_length_cm", "petal_width_cm", "row_id"]) == [
        "sepal_width_cm",
        "petal_length_cm",
    ]
    without = batch.drop_columns(["petal_length_cm"])
    with pytest.raises(UnsupportedScoreOptionError, match="petal_length_cm"):
        scorer.score(without, ScoreOptions())

    extra = batch.append_column("row_id", pa.array([str(i) for i in range(batch.num_rows)]))
    reordered = extra.select(["row_id", *reversed(batch.schema.names)])
    assert scorer.score(reordered, ScoreOptions()).table.equals(scorer.score(batch, ScoreOptions()).table)


def test_empty_and_na_cells_are_imputed_not_failed(registry: ModelRegistry) -> None:
    scorer = registry.scorer(DEMO_REGRESSION_ID)
    names = scorer.deployment.feature_names
    values = [50.0, 1.0, 25.0, 90.0, 190.0, 115.0, 50.0, 4.0, 4.6, 90.0]
    cells = [str(v) for v in values]
    rows = [
        dict(zip(names, cells, strict=True)),
        {**dict(zip(names, cells, strict=True)), "bmi": ""},
        {**dict(zip(names, cells, strict=True)), "s1": "NA", "bp": "  "},
        {**dict(zip(names, cells, strict=True)), "age": " 50.0 "},
    ]
    scored = scorer.score(pa.RecordBatch.from_pylist(rows), ScoreOptions(max_explanations=10))

    assert not scored.failed.any()
    assert scored.status.to_pylist() == ["OK"] * 4
    matrix = np.array([values] * 4)
    matrix[1, names.index("bmi")] = np.nan
    matrix[2, names.index("s1")] = np.nan
    matrix[2, names.index("bp")] = np.nan
    expected = registry.load_model(DEMO_REGRESSION_ID).predict(matrix)
    np.testing.assert_allclose(scored.table["progression_PREDICTION"].to_numpy(), expected, rtol=0, atol=1e-9)
    assert expected[1] != expected[0]  # the imputed mean really replaced the value
    # The missing cell is explained with a null actual value.
    row = scored.table.slice(1, 1).to_pylist()[0]
    bmi_slot = next(n for n in range(1, 11) if row[f"EXPLANATION_{n}_FEATURE_NAME"] == "bmi")
    assert row[f"EXPLANATION_{bmi_slot}_ACTUAL_VALUE"] is None


def test_failed_rows_have_null_cells_in_every_column(registry: ModelRegistry) -> None:
    scorer = registry.scorer(DEMO_BINARY_ID)
    names = scorer.deployment.feature_names
    rows = [dict.fromkeys(names, "1"), {**dict.fromkeys(names, "1"), names[-1]: "oops"}]
    scored = scorer.score(pa.RecordBatch.from_pylist(rows), ScoreOptions(max_explanations=1))

    assert scored.failed.tolist() == [False, True]
    assert all(value is None for value in scored.table.slice(1, 1).to_pylist()[0].values())
    assert all(value is not None for value in scored.table.slice(0, 1).to_pylist()[0].values())


def test_score_options_out_of_range_are_refused(registry: ModelRegistry, data_dir: Path) -> None:
    scorer = registry.scorer(DEMO_REGRESSION_ID)
    batch = demo_batch(DEMO_REGRESSION_ID, data_dir, rows=5)
    with pytest.raises(UnsupportedScoreOptionError, match="between 0 and 100"):
        scorer.score(batch, ScoreOptions(max_explanations=101))
    with pytest.raises(UnsupportedScoreOptionError, match="'xemp' is not supported"):
        scorer.score(batch, ScoreOptions(max_explanations=1, explanation_algorithm="xemp"))
    assert (
        scorer.score(batch, ScoreOptions(max_explanations=1, explanation_algorithm="shap")).table.num_rows
        == 5
    )


def test_scorer_is_cached_and_safe_to_share_between_threads(registry: ModelRegistry, data_dir: Path) -> None:
    scorer = registry.scorer(DEMO_BINARY_ID)
    assert registry.scorer(DEMO_BINARY_ID) is scorer
    batch = demo_batch(DEMO_BINARY_ID, data_dir, seed=9, rows=2000)
    options = ScoreOptions(max_explanations=5)
    reference = scorer.score(batch, options).table
    results: list[pa.Table] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(scorer.score(batch, options).table)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(results) == 12
    assert all(table.equals(reference) for table in results)


def test_infinite_values_fail_their_rows_and_nan_text_is_missing(registry: ModelRegistry) -> None:
    scorer = registry.scorer(DEMO_MULTICLASS_ID)
    names = scorer.deployment.feature_names
    rows = [
        dict.fromkeys(names, "1.0"),
        {**dict.fromkeys(names, "1.0"), "petal_width_cm": "-inf"},
        {**dict.fromkeys(names, "1.0"), "sepal_width_cm": "nan"},
    ]
    scored = scorer.score(pa.RecordBatch.from_pylist(rows), ScoreOptions())

    assert scored.failed.tolist() == [False, True, False]
    assert scored.status.to_pylist() == [
        "OK",
        "Value '-inf' in column 'petal_width_cm' is not a finite number",
        "OK",
    ]
    assert scored.table["species_PREDICTION"].null_count == 1


@pytest.mark.parametrize("deployment_id", [DEMO_REGRESSION_ID, DEMO_BINARY_ID, DEMO_MULTICLASS_ID])
def test_empty_and_all_failed_batches_keep_the_column_layout(
    registry: ModelRegistry, deployment_id: str
) -> None:
    scorer = registry.scorer(deployment_id)
    names = scorer.deployment.feature_names
    options = ScoreOptions(max_explanations=3)
    full = scorer.score(pa.RecordBatch.from_pylist([dict.fromkeys(names, "1")]), options).table
    empty = scorer.score(
        pa.RecordBatch.from_pylist([], schema=pa.schema([(n, pa.string()) for n in names])), options
    )
    all_failed = scorer.score(pa.RecordBatch.from_pylist([dict.fromkeys(names, "x")] * 3), options)

    assert empty.table.schema.equals(full.schema)
    assert empty.table.num_rows == 0
    assert empty.failed.tolist() == []
    assert all_failed.table.schema.equals(full.schema)
    assert all_failed.failed.tolist() == [True, True, True]
    assert all(column.null_count == 3 for column in all_failed.table.columns)
