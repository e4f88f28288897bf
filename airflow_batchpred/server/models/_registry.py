"""The deployment registry: model files plus JSON metadata in one directory.

Layout of ``models_dir``: for each deployment ``<id>.json`` (the :class:`DeploymentInfo`
metadata, plus the model file name, its format and the scikit-learn version that wrote it) and the
model file ``<id>.skops`` (or ``<id>.pkl`` for pickle files registered with ``allow_unsafe``).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from airflow_batchpred.server.models._demo import DEMO_SPECS, DemoSpec, train_demo_model
from airflow_batchpred.server.models._explain import build_explainer, split_pipeline
from airflow_batchpred.server.models._model_files import (
    SKOPS,
    detect_format,
    load_model_file,
    save_skops,
)
from airflow_batchpred.server.models._scorer import Scorer
from airflow_batchpred.server.models._types import (
    BINARY,
    MULTICLASS,
    REGRESSION,
    TARGET_TYPES,
    DeploymentInfo,
    DeploymentNotFoundError,
    FeatureInfo,
    ModelRegistrationError,
)

log = logging.getLogger(__name__)

DEPLOYMENT_ID_PATTERN = re.compile(r"^[0-9a-f]{24}$")
DEFAULT_THRESHOLD = 0.5


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def describe_model(model: Any) -> str:
    """A readable model type such as ``"SimpleImputer + StandardScaler + Ridge"``."""
    steps, estimator = split_pipeline(model)
    return " + ".join(type(step).__name__ for step in [*steps, estimator])


def _strip_feature_names(model: Any) -> None:
    """Drop ``feature_names_in_`` so the model takes a bare matrix without warning.

    The scorer always passes features positionally in the deployment's feature order, which was
    taken from these very names at registration.
    """
    steps, estimator = split_pipeline(model)
    for step in [*steps, estimator]:
        if "feature_names_in_" in vars(step):
            del step.feature_names_in_


class ModelRegistry:
    """Deployments backed by model files in ``models_dir``; thread-safe.

    :param models_dir: where model files and their JSON metadata live (created if missing).
    :param allow_unsafe: the server operator's opt-in to load pickle/joblib files and skops
        files with untrusted types. Off by default: such files are refused.
    """

    def __init__(self, models_dir: Path, *, allow_unsafe: bool = False) -> None:
        self.models_dir = Path(models_dir)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.allow_unsafe = allow_unsafe
        self._lock = threading.RLock()
        self._scorers: dict[str, Scorer] = {}
        self._metadata: dict[str, dict[str, Any]] = {}
        self._reload()

    # ------------------------------------------------------------------------------ metadata
    def _metadata_path(self, deployment_id: str) -> Path:
        return self.models_dir / f"{deployment_id}.json"

    def _reload(self) -> None:
        metadata: dict[str, dict[str, Any]] = {}
        for path in sorted(self.models_dir.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                DeploymentInfo.from_metadata(data)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("Ignoring unreadable deployment metadata %s: %s", path, exc)
                continue
            metadata[data["id"]] = data
        with self._lock:
            self._metadata = metadata

    def _write_metadata(self, data: dict[str, Any]) -> None:
        path = self._metadata_path(data["id"])
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        partial.replace(path)

    def list(self) -> list[DeploymentInfo]:
        """All deployments, demo deployments first, then by label."""
        with self._lock:
            infos = [DeploymentInfo.from_metadata(data) for data in self._metadata.values()]
        return sorted(infos, key=lambda info: (info.id not in DEMO_SPECS, info.label, info.id))

    def get(self, deployment_id: str) -> DeploymentInfo | None:
        with self._lock:
            data = self._metadata.get(deployment_id)
        return DeploymentInfo.from_metadata(data) if data is not None else None

    def model_path(self, deployment_id: str) -> Path:
        """The model file of a deployment."""
        with self._lock:
            data = self._metadata.get(deployment_id)
        if data is None:
            raise DeploymentNotFoundError(f"deployment {deployment_id} not found")
        return self.models_dir / data["model_file"]

    def load_model(self, deployment_id: str) -> Any:
        """Load a deployment's model afresh (with the registry's safety rules)."""
        model, _ = load_model_file(self.model_path(deployment_id), allow_unsafe=self.allow_unsafe)
        return model

    # ------------------------------------------------------------------------------- scoring
    def scorer(self, deployment_id: str) -> Scorer:
        """The (cached) scorer of a deployment.

        :raises DeploymentNotFoundError: no such deployment.
        :raises UnsafeModelError: its model file may not be loaded without ``allow_unsafe``.
        """
        with self._lock:
            cached = self._scorers.get(deployment_id)
            if cached is not None:
                return cached
            info = self.get(deployment_id)
            if info is None:
                raise DeploymentNotFoundError(f"deployment {deployment_id} not found")
            model = self.load_model(deployment_id)
            _strip_feature_names(model)
            explainer = build_explainer(
                model,
                target_type=info.target_type,
                positive_index=info.classes.index(info.positive_class) if info.positive_class else None,
                n_features=len(info.features),
            )
            scorer = Scorer(info, model, explainer)
            self._scorers[deployment_id] = scorer
            log.info("Loaded model of deployment %s (%s)", deployment_id, info.model_type)
            return scorer

    # -------------------------------------------------------------------------- registration
    def register(
        self,
        model_file: Path,
        *,
        target_name: str,
        target_type: str,
        label: str | None = None,
        deployment_id: str | None = None,
        positive_class: str | None = None,
        feature_names: Sequence[str] | None = None,
        description: str = "",
    ) -> DeploymentInfo:
        """Register a fitted scikit-learn model file as a deployment.

        The file is checked (skops with trusted types only, unless ``allow_unsafe``), loaded, and
        copied into ``models_dir``; its metadata is written beside it.

        :param model_file: a skops file (``skops.io.dump``); pickle/joblib only with ``allow_unsafe``.
        :param target_name: the target's name (prefix of the prediction columns).
        :param target_type: ``"Regression"``, ``"Binary"`` or ``"Multiclass"``.
        :param label: display name (defaults to the file name).
        :param deployment_id: 24 lower-case hex digits; generated when omitted.
        :param positive_class: binary only; defaults to the second of the model's sorted classes.
        :param feature_names: input feature names, in the model's column order; defaults to the
            model's ``feature_names_in_`` (set when it was fitted on a named table).
        :raises ModelRegistrationError: the model does not fit the given target or has no names.
        :raises UnsafeModelError: the file may not be loaded without ``allow_unsafe``.
        """
        model_file = Path(model_file)
        if target_type not in TARGET_TYPES:
            raise ModelRegistrationError(
                f"target_type must be one of {list(TARGET_TYPES)}, got {target_type!r}"
            )
        if not target_name:
            raise ModelRegistrationError("target_name must not be empty")
        if deployment_id is None:
            deployment_id = secrets.token_hex(12)
        elif not DEPLOYMENT_ID_PATTERN.match(deployment_id):
            raise ModelRegistrationError(
                f"deployment_id must be 24 lower-case hex digits, got {deployment_id!r}"
            )
        if not model_file.is_file():
            raise ModelRegistrationError(f"model file {model_file} does not exist")
        with self._lock:
            if deployment_id in self._metadata:
                raise ModelRegistrationError(f"deployment {deployment_id} already exists")
        # Validate the copy that will be served, not the source (which could change in between).
        partial = self.models_dir / f".{deployment_id}.partial"
        shutil.copyfile(model_file, partial)
        try:
            model, file_format = load_model_file(
                partial, allow_unsafe=self.allow_unsafe, name=model_file.name
            )
            info = self._describe(
                model,
                deployment_id=deployment_id,
                label=label or model_file.stem,
                target_name=target_name,
                target_type=target_type,
                positive_class=positive_class,
                feature_names=feature_names,
                description=description,
            )
            with self._lock:
                if deployment_id in self._metadata:
                    raise ModelRegistrationError(f"deployment {deployment_id} already exists")
                stored = self.models_dir / f"{deployment_id}.{'skops' if file_format == SKOPS else 'pkl'}"
                partial.replace(stored)
                self._store(info, stored, file_format)
        finally:
            partial.unlink(missing_ok=True)
        log.info("Registered deployment %s (%s) from %s", deployment_id, info.model_type, model_file)
        return info

    def _store(self, info: DeploymentInfo, stored: Path, file_format: str) -> None:
        data = info.to_metadata()
        data.update(model_file=stored.name, model_format=file_format, sklearn_version=sklearn.__version__)
        self._write_metadata(data)
        with self._lock:
            self._metadata[info.id] = data
            self._scorers.pop(info.id, None)

    def _describe(
        self,
        model: Any,
        *,
        deployment_id: str,
        label: str,
        target_name: str,
        target_type: str,
        positive_class: str | None,
        feature_names: Sequence[str] | None,
        description: str,
    ) -> DeploymentInfo:
        """Check ``model`` against the target type and build its metadata."""
        model_classes = getattr(model, "classes_", None)
        if target_type == REGRESSION:
            if model_classes is not None or not hasattr(model, "predict"):
                raise ModelRegistrationError(
                    "a Regression deployment needs a regressor (a model without classes_)"
                )
            classes: tuple[str, ...] = ()
            if positive_class is not None:
                raise ModelRegistrationError("positive_class applies to Binary deployments only")
        else:
            if model_classes is None or not hasattr(model, "predict_proba"):
                raise ModelRegistrationError(
                    f"a {target_type} deployment needs a classifier with predict_proba"
                )
            classes = tuple(str(cls) for cls in np.asarray(model_classes).tolist())
            if target_type == BINARY and len(classes) != 2:
                raise ModelRegistrationError(
                    f"a Binary deployment needs 2 classes, the model has {len(classes)}"
                )
            if target_type == MULTICLASS and len(classes) < 3:
                raise ModelRegistrationError(
                    f"a Multiclass deployment needs at least 3 classes, the model has {len(classes)}"
                )
            if target_type == BINARY:
                positive_class = classes[1] if positive_class is None else str(positive_class)
                if positive_class not in classes:
                    raise ModelRegistrationError(
                        f"positive_class {positive_class!r} is not one of the model's classes {list(classes)}"
                    )
            elif positive_class is not None:
                raise ModelRegistrationError("positive_class applies to Binary deployments only")

        if feature_names is None:
            names_in = getattr(model, "feature_names_in_", None)
            if names_in is None:
                raise ModelRegistrationError(
                    "the model has no feature_names_in_ (it was fitted on an unnamed matrix); "
                    "pass feature_names or fit it on a named table"
                )
            feature_names = [str(name) for name in names_in]
        n_features_in = getattr(model, "n_features_in_", None)
        if n_features_in is not None and n_features_in != len(feature_names):
            raise ModelRegistrationError(
                f"the model takes {n_features_in} features but {len(feature_names)} names were given"
            )
        if len(set(feature_names)) != len(feature_names):
            raise ModelRegistrationError("feature names must be unique")

        _strip_feature_names(model)  # the explainer probes it with a bare matrix
        explainer = build_explainer(
            model,
            target_type=target_type,
            positive_index=classes.index(positive_class) if positive_class else None,
            n_features=len(feature_names),
        )
        return DeploymentInfo(
            id=deployment_id,
            label=label,
            description=description,
            target_name=target_name,
            target_type=target_type,
            classes=classes,
            positive_class=positive_class if target_type == BINARY else None,
            features=tuple(FeatureInfo(name=str(name), feature_type="Numeric") for name in feature_names),
            default_threshold=DEFAULT_THRESHOLD if target_type == BINARY else None,
            model_type=describe_model(model),
            supports_explanations=explainer is not None,
            created_at=_now(),
        )

    # --------------------------------------------------------------------------------- demos
    def ensure_demo_models(self) -> None:
        """Train and save the demo deployments that are missing or were saved by another sklearn."""
        for spec in DEMO_SPECS.values():
            with self._lock:
                data = self._metadata.get(spec.deployment_id)
            if (
                data is not None
                and data.get("sklearn_version") == sklearn.__version__
                and (self.models_dir / data["model_file"]).is_file()
            ):
                continue
            self._build_demo(spec)

    def _build_demo(self, spec: DemoSpec) -> None:
        model, dataset = train_demo_model(spec)
        info = self._describe(
            model,
            deployment_id=spec.deployment_id,
            label=spec.label,
            target_name=spec.target_name,
            target_type=spec.target_type,
            positive_class=spec.positive_class,
            feature_names=dataset.feature_names,
            description=spec.description,
        )
        stored = self.models_dir / f"{spec.deployment_id}.skops"
        with self._lock:
            save_skops(model, stored)
            if detect_format(stored) != SKOPS:  # pragma: no cover - guards the invariant
                raise ModelRegistrationError(f"{stored} was not written as skops")
            self._store(info, stored, SKOPS)
        log.info("Trained demo deployment %s (%s)", spec.deployment_id, info.label)
