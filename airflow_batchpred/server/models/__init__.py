"""Models of the local batch-prediction server: registry, safe model files, scoring, explanations.

The server core uses :class:`ModelRegistry` to list deployments and to get a :class:`Scorer` per
deployment; ``Scorer.score`` turns one Arrow batch of CSV input into the scored columns of §6 of
the API notes.

**Model files.** Deployments are registered from skops files (``skops.io.dump``); only
scikit-learn estimators and a short allow-list of their internal types are trusted
(:data:`EXTRA_TRUSTED_TYPES`). Pickle/joblib files, and skops files with other types, are refused
unless the registry is created with ``allow_unsafe=True`` (the server operator's opt-in). Metadata
(target, classes, features, label, id) is stored as ``<id>.json`` beside the model file.

**Demo deployments** (:data:`DEMO_REGRESSION_ID`, :data:`DEMO_BINARY_ID`,
:data:`DEMO_MULTICLASS_ID`) are trained at first start by :meth:`ModelRegistry.ensure_demo_models`
on data bundled with scikit-learn; see :mod:`airflow_batchpred.server.models._demo` for their
features, and :func:`write_demo_csv` for scoring data.

**Input.** Feature columns may be strings or numbers; extra columns are ignored. Empty cells (and
the usual NA tokens) are missing values, imputed by the demo pipelines. A cell that is not a
number fails its row: every cell of the row in ``ScoredBatch.table`` is null (``THRESHOLD`` and
``POSITIVE_CLASS`` too), ``failed`` is set and ``status`` reads
``Could not convert 'abc' in column 'bmi' to a number``; ``inf`` fails its row likewise. A model
without an imputer fails the rows with missing values instead of the whole chunk.
:meth:`Scorer.validate` checks :class:`ScoreOptions` up front (unknown classes in
``include_probabilities_classes``, explanations for a model that has none, an algorithm other than
``shap``) so a job can be refused when it is created.

**Prediction columns** (in this order):

* Regression: ``<target>_PREDICTION``.
* Binary: ``<target>_<positive>_PREDICTION``, ``<target>_<negative>_PREDICTION`` (probabilities),
  ``<target>_PREDICTION`` (positive when its probability is above the threshold:
  ``prediction_threshold`` or the deployment's default 0.5), ``THRESHOLD``, ``POSITIVE_CLASS``.
* Multiclass: ``<target>_<class>_PREDICTION`` per class, then ``<target>_PREDICTION``.

``include_probabilities=False`` drops the probability columns; ``include_probabilities_classes``
keeps only the listed classes' columns.

**Prediction explanations** (``max_explanations`` N > 0): per row, additive per-feature
contributions ordered by ``|strength|``, written as ``EXPLANATION_<n>_FEATURE_NAME``,
``_STRENGTH``, ``_ACTUAL_VALUE`` (the raw input value, null if missing) and
``_QUALITATIVE_STRENGTH`` for n = 1..N. Explanations beyond the number of features are null. With
``threshold_high``/``threshold_low`` only rows whose prediction (regression value, binary
positive-class probability, multiclass top-class probability) is above ``threshold_high`` or
below ``threshold_low`` are explained; the other rows get null explanation cells.

Strengths are in the model's output space and sum exactly to ``output - base_value()``:

* linear models (Ridge, LogisticRegression): ``coef_j * (z_j - mean_j)`` with ``z`` the imputed
  and scaled row and ``mean`` its training mean; target units for regression, log-odds (the
  ``decision_function``) for classifiers;
* tree ensembles: TreeSHAP (``shap.TreeExplainer``), in the raw output of the model - log-odds
  for gradient boosting;
* binary models explain the positive class; multiclass models explain the predicted class of
  each row (its logit; ``base_value()`` then has one value per class).

Qualitative strength: ``ratio = |strength| / |strongest strength of the row|``; ``+++``/``---``
for ``ratio >= 0.5``, ``++``/``--`` for ``ratio >= 0.25``, ``+``/``-`` below; the sign follows
the strength.
"""

from __future__ import annotations

from airflow_batchpred.server.models._demo import (
    DEMO_BINARY_ID,
    DEMO_MULTICLASS_ID,
    DEMO_REGRESSION_ID,
    DEMO_SPECS,
    csv_friendly,
    write_demo_csv,
)
from airflow_batchpred.server.models._model_files import ALLOW_UNSAFE_FLAG, EXTRA_TRUSTED_TYPES, save_skops
from airflow_batchpred.server.models._registry import ModelRegistry
from airflow_batchpred.server.models._scorer import (
    OK_STATUS,
    POSITIVE_CLASS_COLUMN,
    THRESHOLD_COLUMN,
    Scorer,
    explanation_columns,
    prediction_column,
)
from airflow_batchpred.server.models._types import (
    BINARY,
    MULTICLASS,
    REGRESSION,
    DeploymentInfo,
    DeploymentNotFoundError,
    FeatureInfo,
    ModelError,
    ModelRegistrationError,
    ScoredBatch,
    ScoreOptions,
    UnsafeModelError,
    UnsupportedScoreOptionError,
)

__all__ = [
    "ALLOW_UNSAFE_FLAG",
    "BINARY",
    "DEMO_BINARY_ID",
    "DEMO_MULTICLASS_ID",
    "DEMO_REGRESSION_ID",
    "DEMO_SPECS",
    "EXTRA_TRUSTED_TYPES",
    "MULTICLASS",
    "OK_STATUS",
    "POSITIVE_CLASS_COLUMN",
    "REGRESSION",
    "THRESHOLD_COLUMN",
    "DeploymentInfo",
    "DeploymentNotFoundError",
    "FeatureInfo",
    "ModelError",
    "ModelRegistrationError",
    "ModelRegistry",
    "ScoreOptions",
    "ScoredBatch",
    "Scorer",
    "UnsafeModelError",
    "UnsupportedScoreOptionError",
    "csv_friendly",
    "explanation_columns",
    "prediction_column",
    "save_skops",
    "write_demo_csv",
]
