"""The demo deployments: small models trained at first start on data bundled with scikit-learn.

=====================  ==========================  ============================================
Deployment             Data (target)               Model
=====================  ==========================  ============================================
regression             diabetes (``progression``)  SimpleImputer + StandardScaler + Ridge
binary                 breast cancer               SimpleImputer + GradientBoostingClassifier
                       (``diagnosis``: malignant    (50 trees, depth 3); positive class
                       / benign)                    ``malignant``
multiclass             iris (``species``: setosa,  SimpleImputer + StandardScaler +
                       versicolor, virginica)      LogisticRegression
=====================  ==========================  ============================================

Feature names are scikit-learn's with spaces and brackets replaced by underscores, so they are
plain CSV headers:

* diabetes (unscaled values): ``age, sex, bmi, bp, s1, s2, s3, s4, s5, s6``;
* breast cancer: ``mean_radius, mean_texture, ..., worst_fractal_dimension`` (30 features);
* iris: ``sepal_length_cm, sepal_width_cm, petal_length_cm, petal_width_cm``.

:func:`write_demo_csv` writes scoring data for a demo deployment by sampling the bundled rows with
replacement and jittering them, streaming in chunks so it can write millions of rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from airflow_batchpred.server.models._types import BINARY, MULTICLASS, REGRESSION

DEMO_REGRESSION_ID = "64f0a1d3e5b7c9d1e3f50001"
DEMO_BINARY_ID = "64f0a1d3e5b7c9d1e3f50002"
DEMO_MULTICLASS_ID = "64f0a1d3e5b7c9d1e3f50003"

#: Relative standard deviation of the multiplicative noise :func:`write_demo_csv` adds.
JITTER = 0.03


def csv_friendly(name: str) -> str:
    """``"mean radius"`` -> ``"mean_radius"``; ``"sepal length (cm)"`` -> ``"sepal_length_cm"``."""
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")


@dataclass(frozen=True)
class DemoDataset:
    """The bundled data of a demo deployment, with CSV-friendly feature names."""

    features: np.ndarray
    target: np.ndarray
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]


@dataclass(frozen=True)
class DemoSpec:
    """How one demo deployment is built."""

    deployment_id: str
    label: str
    description: str
    target_name: str
    target_type: str
    positive_class: str | None
    load: Callable[[], DemoDataset]
    build_model: Callable[[], Any]


def _load_diabetes() -> DemoDataset:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    return DemoDataset(
        features=np.asarray(bunch.data, dtype=np.float64),
        target=np.asarray(bunch.target, dtype=np.float64),
        feature_names=tuple(csv_friendly(name) for name in bunch.feature_names),
        classes=(),
    )


def _load_breast_cancer() -> DemoDataset:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    names = np.asarray(bunch.target_names).astype(str)  # 0 = malignant, 1 = benign
    return DemoDataset(
        features=np.asarray(bunch.data, dtype=np.float64),
        target=names[bunch.target],
        feature_names=tuple(csv_friendly(name) for name in bunch.feature_names),
        classes=tuple(sorted(names)),
    )


def _load_iris() -> DemoDataset:
    from sklearn.datasets import load_iris

    bunch = load_iris()
    names = np.asarray(bunch.target_names).astype(str)
    return DemoDataset(
        features=np.asarray(bunch.data, dtype=np.float64),
        target=names[bunch.target],
        feature_names=tuple(csv_friendly(name) for name in bunch.feature_names),
        classes=tuple(sorted(names)),
    )


def _ridge_pipeline() -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler()), ("ridge", Ridge(alpha=1.0))])


def _boosting_pipeline() -> Any:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            ("impute", SimpleImputer()),
            ("boost", GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=0)),
        ]
    )


def _logistic_pipeline() -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("impute", SimpleImputer()),
            ("scale", StandardScaler()),
            ("logistic", LogisticRegression(max_iter=1000)),
        ]
    )


DEMO_SPECS: dict[str, DemoSpec] = {
    spec.deployment_id: spec
    for spec in (
        DemoSpec(
            deployment_id=DEMO_REGRESSION_ID,
            label="Demo: diabetes progression (Ridge)",
            description="Disease progression one year after baseline, scikit-learn's diabetes data.",
            target_name="progression",
            target_type=REGRESSION,
            positive_class=None,
            load=_load_diabetes,
            build_model=_ridge_pipeline,
        ),
        DemoSpec(
            deployment_id=DEMO_BINARY_ID,
            label="Demo: breast cancer diagnosis (gradient boosting)",
            description="Malignant or benign tumour, scikit-learn's breast cancer data.",
            target_name="diagnosis",
            target_type=BINARY,
            positive_class="malignant",
            load=_load_breast_cancer,
            build_model=_boosting_pipeline,
        ),
        DemoSpec(
            deployment_id=DEMO_MULTICLASS_ID,
            label="Demo: iris species (logistic regression)",
            description="Iris species from flower measurements, scikit-learn's iris data.",
            target_name="species",
            target_type=MULTICLASS,
            positive_class=None,
            load=_load_iris,
            build_model=_logistic_pipeline,
        ),
    )
}


def train_demo_model(spec: DemoSpec) -> tuple[Any, DemoDataset]:
    """Fit a demo model on its bundled data (deterministic)."""
    data = spec.load()
    model = spec.build_model()
    model.fit(data.features, data.target)
    return model, data


def _decimals(column: np.ndarray) -> int:
    """The fewest decimals (up to 6) that represent every value of ``column``."""
    for decimals in range(7):
        if np.allclose(np.round(column, decimals), column, rtol=0, atol=1e-12):
            return decimals
    return 6


def write_demo_csv(
    deployment_id: str,
    path: Path | str,
    rows: int,
    *,
    seed: int = 0,
    include_target: bool = False,
    missing_fraction: float = 0.0,
    chunk_rows: int = 100_000,
) -> Path:
    """Write ``rows`` rows of scoring data for a demo deployment to a CSV file.

    Rows are sampled with replacement from the bundled data; continuous features get a
    multiplicative jitter of :data:`JITTER` (features with at most 10 distinct values, such as
    ``sex``, are copied unchanged) and are rounded to the precision of the original data. The
    header is the deployment's feature names (plus the target when ``include_target``). The file
    is written in chunks of ``chunk_rows`` rows, so memory stays flat for any size.

    :param missing_fraction: share of feature cells left empty (missing values), for tests.
    :returns: the path written.
    """
    try:
        spec = DEMO_SPECS[deployment_id]
    except KeyError:
        raise KeyError(f"{deployment_id} is not a demo deployment") from None
    data = spec.load()
    rng = np.random.default_rng(seed)
    decimals = [_decimals(data.features[:, j]) for j in range(data.features.shape[1])]
    continuous = np.array([len(np.unique(data.features[:, j])) > 10 for j in range(data.features.shape[1])])
    names = list(data.feature_names)
    target_type: pa.DataType = pa.float64() if spec.target_type == REGRESSION else pa.string()
    schema = pa.schema(
        [pa.field(name, pa.float64()) for name in names]
        + ([pa.field(spec.target_name, target_type)] if include_target else [])
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
    with path.open("wb") as sink, pa_csv.CSVWriter(sink, schema, write_options=write_options) as writer:
        sink.write((",".join(schema.names) + "\n").encode())  # pyarrow would quote the header
        remaining = rows
        while remaining > 0:
            count = min(chunk_rows, remaining)
            picked = rng.integers(0, len(data.features), size=count)
            values = data.features[picked]
            noise = 1.0 + JITTER * rng.standard_normal(values.shape)
            values = np.where(continuous, values * noise, values)
            arrays: list[pa.Array] = []
            for j in range(values.shape[1]):
                column = np.round(values[:, j], decimals[j])
                mask = rng.random(count) < missing_fraction if missing_fraction > 0 else None
                arrays.append(pa.array(column, mask=mask))
            if include_target:
                arrays.append(pa.array(data.target[picked], target_type))
            writer.write_batch(pa.record_batch(arrays, schema=schema))
            remaining -= count
    return path
