"""Value types shared by the registry, the scorer and the server core."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

REGRESSION = "Regression"
BINARY = "Binary"
MULTICLASS = "Multiclass"
TARGET_TYPES = (REGRESSION, BINARY, MULTICLASS)

#: Upper bound of ``maxExplanations`` in the API.
MAX_EXPLANATIONS_LIMIT = 100

#: Explanation algorithms the scorer accepts (``None`` means the default, SHAP-style).
SUPPORTED_EXPLANATION_ALGORITHMS = (None, "shap")


class ModelError(Exception):
    """Base class of the errors of the models package."""


class UnsafeModelError(ModelError):
    """A model file is in an unsafe format or holds types that are not trusted."""


class ModelRegistrationError(ModelError, ValueError):
    """A model file or its metadata cannot be registered as a deployment."""


class DeploymentNotFoundError(ModelError, KeyError):
    """No deployment with the requested id exists in the registry."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "deployment not found"


class UnsupportedScoreOptionError(ModelError, ValueError):
    """Score options that the deployment cannot honour (unknown class, unsupported explanations...)."""


@dataclass(frozen=True)
class FeatureInfo:
    """One input feature a deployment expects."""

    name: str
    feature_type: str = "Numeric"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "featureType": self.feature_type}


@dataclass(frozen=True)
class DeploymentInfo:
    """What the registry knows about a deployment: its target, classes and features.

    ``classes`` is empty for regression. ``positive_class`` and ``default_threshold`` are set for
    binary deployments only.
    """

    id: str
    label: str
    target_name: str
    target_type: str
    classes: tuple[str, ...]
    positive_class: str | None
    features: tuple[FeatureInfo, ...]
    default_threshold: float | None
    model_type: str
    supports_explanations: bool = True
    created_at: str = "1970-01-01T00:00:00+00:00"
    description: str = ""

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(feature.name for feature in self.features)

    @property
    def negative_class(self) -> str | None:
        """The other class of a binary deployment."""
        if self.target_type != BINARY or self.positive_class is None:
            return None
        return next(cls for cls in self.classes if cls != self.positive_class)

    @property
    def project_id(self) -> str:
        """A stable fake project id derived from the deployment id (the API always has one)."""
        return self.id[::-1]

    @property
    def model_id(self) -> str:
        """A stable fake model id derived from the deployment id."""
        return self.id[12:] + self.id[:12]

    def to_json(self) -> dict[str, Any]:
        """The deployment as ``GET deployments/{id}/`` returns it (see §5.4 of the API notes)."""
        return {
            "id": self.id,
            "label": self.label,
            "description": self.description,
            "status": "active",
            "importance": "LOW",
            "createdAt": self.created_at,
            "model": {
                "id": self.model_id,
                "type": self.model_type,
                "targetName": self.target_name,
                "targetType": self.target_type,
                "projectId": self.project_id,
                "projectName": self.label,
                "unsupervisedMode": False,
                "unsupervisedType": None,
                "hasDecisionFlow": False,
                "isDeprecated": False,
            },
            "capabilities": {
                "supportsSecondaryDatasets": False,
                "supportsPredictionWarning": False,
                "supportsShapBasedPredictionExplanations": self.supports_explanations,
                "supportsTargetDriftTracking": False,
                "supportsFeatureDriftTracking": False,
                "supportsChallengerModels": False,
                "supportsSegmentedAnalysisDriftAndAccuracy": False,
            },
            "defaultPredictionServer": None,
            "predictionEnvironment": None,
            "approvalStatus": "APPROVED",
            "permissions": ["CAN_VIEW", "CAN_MAKE_PREDICTIONS"],
            "serviceHealth": {"status": "unknown", "startDate": None, "endDate": None},
            "modelHealth": {"status": "unknown", "startDate": None, "endDate": None},
            "accuracyHealth": {"status": "unavailable", "startDate": None, "endDate": None},
        }

    def to_metadata(self) -> dict[str, Any]:
        """The snake_case form stored in the registry's JSON file."""
        return {
            "id": self.id,
            "label": self.label,
            "description": self.description,
            "target_name": self.target_name,
            "target_type": self.target_type,
            "classes": list(self.classes),
            "positive_class": self.positive_class,
            "features": [{"name": f.name, "feature_type": f.feature_type} for f in self.features],
            "default_threshold": self.default_threshold,
            "model_type": self.model_type,
            "supports_explanations": self.supports_explanations,
            "created_at": self.created_at,
        }

    @classmethod
    def from_metadata(cls, data: dict[str, Any]) -> DeploymentInfo:
        return cls(
            id=data["id"],
            label=data["label"],
            description=data.get("description", ""),
            target_name=data["target_name"],
            target_type=data["target_type"],
            classes=tuple(data.get("classes", ())),
            positive_class=data.get("positive_class"),
            features=tuple(
                FeatureInfo(name=f["name"], feature_type=f.get("feature_type", "Numeric"))
                for f in data["features"]
            ),
            default_threshold=data.get("default_threshold"),
            model_type=data.get("model_type", "unknown"),
            supports_explanations=data.get("supports_explanations", True),
            created_at=data.get("created_at", "1970-01-01T00:00:00+00:00"),
        )


@dataclass(frozen=True)
class ScoreOptions:
    """Per-job knobs of the scored output (the camelCase job fields in snake_case)."""

    max_explanations: int = 0
    threshold_high: float | None = None
    threshold_low: float | None = None
    prediction_threshold: float | None = None
    include_probabilities: bool = True
    include_probabilities_classes: tuple[str, ...] = ()
    explanation_algorithm: str | None = None

    @property
    def explanation_thresholds_set(self) -> bool:
        return self.threshold_high is not None or self.threshold_low is not None


@dataclass
class ScoredBatch:
    """The scored form of one input batch.

    :param table: prediction columns then ``EXPLANATION_n_*`` columns; one row per input row.
    :param failed: ``True`` for rows that could not be scored (their cells in ``table`` are null).
    :param status: per-row text, ``"OK"`` or the reason the row failed.
    """

    table: pa.Table
    failed: np.ndarray
    status: pa.Array = field(repr=False)

    @property
    def num_failed(self) -> int:
        return int(np.count_nonzero(self.failed))
