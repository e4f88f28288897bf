"""The model registry: safe model files, registration, persistence, demo models and demo data."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_iris, load_wine
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from airflow_batchpred.server.models import (
    DEMO_BINARY_ID,
    DEMO_MULTICLASS_ID,
    DEMO_REGRESSION_ID,
    DeploymentNotFoundError,
    ModelRegistrationError,
    ModelRegistry,
    ScoreOptions,
    UnsafeModelError,
    save_skops,
    write_demo_csv,
)

DEMO_IDS = (DEMO_REGRESSION_ID, DEMO_BINARY_ID, DEMO_MULTICLASS_ID)


class ShiftTransformer(TransformerMixin, BaseEstimator):
    """A custom transformer: skops cannot vouch for code outside scikit-learn."""

    def fit(self, features: np.ndarray, target: np.ndarray | None = None) -> ShiftTransformer:
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features) + 1.0


@pytest.fixture(scope="module")
def demo_registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    models = ModelRegistry(tmp_path_factory.mktemp("models"))
    models.ensure_demo_models()
    return models


def wine_model() -> tuple[Pipeline, pd.DataFrame]:
    """A 3-class model fitted on a named table (so it carries ``feature_names_in_``)."""
    bunch = load_wine(as_frame=True)
    frame = bunch.data.rename(columns=lambda name: name.replace("/", "_"))
    model = Pipeline([("scale", StandardScaler()), ("logistic", LogisticRegression(max_iter=2000))])
    model.fit(frame, bunch.target)
    return model, frame


def test_demo_deployments_have_stable_ids_and_metadata(demo_registry: ModelRegistry) -> None:
    listed = demo_registry.list()
    assert {info.id for info in listed} == set(DEMO_IDS)
    assert [info.label for info in listed] == sorted(info.label for info in listed)
    for deployment_id in DEMO_IDS:
        assert re.fullmatch(r"[0-9a-f]{24}", deployment_id)
    regression = demo_registry.get(DEMO_REGRESSION_ID)
    binary = demo_registry.get(DEMO_BINARY_ID)
    multiclass = demo_registry.get(DEMO_MULTICLASS_ID)
    assert regression is not None
    assert binary is not None
    assert multiclass is not None
    assert (regression.target_name, regression.target_type, regression.classes) == (
        "progression",
        "Regression",
        (),
    )
    assert regression.feature_names == ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
    assert (binary.target_name, binary.target_type, binary.positive_class) == (
        "diagnosis",
        "Binary",
        "malignant",
    )
    assert set(binary.classes) == {"malignant", "benign"}
    assert binary.default_threshold == 0.5
    assert len(binary.features) == 30
    assert "mean_radius" in binary.feature_names
    assert "GradientBoostingClassifier" in binary.model_type
    assert multiclass.classes == ("setosa", "versicolor", "virginica")
    assert multiclass.feature_names == (
        "sepal_length_cm",
        "sepal_width_cm",
        "petal_length_cm",
        "petal_width_cm",
    )
    for info in (regression, binary, multiclass):
        assert all(re.fullmatch(r"[A-Za-z0-9_]+", name) for name in info.feature_names)
        assert all(feature.feature_type == "Numeric" for feature in info.features)
        assert info.supports_explanations
    assert demo_registry.get("0" * 24) is None


def test_deployment_json_has_the_fields_clients_read(demo_registry: ModelRegistry) -> None:
    info = demo_registry.get(DEMO_BINARY_ID)
    assert info is not None
    body = json.loads(json.dumps(info.to_json()))

    assert body["id"] == DEMO_BINARY_ID
    assert body["label"] == info.label
    assert body["status"] == "active"
    assert body["approvalStatus"] == "APPROVED"
    assert body["defaultPredictionServer"] is None
    assert body["model"]["targetName"] == "diagnosis"
    assert body["model"]["targetType"] == "Binary"
    assert re.fullmatch(r"[0-9a-f]{24}", body["model"]["projectId"])
    assert re.fullmatch(r"[0-9a-f]{24}", body["model"]["id"])
    assert body["capabilities"]["supportsShapBasedPredictionExplanations"] is True
    assert info.features[0].to_json() == {"name": "mean_radius", "featureType": "Numeric"}


def test_demo_models_are_skops_files_with_json_beside_them(demo_registry: ModelRegistry) -> None:
    for deployment_id in DEMO_IDS:
        model_file = demo_registry.model_path(deployment_id)
        assert model_file.name == f"{deployment_id}.skops"
        metadata = json.loads((demo_registry.models_dir / f"{deployment_id}.json").read_text())
        assert metadata["model_format"] == "skops"
        assert metadata["model_file"] == model_file.name
        assert metadata["id"] == deployment_id


def test_ensure_demo_models_is_fast_and_trains_only_once(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    started = time.monotonic()
    registry.ensure_demo_models()
    assert time.monotonic() - started < 10
    written = {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()}
    assert len(written) == 6

    ModelRegistry(tmp_path).ensure_demo_models()
    assert {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()} == written


def test_demo_model_saved_by_another_sklearn_is_retrained(tmp_path: Path) -> None:
    ModelRegistry(tmp_path).ensure_demo_models()
    metadata_file = tmp_path / f"{DEMO_MULTICLASS_ID}.json"
    metadata = json.loads(metadata_file.read_text())
    metadata["sklearn_version"] = "0.0.1"
    metadata_file.write_text(json.dumps(metadata))

    ModelRegistry(tmp_path).ensure_demo_models()
    assert json.loads(metadata_file.read_text())["sklearn_version"] != "0.0.1"


def test_pickle_file_is_refused_without_allow_unsafe(tmp_path: Path) -> None:
    model, _ = wine_model()
    pickled = tmp_path / "wine.pkl"
    joblib.dump(model, pickled)
    disguised = tmp_path / "wine.skops"  # the extension does not make a pickle safe
    disguised.write_bytes(pickle.dumps(model))
    registry = ModelRegistry(tmp_path / "models")

    for model_file in (pickled, disguised):
        with pytest.raises(UnsafeModelError, match="allow_unsafe") as refused:
            registry.register(model_file, target_name="cultivar", target_type="Multiclass")
        assert str(refused.value).startswith(f"{model_file.name} is not a skops file; pickle")
    assert registry.list() == []
    assert list((tmp_path / "models").iterdir()) == []


def test_pickle_file_is_accepted_with_allow_unsafe_and_refused_again_without(tmp_path: Path) -> None:
    model, frame = wine_model()
    pickled = tmp_path / "wine.joblib"
    joblib.dump(model, pickled)
    models_dir = tmp_path / "models"

    unsafe = ModelRegistry(models_dir, allow_unsafe=True)
    info = unsafe.register(pickled, target_name="cultivar", target_type="Multiclass", label="Wine")
    scored = unsafe.scorer(info.id).score(pa.RecordBatch.from_pandas(frame.head(20)), ScoreOptions())
    assert scored.table["cultivar_PREDICTION"].to_pylist() == [str(c) for c in model.predict(frame.head(20))]

    safe = ModelRegistry(models_dir)
    assert safe.get(info.id) == info  # still listed...
    with pytest.raises(UnsafeModelError, match="allow_unsafe"):
        safe.scorer(info.id)  # ...but its pickle is not loaded


def test_skops_file_with_untrusted_type_is_refused(tmp_path: Path) -> None:
    iris = load_iris()
    model = Pipeline([("shift", ShiftTransformer()), ("logistic", LogisticRegression(max_iter=500))])
    model.fit(iris.data, iris.target)
    model_file = tmp_path / "custom.skops"
    save_skops(model, model_file)
    registry = ModelRegistry(tmp_path / "models")

    with pytest.raises(UnsafeModelError, match=r"^custom\.skops holds .*ShiftTransformer.*allow_unsafe"):
        registry.register(
            model_file, target_name="species", target_type="Multiclass", feature_names=list("abcd")
        )
    assert registry.list() == []
    assert list((tmp_path / "models").iterdir()) == []


def test_registered_skops_model_survives_reopening_the_registry(tmp_path: Path) -> None:
    model, frame = wine_model()
    model_file = tmp_path / "wine.skops"
    save_skops(model, model_file)
    models_dir = tmp_path / "models"

    info = ModelRegistry(models_dir).register(
        model_file, target_name="cultivar", target_type="Multiclass", label="Wine cultivar"
    )
    assert re.fullmatch(r"[0-9a-f]{24}", info.id)
    assert info.classes == ("0", "1", "2")
    assert info.feature_names == tuple(frame.columns)
    assert info.supports_explanations

    reopened = ModelRegistry(models_dir)
    assert reopened.list() == [info]
    assert reopened.get(info.id) == info
    batch = pa.RecordBatch.from_pandas(frame.astype(str), preserve_index=False)
    scored = reopened.scorer(info.id).score(batch, ScoreOptions(max_explanations=3))
    np.testing.assert_allclose(
        scored.table["cultivar_1_PREDICTION"].to_numpy(), model.predict_proba(frame)[:, 1], rtol=0, atol=1e-9
    )
    assert scored.table["cultivar_PREDICTION"].to_pylist() == [str(c) for c in model.predict(frame)]
    assert scored.table["EXPLANATION_3_STRENGTH"].null_count == 0


def test_register_with_a_chosen_id_and_positive_class(tmp_path: Path) -> None:
    _, frame = wine_model()
    binary_model = Pipeline([("scale", StandardScaler()), ("logistic", LogisticRegression())])
    labels = np.where(load_wine().target == 0, "first", "other")
    binary_model.fit(frame, labels)
    model_file = tmp_path / "binary.skops"
    save_skops(binary_model, model_file)
    registry = ModelRegistry(tmp_path / "models")

    info = registry.register(
        model_file,
        target_name="cultivar",
        target_type="Binary",
        deployment_id="a" * 24,
        positive_class="first",
    )
    assert (info.id, info.positive_class, info.negative_class) == ("a" * 24, "first", "other")
    scored = registry.scorer(info.id).score(pa.RecordBatch.from_pandas(frame.head(50)), ScoreOptions())
    assert scored.table.column_names[:2] == ["cultivar_first_PREDICTION", "cultivar_other_PREDICTION"]
    np.testing.assert_allclose(
        scored.table["cultivar_first_PREDICTION"].to_numpy(),
        binary_model.predict_proba(frame.head(50))[:, 0],
        rtol=0,
        atol=1e-9,
    )
    with pytest.raises(ModelRegistrationError, match="already exists"):
        registry.register(model_file, target_name="cultivar", target_type="Binary", deployment_id="a" * 24)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_type": "Binary"}, "needs 2 classes"),
        ({"target_type": "Regression"}, "needs a regressor"),
        ({"target_type": "Multiclass", "positive_class": "1"}, "Binary deployments only"),
        ({"target_type": "Timeseries"}, "target_type must be one of"),
        ({"target_type": "Multiclass", "deployment_id": "not-hex"}, "24 lower-case hex digits"),
        ({"target_type": "Multiclass", "feature_names": ["a", "b"]}, "takes 13 features but 2 names"),
    ],
)
def test_register_rejects_a_model_that_does_not_fit_the_request(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    model, _ = wine_model()
    model_file = tmp_path / "wine.skops"
    save_skops(model, model_file)
    registry = ModelRegistry(tmp_path / "models")

    with pytest.raises(ModelRegistrationError, match=message):
        registry.register(model_file, target_name="cultivar", **kwargs)  # type: ignore[arg-type]
    assert registry.list() == []


def test_register_needs_feature_names_for_a_model_fitted_on_a_bare_matrix(tmp_path: Path) -> None:
    iris = load_iris()
    model = Ridge().fit(iris.data, iris.target)
    model_file = tmp_path / "ridge.skops"
    save_skops(model, model_file)
    registry = ModelRegistry(tmp_path / "models")

    with pytest.raises(ModelRegistrationError, match="feature_names_in_"):
        registry.register(model_file, target_name="y", target_type="Regression")
    info = registry.register(
        model_file, target_name="y", target_type="Regression", feature_names=list("abcd")
    )
    assert info.feature_names == ("a", "b", "c", "d")


def test_model_without_imputer_fails_rows_with_missing_values(tmp_path: Path) -> None:
    iris = load_iris()
    model = Ridge().fit(iris.data, iris.target)
    model_file = tmp_path / "ridge.skops"
    save_skops(model, model_file)
    registry = ModelRegistry(tmp_path / "models")
    info = registry.register(
        model_file, target_name="y", target_type="Regression", feature_names=list("abcd")
    )

    rows = [
        dict(zip("abcd", ["5.1", "3.5", "1.4", "0.2"], strict=True)),
        {"a": "5", "b": "", "c": "1", "d": "0"},
    ]
    scored = registry.scorer(info.id).score(pa.RecordBatch.from_pylist(rows), ScoreOptions())
    assert scored.failed.tolist() == [False, True]
    assert (
        scored.status.to_pylist()[1]
        == "Missing value in column 'b': the model does not accept missing values"
    )
    assert scored.table["y_PREDICTION"].to_pylist()[0] == pytest.approx(
        model.predict(iris.data[:1])[0], abs=1e-9
    )


def test_unknown_deployment_has_no_scorer(demo_registry: ModelRegistry) -> None:
    with pytest.raises(DeploymentNotFoundError, match="f" * 24):
        demo_registry.scorer("f" * 24)


def test_unreadable_metadata_is_skipped(tmp_path: Path, demo_registry: ModelRegistry) -> None:
    shutil.copytree(demo_registry.models_dir, tmp_path, dirs_exist_ok=True)
    (tmp_path / "broken.json").write_text("{not json")
    assert {info.id for info in ModelRegistry(tmp_path).list()} == set(DEMO_IDS)


def test_write_demo_csv_streams_sampled_rows_deterministically(
    tmp_path: Path, demo_registry: ModelRegistry
) -> None:
    first = write_demo_csv(DEMO_BINARY_ID, tmp_path / "a.csv", 5_500, seed=7, chunk_rows=1_000)
    again = write_demo_csv(DEMO_BINARY_ID, tmp_path / "b.csv", 5_500, seed=7, chunk_rows=2_000)
    other = write_demo_csv(DEMO_BINARY_ID, tmp_path / "c.csv", 5_500, seed=8)

    table = pa_csv.read_csv(first)
    info = demo_registry.get(DEMO_BINARY_ID)
    assert info is not None
    assert table.num_rows == 5_500
    assert tuple(table.column_names) == info.feature_names
    assert first.read_text().splitlines()[0] == ",".join(info.feature_names)
    assert first.read_bytes() != other.read_bytes()
    # Chunking changes the random stream, not the shape; the same arguments give the same file.
    assert write_demo_csv(
        DEMO_BINARY_ID, tmp_path / "d.csv", 5_500, seed=7, chunk_rows=1_000
    ).read_bytes() == (first.read_bytes())
    assert pa_csv.read_csv(again).num_rows == 5_500
    radius = table["mean_radius"].to_numpy()
    assert 5 < radius.min() < radius.max() < 35
    assert len(np.unique(radius)) > 1_000  # jittered, not only the 569 original rows


def test_write_demo_csv_with_target_and_missing_cells(tmp_path: Path, demo_registry: ModelRegistry) -> None:
    path = write_demo_csv(
        DEMO_MULTICLASS_ID, tmp_path / "iris.csv", 2_000, seed=1, include_target=True, missing_fraction=0.2
    )
    table = pa_csv.read_csv(path)
    assert table.column_names[-1] == "species"
    assert set(table["species"].to_pylist()) == {"setosa", "versicolor", "virginica"}
    share_missing = table["petal_length_cm"].null_count / table.num_rows
    assert 0.15 < share_missing < 0.25
    scored = demo_registry.scorer(DEMO_MULTICLASS_ID).score(table.to_batches()[0], ScoreOptions())
    assert not scored.failed.any()
    with pytest.raises(KeyError, match="not a demo deployment"):
        write_demo_csv("0" * 24, tmp_path / "x.csv", 1)
