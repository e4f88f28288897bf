"""Per-row feature attributions (the strengths of prediction explanations).

Two explainers, both additive: for every row, the contributions of all features add up to the
model's output minus a fixed base value.

* :class:`LinearExplainer` (``Ridge``, ``LogisticRegression``, any fitted linear model with
  ``coef_``/``intercept_``): ``contribution_j = coef_j * (z_j - z_ref_j)``, where ``z`` is the row
  after the pipeline's preprocessing (imputation and scaling) and ``z_ref`` the training mean of
  ``z``. This is the exact SHAP value of a linear model with independent features. The base value
  is ``intercept + coef . z_ref``.
* :class:`TreeExplainer` (gradient boosting, random forests, decision trees): exact TreeSHAP from
  the ``shap`` package (path-dependent, no background data needed). The base value is the
  explainer's expected value.

Output spaces: regression models are explained in the units of the target; linear classifiers
and gradient boosting in log-odds (the ``decision_function``), random forests in probability.
Binary deployments explain the positive class (contributions are negated when the positive class
is scikit-learn's ``classes_[0]``). Multiclass deployments explain each row's predicted class.

Explanations are only offered when every preprocessing step maps feature ``j`` to column ``j``
(imputers without indicators and scalers), so a contribution can be named by its input feature.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

from airflow_batchpred.server.models._types import BINARY, MULTICLASS, REGRESSION

log = logging.getLogger(__name__)

#: Preprocessing steps that keep feature j in column j.
FEATUREWISE_TRANSFORMERS = (SimpleImputer, StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler)


class Explainer(Protocol):
    """Computes additive per-feature contributions for rows of raw feature values."""

    output_space: str

    def contributions(self, transformed: np.ndarray, class_index: np.ndarray | None) -> np.ndarray:
        """Contributions, shape ``(rows, features)``, for the explained output of each row.

        :param transformed: the rows after the pipeline's preprocessing steps (what the final
            estimator sees; the scorer computes it once for predictions and explanations).
        :param class_index: for multiclass, the index (into ``classes``) explained for each row.
        """
        ...

    def base_value(self) -> float | np.ndarray:
        """The value the contributions are relative to (one per class for multiclass)."""
        ...


def split_pipeline(model: Any) -> tuple[list[Any], Any]:
    """Return ``(preprocessing steps, final estimator)`` of a pipeline or a bare estimator."""
    if isinstance(model, Pipeline):
        steps = [step for _, step in model.steps if step not in (None, "passthrough")]
        return steps[:-1], steps[-1]
    return [], model


def compile_preprocessing(steps: list[Any]) -> Callable[[np.ndarray], np.ndarray] | None:
    """A numpy version of an imputer/scaler chain, or ``None`` if a step is of another kind.

    It performs the very floating-point operations of ``SimpleImputer.transform`` (NaN replaced by
    the statistic) and ``StandardScaler.transform`` (``x -= mean_``, ``x /= scale_``), so the
    results are identical, but skips scikit-learn's input validation, which costs more than the
    arithmetic on the small chunks a server scores.
    """
    operations: list[Callable[[np.ndarray], np.ndarray]] = []
    for step in steps:
        if type(step) is SimpleImputer:
            statistics = np.asarray(step.statistics_, dtype=np.float64)
            missing = step.missing_values
            if step.add_indicator or not np.all(np.isfinite(statistics)):
                return None  # indicator columns, or features dropped as empty: leave it to sklearn
            if not (isinstance(missing, float) and np.isnan(missing)):
                return None
            operations.append(partial(_fill_missing, fill=statistics))
        elif type(step) is StandardScaler:
            mean = step.mean_ if step.with_mean else None
            scale = step.scale_ if step.with_std else None
            operations.append(partial(_standardise, mean=mean, scale=scale))
        else:
            return None

    def run(features: np.ndarray) -> np.ndarray:
        for operation in operations:
            features = operation(features)
        return features

    return run


def _fill_missing(features: np.ndarray, fill: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(features), fill, features)


def _standardise(features: np.ndarray, mean: np.ndarray | None, scale: np.ndarray | None) -> np.ndarray:
    if mean is not None:
        features = features - mean
    if scale is not None:
        features = features / scale
    return features


def _is_featurewise(step: Any) -> bool:
    if not isinstance(step, FEATUREWISE_TRANSFORMERS):
        return False
    return not (isinstance(step, SimpleImputer) and step.add_indicator)


def _transform(steps: list[Any], features: np.ndarray) -> np.ndarray:
    for step in steps:
        features = step.transform(features)
    return np.asarray(features, dtype=np.float64)


def _reference_point(steps: list[Any], n_features: int) -> np.ndarray:
    """The training mean of the preprocessed features, read from the first step that stores one.

    A mean-imputer's ``statistics_`` and a ``StandardScaler``'s ``mean_`` are the training means of
    their inputs; pushing them through the remaining steps gives the mean in the model's input
    space (exactly so, since every step is affine per feature). Without such a step the origin is
    used, which keeps the sum exact but makes the base value the bare intercept.
    """
    for position, step in enumerate(steps):
        mean = None
        if isinstance(step, SimpleImputer) and step.strategy == "mean":
            mean = step.statistics_
        elif isinstance(step, StandardScaler) and getattr(step, "mean_", None) is not None:
            mean = step.mean_
        if mean is not None:
            return _transform(steps[position:], np.asarray(mean, dtype=np.float64)[np.newaxis, :])[0]
    return np.zeros(n_features)


class LinearExplainer:
    """Exact contributions of a linear model behind feature-wise preprocessing."""

    def __init__(
        self, steps: list[Any], estimator: Any, *, target_type: str, positive_index: int | None
    ) -> None:
        coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
        intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
        n_features = coef.shape[1]
        reference = _reference_point(steps, n_features)
        if target_type == BINARY and positive_index == 0:
            # decision_function is the log-odds of classes_[1]; the positive class is classes_[0].
            coef, intercept = -coef, -intercept
        self._coef = coef
        self._reference = reference
        self._base = intercept + coef @ reference
        self._target_type = target_type
        self.output_space = "log-odds (decision function)" if target_type != REGRESSION else "target units"

    def contributions(self, transformed: np.ndarray, class_index: np.ndarray | None) -> np.ndarray:
        centred = np.asarray(transformed, dtype=np.float64) - self._reference
        if self._target_type == MULTICLASS:
            assert class_index is not None
            return centred * self._coef[class_index]
        return centred * self._coef[0]

    def base_value(self) -> float | np.ndarray:
        if self._target_type == MULTICLASS:
            return self._base.copy()
        return float(self._base[0])


class TreeExplainer:
    """TreeSHAP contributions of a tree ensemble (its input is the preprocessed rows)."""

    def __init__(self, estimator: Any, *, target_type: str, positive_index: int | None) -> None:
        import shap  # imported lazily: it is slow to import and only tree models need it

        self._explainer = shap.TreeExplainer(estimator)
        expected = np.atleast_1d(np.asarray(self._explainer.expected_value, dtype=np.float64))
        self._target_type = target_type
        self._positive_index = positive_index
        # Binary gradient boosting has one raw output (log-odds of classes_[1]); random forests
        # have one probability output per class.
        self._single_output = expected.shape[0] == 1
        self._sign = -1.0 if (target_type == BINARY and self._single_output and positive_index == 0) else 1.0
        self._expected = expected
        self.output_space = f"{self._explainer.model.model_output} model output"

    def contributions(self, transformed: np.ndarray, class_index: np.ndarray | None) -> np.ndarray:
        matrix = np.ascontiguousarray(transformed, dtype=np.float64)
        values = np.asarray(self._explainer.shap_values(matrix, check_additivity=False))
        if values.ndim == 2:
            return values * self._sign
        # (rows, features, outputs): pick the explained output of every row.
        if self._target_type == MULTICLASS:
            assert class_index is not None
            return np.take_along_axis(values, class_index[:, np.newaxis, np.newaxis], axis=2)[:, :, 0]
        return values[:, :, self._positive_index if self._target_type == BINARY else 0]

    def base_value(self) -> float | np.ndarray:
        if self._target_type == MULTICLASS:
            return self._expected.copy()
        if self._single_output:
            return float(self._expected[0]) * self._sign
        return float(self._expected[self._positive_index if self._target_type == BINARY else 0])


def build_explainer(
    model: Any, *, target_type: str, positive_index: int | None, n_features: int
) -> Explainer | None:
    """An explainer for ``model``, or ``None`` when its structure has no exact explanation here."""
    steps, estimator = split_pipeline(model)
    if not all(_is_featurewise(step) for step in steps):
        log.info("No explanations for %s: a preprocessing step does not keep features apart", model)
        return None
    explainer: Explainer
    if hasattr(estimator, "coef_") and hasattr(estimator, "intercept_"):
        explainer = LinearExplainer(steps, estimator, target_type=target_type, positive_index=positive_index)
    elif hasattr(estimator, "estimators_") or hasattr(estimator, "tree_"):
        try:
            explainer = TreeExplainer(estimator, target_type=target_type, positive_index=positive_index)
        except ValueError as exc:  # shap's InvalidModelError: a tree model it does not know
            log.info("No explanations for %s: shap cannot explain it (%s)", type(estimator).__name__, exc)
            return None
    else:
        return None
    # Refuse models whose preprocessing changes the number of columns (e.g. dropped empty features).
    probe = _transform(steps, np.zeros((1, n_features)))
    if probe.shape[1] != n_features:
        log.info("No explanations: preprocessing maps %d features to %d columns", n_features, probe.shape[1])
        return None
    return explainer
