"""Prediction explanations: additivity (acceptance 3), exact linear terms, layout and thresholds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from sklearn.datasets import load_diabetes
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from airflow_batchpred.server.models import (
    DEMO_BINARY_ID,
    DEMO_MULTICLASS_ID,
    DEMO_REGRESSION_ID,
    ModelRegistry,
    ScoredBatch,
    ScoreOptions,
    UnsupportedScoreOptionError,
    explanation_columns,
    save_skops,
    write_demo_csv,
)

ROWS = 300


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    models = ModelRegistry(tmp_path_factory.mktemp("models"))
    models.ensure_demo_models()
    return models


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


def demo_table(
    deployment_id: str, data_dir: Path, *, missing_fraction: float = 0.0, seed: int = 3
) -> pa.Table:
    path = write_demo_csv(
        deployment_id,
        data_dir / f"{deployment_id}-{seed}.csv",
        ROWS,
        seed=seed,
        missing_fraction=missing_fraction,
    )
    return pa_csv.read_csv(path).combine_chunks()


def features_of(table: pa.Table, names: tuple[str, ...]) -> np.ndarray:
    return np.column_stack([table[name].to_numpy(zero_copy_only=False) for name in names]).astype(np.float64)


def strengths_of(scored: ScoredBatch, count: int) -> np.ndarray:
    return np.column_stack(
        [
            scored.table[f"EXPLANATION_{n}_STRENGTH"].to_numpy(zero_copy_only=False)
            for n in range(1, count + 1)
        ]
    )


def test_linear_regression_strengths_add_up_to_prediction_minus_base_value(
    registry: ModelRegistry, data_dir: Path
) -> None:
    scorer = registry.scorer(DEMO_REGRESSION_ID)
    table = demo_table(DEMO_REGRESSION_ID, data_dir, missing_fraction=0.1)
    n_features = len(scorer.deployment.features)
    scored = scorer.score(table.to_batches()[0], ScoreOptions(max_explanations=n_features))

    prediction = registry.load_model(DEMO_REGRESSION_ID).predict(
        features_of(table, scorer.deployment.feature_names)
    )
    total = strengths_of(scored, n_features).sum(axis=1)
    np.testing.assert_allclose(total, prediction - scorer.base_value(), rtol=0, atol=1e-9)


def test_linear_strengths_are_coef_times_distance_from_training_mean(
    registry: ModelRegistry, data_dir: Path
) -> None:
    scorer = registry.scorer(DEMO_REGRESSION_ID)
    names = scorer.deployment.feature_names
    table = demo_table(DEMO_REGRESSION_ID, data_dir)
    scored = scorer.score(table.to_batches()[0], ScoreOptions(max_explanations=len(names)))

    model = registry.load_model(DEMO_REGRESSION_ID)
    preprocess = model[:-1]
    transformed = preprocess.transform(features_of(table, names))
    training_mean = preprocess.transform(load_diabetes(scaled=False).data).mean(axis=0)
    expected = model[-1].coef_ * (transformed - training_mean)
    rows = scored.table.to_pylist()
    for row_index, row in enumerate(rows):
        for n in range(1, len(names) + 1):
            feature = names.index(row[f"EXPLANATION_{n}_FEATURE_NAME"])
            assert row[f"EXPLANATION_{n}_STRENGTH"] == pytest.approx(expected[row_index, feature], abs=1e-9)
    assert scorer.base_value() == pytest.approx(
        model.predict(load_diabetes(scaled=False).data).mean(), abs=1e-9
    )


def test_multiclass_linear_strengths_add_up_to_predicted_class_logit_minus_base_value(
    registry: ModelRegistry, data_dir: Path
) -> None:
    scorer = registry.scorer(DEMO_MULTICLASS_ID)
    table = demo_table(DEMO_MULTICLASS_ID, data_dir, missing_fraction=0.05)
    scored = scorer.score(table.to_batches()[0], ScoreOptions(max_explanations=4))

    model = registry.load_model(DEMO_MULTICLASS_ID)
    features = features_of(table, scorer.deployment.feature_names)
    logits = model.decision_function(features)
    predicted = np.argmax(logits, axis=1)
    assert scored.table["species_PREDICTION"].to_pylist() == model.classes_[predicted].tolist()
    base = scorer.base_value()
    assert isinstance(base, np.ndarray)
    assert base.shape == (3,)
    expected = logits[np.arange(ROWS), predicted] - base[predicted]
    np.testing.assert_allclose(strengths_of(scored, 4).sum(axis=1), expected, rtol=0, atol=1e-9)


def test_tree_strengths_add_up_to_log_odds_minus_expected_value(
    registry: ModelRegistry, data_dir: Path
) -> None:
    scorer = registry.scorer(DEMO_BINARY_ID)
    table = demo_table(DEMO_BINARY_ID, data_dir, missing_fraction=0.05)
    scored = scorer.score(table.to_batches()[0], ScoreOptions(max_explanations=30))

    model = registry.load_model(DEMO_BINARY_ID)
    assert list(model.classes_) == ["benign", "malignant"]  # decision_function is malignant's log-odds
    log_odds = model.decision_function(features_of(table, scorer.deployment.feature_names))
    np.testing.assert_allclose(
        strengths_of(scored, 30).sum(axis=1), log_odds - scorer.base_value(), rtol=0, atol=1e-6
    )


def test_tree_strengths_follow_the_positive_class(registry: ModelRegistry, data_dir: Path) -> None:
    demo = registry.get(DEMO_BINARY_ID)
    assert demo is not None
    benign_first = registry.register(
        registry.model_path(DEMO_BINARY_ID),
        target_name="diagnosis",
        target_type="Binary",
        positive_class="benign",
        feature_names=demo.feature_names,
    )
    scorer = registry.scorer(benign_first.id)
    table = demo_table(DEMO_BINARY_ID, data_dir)
    scored = scorer.score(table.to_batches()[0], ScoreOptions(max_explanations=30))

    model = registry.load_model(DEMO_BINARY_ID)
    benign_log_odds = -model.decision_function(features_of(table, scorer.deployment.feature_names))
    np.testing.assert_allclose(
        strengths_of(scored, 30).sum(axis=1), benign_log_odds - scorer.base_value(), rtol=0, atol=1e-6
    )
    assert scored.table.column_names[:2] == ["diagnosis_benign_PREDICTION", "diagnosis_malignant_PREDICTION"]
    assert scorer.base_value() == pytest.approx(-registry.scorer(DEMO_BINARY_ID).base_value(), abs=1e-12)


def test_explanation_columns_are_ordered_by_strength_with_actual_values(
    registry: ModelRegistry, data_dir: Path
) -> None:
    scorer = registry.scorer(DEMO_BINARY_ID)
    table = demo_table(DEMO_BINARY_ID, data_dir, missing_fraction=0.1)
    scored = scorer.score(table.to_batches()[0], ScoreOptions(max_explanations=10))

    expected_names = [column for n in range(1, 11) for column in explanation_columns(n)]
    assert scored.table.column_names[5:] == expected_names
    assert explanation_columns(1) == (
        "EXPLANATION_1_FEATURE_NAME",
        "EXPLANATION_1_STRENGTH",
        "EXPLANATION_1_ACTUAL_VALUE",
        "EXPLANATION_1_QUALITATIVE_STRENGTH",
    )
    inputs = table.to_pylist()
    for row, source in zip(scored.table.to_pylist(), inputs, strict=True):
        strengths = [row[f"EXPLANATION_{n}_STRENGTH"] for n in range(1, 11)]
        magnitudes = np.abs(strengths)
        assert np.all(np.diff(magnitudes) <= 0)
        names = [row[f"EXPLANATION_{n}_FEATURE_NAME"] for n in range(1, 11)]
        assert len(set(names)) == 10
        for n, name in enumerate(names, start=1):
            assert row[f"EXPLANATION_{n}_ACTUAL_VALUE"] == source[name]  # None when the cell was empty
            ratio = magnitudes[n - 1] / magnitudes[0]
            symbols = 3 if ratio >= 0.5 else 2 if ratio >= 0.25 else 1
            sign = "-" if strengths[n - 1] < 0 else "+"
            assert row[f"EXPLANATION_{n}_QUALITATIVE_STRENGTH"] == sign * symbols
        assert row["EXPLANATION_1_QUALITATIVE_STRENGTH"] in ("+++", "---")
    empty_cells_explained = [
        value
        for row in scored.table.to_pylist()
        for key, value in row.items()
        if key.endswith("_ACTUAL_VALUE")
    ]
    assert None in empty_cells_explained


def test_more_explanations_than_features_leaves_extra_columns_null(
    registry: ModelRegistry, data_dir: Path
) -> None:
    scorer = registry.scorer(DEMO_MULTICLASS_ID)
    table = demo_table(DEMO_MULTICLASS_ID, data_dir)
    scored = scorer.score(table.to_batches()[0], ScoreOptions(max_explanations=6))

    assert scored.table.num_columns == 4 + 6 * 4
    for n in (1, 2, 3, 4):
        assert scored.table[f"EXPLANATION_{n}_FEATURE_NAME"].null_count == 0
    for n in (5, 6):
        for column in explanation_columns(n):
            assert scored.table[column].null_count == ROWS
    assert pa.types.is_string(scored.table["EXPLANATION_6_FEATURE_NAME"].type)
    assert pa.types.is_floating(scored.table["EXPLANATION_6_STRENGTH"].type)


@pytest.mark.parametrize(
    ("deployment_id", "value_column", "high", "low"),
    [
        (DEMO_REGRESSION_ID, "progression_PREDICTION", 200.0, 100.0),
        (DEMO_BINARY_ID, "diagnosis_malignant_PREDICTION", 0.5, 0.15),
        (DEMO_BINARY_ID, "diagnosis_malignant_PREDICTION", 0.5, None),
        (DEMO_REGRESSION_ID, "progression_PREDICTION", None, 120.0),
    ],
)
def test_thresholds_select_the_explained_rows(
    registry: ModelRegistry,
    data_dir: Path,
    deployment_id: str,
    value_column: str,
    high: float | None,
    low: float | None,
) -> None:
    scorer = registry.scorer(deployment_id)
    batch = demo_table(deployment_id, data_dir).to_batches()[0]
    everything = scorer.score(batch, ScoreOptions(max_explanations=3))
    scored = scorer.score(batch, ScoreOptions(max_explanations=3, threshold_high=high, threshold_low=low))

    value = scored.table[value_column].to_numpy()
    selected = np.zeros(ROWS, dtype=bool)
    if high is not None:
        selected |= value > high
    if low is not None:
        selected |= value < low
    assert 0 < selected.sum() < ROWS
    explained = scored.table["EXPLANATION_1_FEATURE_NAME"].is_valid().to_numpy(zero_copy_only=False)
    assert explained.tolist() == selected.tolist()
    for column in explanation_columns(3):
        assert scored.table[column].null_count == ROWS - selected.sum()
        assert (
            scored.table[column]
            .filter(pa.array(selected))
            .equals(everything.table[column].filter(pa.array(selected)))
        )


def test_multiclass_threshold_compares_top_class_probability(registry: ModelRegistry, data_dir: Path) -> None:
    scorer = registry.scorer(DEMO_MULTICLASS_ID)
    batch = demo_table(DEMO_MULTICLASS_ID, data_dir).to_batches()[0]
    scored = scorer.score(batch, ScoreOptions(max_explanations=2, threshold_low=0.9))

    probabilities = np.column_stack(
        [
            scored.table[f"species_{name}_PREDICTION"].to_numpy()
            for name in ("setosa", "versicolor", "virginica")
        ]
    )
    selected = probabilities.max(axis=1) < 0.9
    assert 0 < selected.sum() < ROWS
    explained = scored.table["EXPLANATION_1_STRENGTH"].is_valid().to_numpy(zero_copy_only=False)
    assert explained.tolist() == selected.tolist()


def test_model_without_featurewise_preprocessing_offers_no_explanations(tmp_path: Path) -> None:
    data = load_diabetes(scaled=False)
    model = Pipeline([("impute", SimpleImputer()), ("pca", PCA(n_components=5)), ("ridge", Ridge())])
    model.fit(data.data, data.target)
    model_file = tmp_path / "pca.skops"
    save_skops(model, model_file)
    registry = ModelRegistry(tmp_path / "models")
    info = registry.register(
        model_file,
        target_name="progression",
        target_type="Regression",
        feature_names=list(data.feature_names),
    )

    assert info.supports_explanations is False
    assert info.to_json()["capabilities"]["supportsShapBasedPredictionExplanations"] is False
    scorer = registry.scorer(info.id)
    batch = pa.RecordBatch.from_pylist([dict(zip(data.feature_names, map(str, data.data[0]), strict=True))])
    assert scorer.score(batch, ScoreOptions()).table.num_rows == 1
    with pytest.raises(UnsupportedScoreOptionError, match="does not support prediction explanations"):
        scorer.score(batch, ScoreOptions(max_explanations=1))
