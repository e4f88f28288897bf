"""Scoring one Arrow batch: input conversion, prediction columns and explanation columns.

Everything on the hot path is vectorised: feature columns are converted with Arrow compute
kernels, predictions come from one ``predict``/``predict_proba`` call per batch, and the
explanation columns are gathered from the contribution matrix with ``argsort``/``take``. Python
loops run over columns (features, explanation slots), never over rows, except to word the status
text of rows that failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_batchpred.server.models._explain import Explainer, compile_preprocessing, split_pipeline
from airflow_batchpred.server.models._types import (
    BINARY,
    MAX_EXPLANATIONS_LIMIT,
    REGRESSION,
    SUPPORTED_EXPLANATION_ALGORITHMS,
    DeploymentInfo,
    ScoredBatch,
    ScoreOptions,
    UnsupportedScoreOptionError,
)

#: Cell texts read as a missing value (pyarrow's CSV defaults, which pandas also uses).
MISSING_TOKENS = pa.array(
    [
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
        "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    ],
    pa.string(),
)  # fmt: skip

#: What a number looks like to us (Arrow's float parser accepts these).
NUMBER_PATTERN = r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:inf|infinity|nan))$"

#: Qualitative strength symbols indexed by code (see :func:`qualitative_codes`).
QUALITATIVE_SYMBOLS = pa.array(["+++", "++", "+", "-", "--", "---"], pa.string())

OK_STATUS = "OK"

THRESHOLD_COLUMN = "THRESHOLD"
POSITIVE_CLASS_COLUMN = "POSITIVE_CLASS"


def prediction_column(target_name: str, class_name: str | None = None) -> str:
    """``<target>_PREDICTION`` or ``<target>_<class>_PREDICTION``."""
    if class_name is None:
        return f"{target_name}_PREDICTION"
    return f"{target_name}_{class_name}_PREDICTION"


def explanation_columns(n: int) -> tuple[str, str, str, str]:
    """The four column names of explanation ``n`` (1-based), in the order they are written."""
    prefix = f"EXPLANATION_{n}_"
    return (
        prefix + "FEATURE_NAME",
        prefix + "STRENGTH",
        prefix + "ACTUAL_VALUE",
        prefix + "QUALITATIVE_STRENGTH",
    )


def qualitative_codes(strengths: np.ndarray, strongest: np.ndarray) -> np.ndarray:
    """Index into :data:`QUALITATIVE_SYMBOLS` for each strength.

    The rule: ``ratio = |strength| / |strongest strength of the row|``; three symbols when
    ``ratio >= 0.5``, two when ``ratio >= 0.25``, one otherwise; ``+`` for a positive (or zero)
    strength, ``-`` for a negative one. The strongest explanation of a row is always ``+++`` or
    ``---``.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.abs(strengths) / strongest
    ratio = np.nan_to_num(ratio, nan=0.0)
    level = np.where(ratio >= 0.5, 0, np.where(ratio >= 0.25, 1, 2))
    return np.where(strengths < 0, 5 - level, level).astype(np.int32)


def _constant_column(value: Any, type_: pa.DataType, size: int, null_mask: np.ndarray | None) -> pa.Array:
    indices = pa.array(np.zeros(size, dtype=np.int32), mask=null_mask)
    return pa.array([value], type_).take(indices)


def _float_column(
    values: np.ndarray, rows: np.ndarray | None, size: int, null_mask: np.ndarray | None
) -> pa.Array:
    """A float64 column of ``size`` rows holding ``values`` at ``rows`` (all rows when ``None``)."""
    if rows is None:
        return pa.array(np.asarray(values, dtype=np.float64), mask=null_mask)
    full = np.zeros(size, dtype=np.float64)
    full[rows] = values
    return pa.array(full, mask=null_mask)


def _spread(values: np.ndarray, rows: np.ndarray, size: int, fill: float) -> np.ndarray:
    """A ``(size, ...)`` array holding ``values`` at ``rows`` and ``fill`` elsewhere."""
    full = np.full((size, *values.shape[1:]), fill, dtype=values.dtype)
    full[rows] = values
    return full


def _index_column(
    dictionary: pa.Array,
    indices: np.ndarray,
    rows: np.ndarray | None,
    size: int,
    null_mask: np.ndarray | None,
) -> pa.Array:
    """``dictionary[indices]`` spread over ``size`` rows (null where ``null_mask``)."""
    if rows is None:
        full = indices.astype(np.int32, copy=False)
    else:
        full = np.zeros(size, dtype=np.int32)
        full[rows] = indices
    return dictionary.take(pa.array(full, mask=null_mask))


class _Conversion:
    """Result of converting one input column to float64."""

    __slots__ = ("bad", "bad_values", "values")

    def __init__(
        self, values: np.ndarray, bad: np.ndarray | None = None, bad_values: list[str] | None = None
    ) -> None:
        self.values = values
        self.bad = bad
        self.bad_values = bad_values


def _numpy_floats(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)


def convert_column(column: pa.Array | pa.ChunkedArray) -> _Conversion:
    """Convert a CSV column (strings or numbers) to float64; missing cells become NaN.

    Cells that are neither missing nor a number are reported in ``bad``/``bad_values``.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    column_type = column.type
    if pa.types.is_dictionary(column_type):
        column = column.dictionary_decode()
        column_type = column.type
    if pa.types.is_null(column_type):
        return _Conversion(np.full(len(column), np.nan))
    if (
        pa.types.is_floating(column_type)
        or pa.types.is_integer(column_type)
        or pa.types.is_decimal(column_type)
    ):
        return _Conversion(_numpy_floats(pc.cast(column, pa.float64())))
    if pa.types.is_boolean(column_type):
        return _Conversion(_numpy_floats(pc.cast(pc.cast(column, pa.int8()), pa.float64())))
    if not (pa.types.is_string(column_type) or pa.types.is_large_string(column_type)):
        column = pc.cast(column, pa.string())
    # Fast paths first: most chunks are all numbers, and most others only have empty cells.
    try:
        return _Conversion(_numpy_floats(pc.cast(column, pa.float64())))
    except pa.ArrowInvalid:
        pass
    try:
        blank_as_null = pc.if_else(pc.equal(column, ""), pa.scalar(None, column.type), column)
        return _Conversion(_numpy_floats(pc.cast(blank_as_null, pa.float64())))
    except pa.ArrowInvalid:
        pass
    trimmed = pc.utf8_trim_whitespace(column)
    missing = pc.is_in(trimmed, value_set=MISSING_TOKENS)
    cleaned = pc.if_else(missing, pa.scalar(None, trimmed.type), trimmed)
    try:
        return _Conversion(_numpy_floats(pc.cast(cleaned, pa.float64())))
    except pa.ArrowInvalid:
        pass
    # Slow path, only for a batch that holds a non-number: find the bad cells, parse the others.
    numeric = pc.fill_null(pc.match_substring_regex(cleaned, NUMBER_PATTERN), True)
    parsable = pc.if_else(numeric, cleaned, pa.scalar(None, cleaned.type))
    try:
        values = _numpy_floats(pc.cast(parsable, pa.float64()))
    except pa.ArrowInvalid:  # a number shape Arrow still refuses (e.g. overflow): parse one by one
        values = np.array([_parse_or_nan(cell) for cell in parsable.to_pylist()], dtype=np.float64)
    bad = ~np.asarray(numeric.to_numpy(zero_copy_only=False), dtype=bool)
    bad_values = [str(cell) for cell in pc.filter(column, pa.array(bad)).to_pylist()]
    return _Conversion(values, bad, bad_values)


def _parse_or_nan(cell: str | None) -> float:
    try:
        return float(cell) if cell is not None else np.nan
    except ValueError:
        return np.nan


class Scorer:
    """Scores batches for one deployment. Immutable after construction, so threads may share it.

    :param deployment: the deployment's metadata.
    :param model: the fitted scikit-learn model (pipeline or estimator) taking the features in
        ``deployment.features`` order as a float matrix.
    :param explainer: the additive explainer, or ``None`` if the model cannot be explained.
    """

    def __init__(self, deployment: DeploymentInfo, model: Any, explainer: Explainer | None) -> None:
        self.deployment = deployment
        self.model = model
        self.explainer = explainer
        self._features = deployment.feature_names
        self._classes = pa.array(list(deployment.classes), pa.string())
        self._positive_index: int | None = None
        self._negative_index: int | None = None
        if deployment.target_type == BINARY:
            self._positive_index = deployment.classes.index(
                deployment.positive_class or deployment.classes[1]
            )
            self._negative_index = 1 - self._positive_index
        self._feature_names_array = pa.array(list(self._features), pa.string())
        preprocessing, self._estimator = split_pipeline(model)
        self._preprocessing = tuple(preprocessing)
        self._fast_preprocessing = compile_preprocessing(preprocessing)

    # ----------------------------------------------------------------------------------- input
    def missing_features(self, column_names: Sequence[str]) -> list[str]:
        """The deployment's features that are not among ``column_names``, in feature order."""
        present = set(column_names)
        return [name for name in self._features if name not in present]

    def base_value(self) -> float | np.ndarray:
        """The expected model output the explanation strengths are relative to.

        A float for regression and binary deployments (binary: the positive class), an array with
        one value per class for multiclass. See :mod:`airflow_batchpred.server.models` for the
        output space.
        """
        if self.explainer is None:
            raise UnsupportedScoreOptionError(
                f"deployment {self.deployment.id} does not support prediction explanations"
            )
        return self.explainer.base_value()

    def validate(self, options: ScoreOptions) -> None:
        """Raise :class:`UnsupportedScoreOptionError` for options this deployment cannot honour."""
        if not 0 <= options.max_explanations <= MAX_EXPLANATIONS_LIMIT:
            raise UnsupportedScoreOptionError(
                f"max_explanations must be between 0 and {MAX_EXPLANATIONS_LIMIT}, "
                f"got {options.max_explanations}"
            )
        if options.max_explanations and self.explainer is None:
            raise UnsupportedScoreOptionError(
                f"deployment {self.deployment.id} ({self.deployment.model_type}) does not support "
                "prediction explanations"
            )
        if options.explanation_algorithm not in SUPPORTED_EXPLANATION_ALGORITHMS:
            raise UnsupportedScoreOptionError(
                f"explanation algorithm {options.explanation_algorithm!r} is not supported; use 'shap'"
            )
        if options.prediction_threshold is not None and not 0.0 <= options.prediction_threshold <= 1.0:
            raise UnsupportedScoreOptionError("prediction_threshold must be between 0 and 1")
        unknown = [cls for cls in options.include_probabilities_classes if cls not in self.deployment.classes]
        if unknown:
            raise UnsupportedScoreOptionError(
                f"include_probabilities_classes names unknown classes {unknown}; the deployment's "
                f"classes are {list(self.deployment.classes)}"
            )

    def _feature_matrix(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return ``(features, failed, status texts or None when every row is fine)``."""
        missing = self.missing_features(batch.schema.names)
        if missing:
            raise UnsupportedScoreOptionError(f"the input lacks the feature columns {missing}")
        size = batch.num_rows
        matrix = np.empty((size, len(self._features)), dtype=np.float64)
        failed = np.zeros(size, dtype=bool)
        problems: list[tuple[np.ndarray, list[str]]] = []
        for position, name in enumerate(self._features):
            column = batch.column(batch.schema.get_field_index(name))
            conversion = convert_column(column)
            matrix[:, position] = conversion.values
            if conversion.bad is not None:
                failed |= conversion.bad
                messages = [
                    f"Could not convert {value!r} in column {name!r} to a number"
                    for value in conversion.bad_values or []
                ]
                problems.append((conversion.bad, messages))
            infinite = np.isinf(conversion.values)
            if infinite.any():  # "inf" parses as a number, but no model can score it
                failed |= infinite
                cells = pc.filter(column, pa.array(infinite)).to_pylist()
                messages = [
                    f"Value {str(cell)!r} in column {name!r} is not a finite number" for cell in cells
                ]
                problems.append((infinite, messages))
        if not problems:
            return matrix, failed, None
        status = np.full(size, OK_STATUS, dtype=object)
        for bad, messages in reversed(problems):  # the first bad column names the row's error
            status[bad] = messages
        return matrix, failed, status

    # ----------------------------------------------------------------------------------- model
    def _model_outputs(self, features: np.ndarray) -> tuple[np.ndarray, Any]:
        """``(outputs, transformed)``: what the pipeline predicts, and its final step's input.

        This is ``Pipeline.predict``/``predict_proba`` unrolled, so that the explainer reuses the
        preprocessed rows instead of running the preprocessing a second time.
        """
        if not len(features):  # an empty chunk, or every row failed: scikit-learn refuses 0 rows
            width = len(self.deployment.classes)
            return np.zeros((0, width) if width else (0,)), np.zeros((0, len(self._features)))
        transformed: Any = features
        if self._fast_preprocessing is not None:
            transformed = self._fast_preprocessing(features)
        else:
            for step in self._preprocessing:
                transformed = step.transform(transformed)
        if self.deployment.target_type == REGRESSION:
            outputs = self._estimator.predict(transformed)
        else:
            outputs = self._estimator.predict_proba(transformed)
        return np.asarray(outputs, dtype=np.float64), transformed

    def _predict(
        self, matrix: np.ndarray, failed: np.ndarray, status: np.ndarray | None
    ) -> tuple[np.ndarray, Any, np.ndarray | None, np.ndarray, np.ndarray | None]:
        """Run the model over the rows that did not fail.

        :returns: ``(outputs, transformed, rows, failed, status)``; ``outputs`` and ``transformed``
            hold the scored rows only, ``rows`` their positions (``None`` when all rows are scored).

        A model without an imputer cannot take missing values; then the rows holding them fail
        instead of the whole batch.
        """
        rows = np.flatnonzero(~failed) if failed.any() else None
        scored = matrix if rows is None else matrix[rows]
        try:
            return *self._model_outputs(scored), rows, failed, status
        except ValueError:
            missing_cells = np.isnan(matrix) & ~failed[:, np.newaxis]
            if not missing_cells.any():
                raise
        rows_with_missing = missing_cells.any(axis=1)
        if status is None:
            status = np.full(len(failed), OK_STATUS, dtype=object)
        first_missing = np.argmax(missing_cells, axis=1)
        status[rows_with_missing] = [
            f"Missing value in column {self._features[column]!r}: the model does not accept missing values"
            for column in first_missing[rows_with_missing]
        ]
        failed = failed | rows_with_missing
        rows = np.flatnonzero(~failed)
        return *self._model_outputs(matrix[rows]), rows, failed, status

    # ----------------------------------------------------------------------------------- score
    def score(self, batch: pa.RecordBatch, options: ScoreOptions) -> ScoredBatch:
        """Score one batch: prediction columns per target type, then explanation columns."""
        self.validate(options)
        size = batch.num_rows
        matrix, failed, status = self._feature_matrix(batch)
        outputs, transformed, rows, failed, status = self._predict(matrix, failed, status)
        null_mask = failed if rows is not None else None
        deployment = self.deployment
        target = deployment.target_name
        columns: dict[str, pa.Array] = {}
        label_index: np.ndarray | None = None

        if deployment.target_type == REGRESSION:
            explained_value = outputs
            columns[prediction_column(target)] = _float_column(outputs, rows, size, null_mask)
        else:
            keep = self._kept_probability_classes(options)
            if deployment.target_type == BINARY:
                assert self._positive_index is not None
                assert self._negative_index is not None
                positive = outputs[:, self._positive_index]
                threshold = self._label_threshold(options)
                label_index = np.where(positive > threshold, self._positive_index, self._negative_index)
                for index in (self._positive_index, self._negative_index):
                    name = deployment.classes[index]
                    if name in keep:
                        columns[prediction_column(target, name)] = _float_column(
                            outputs[:, index], rows, size, null_mask
                        )
                columns[prediction_column(target)] = _index_column(
                    self._classes, label_index, rows, size, null_mask
                )
                columns[THRESHOLD_COLUMN] = _constant_column(threshold, pa.float64(), size, null_mask)
                columns[POSITIVE_CLASS_COLUMN] = _constant_column(
                    deployment.classes[self._positive_index], pa.string(), size, null_mask
                )
                explained_value = positive
            else:
                label_index = np.argmax(outputs, axis=1)
                for index, name in enumerate(deployment.classes):
                    if name in keep:
                        columns[prediction_column(target, name)] = _float_column(
                            outputs[:, index], rows, size, null_mask
                        )
                columns[prediction_column(target)] = _index_column(
                    self._classes, label_index, rows, size, null_mask
                )
                explained_value = outputs[np.arange(len(outputs)), label_index]

        if options.max_explanations:
            columns.update(
                self._explanation_columns(
                    matrix, transformed, rows, explained_value, label_index, options, size
                )
            )
        status_array = (
            _constant_column(OK_STATUS, pa.string(), size, None)
            if status is None
            else pa.array(status, pa.string())
        )
        return ScoredBatch(table=pa.table(columns), failed=failed, status=status_array)

    def _label_threshold(self, options: ScoreOptions) -> float:
        """The job's ``prediction_threshold``, else the deployment's default, else 0.5."""
        if options.prediction_threshold is not None:
            return options.prediction_threshold
        if self.deployment.default_threshold is not None:
            return self.deployment.default_threshold
        return 0.5

    def _kept_probability_classes(self, options: ScoreOptions) -> frozenset[str]:
        if not options.include_probabilities:
            return frozenset()
        if options.include_probabilities_classes:
            return frozenset(options.include_probabilities_classes)
        return frozenset(self.deployment.classes)

    def _explanation_columns(
        self,
        matrix: np.ndarray,
        transformed: Any,
        rows: np.ndarray | None,
        explained_value: np.ndarray,
        label_index: np.ndarray | None,
        options: ScoreOptions,
        size: int,
    ) -> dict[str, pa.Array]:
        """``EXPLANATION_<n>_*`` columns for the rows selected by the explanation thresholds."""
        assert self.explainer is not None
        scored_rows = np.arange(size) if rows is None else rows
        selected = np.ones(len(scored_rows), dtype=bool)
        if options.explanation_thresholds_set:
            selected[:] = False
            if options.threshold_high is not None:
                selected |= explained_value > options.threshold_high
            if options.threshold_low is not None:
                selected |= explained_value < options.threshold_low
        all_selected = bool(selected.all())
        explained_rows = scored_rows if all_selected else scored_rows[selected]
        not_explained = np.ones(size, dtype=bool)
        not_explained[explained_rows] = False
        all_explained = not not_explained.any()
        null_mask = None if all_explained else not_explained
        spread_rows = None if all_explained else explained_rows

        wanted = options.max_explanations
        available = min(wanted, len(self._features))
        order = np.zeros((0, available), dtype=np.int32)
        strengths = actual = np.zeros((0, available))
        codes = np.zeros((0, available), dtype=np.int8)
        if len(explained_rows):
            raw = matrix if all_explained else matrix[explained_rows]
            class_index = label_index[selected] if label_index is not None else None
            explained_input = transformed if all_selected else transformed[selected]
            contributions = self.explainer.contributions(explained_input, class_index)
            order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :available].astype(np.int32)
            strengths = np.take_along_axis(contributions, order, axis=1)
            actual = np.take_along_axis(raw, order, axis=1)
            codes = qualitative_codes(strengths, np.abs(strengths[:, :1])).astype(np.int8)
        if spread_rows is not None:  # put the explained rows in place among the unexplained ones
            order, strengths, actual, codes = (
                _spread(values, spread_rows, size, fill)
                for values, fill in ((order, 0), (strengths, 0.0), (actual, np.nan), (codes, 0))
            )
        # Each kind of cell is built for all slots at once (slot-major) and then sliced per slot:
        # a handful of Arrow calls per chunk instead of four per slot.
        slot_mask = None if null_mask is None else np.tile(null_mask, available)
        names = self._feature_names_array.take(pa.array(order.T.ravel(), mask=slot_mask))
        symbols = QUALITATIVE_SYMBOLS.take(pa.array(codes.T.ravel(), mask=slot_mask))
        strength_cells = pa.array(strengths.T.ravel(), mask=slot_mask)
        actual_flat = actual.T.ravel()
        actual_cells = pa.array(actual_flat, mask=np.isnan(actual_flat))
        columns: dict[str, pa.Array] = {}
        for slot in range(available):
            name_col, strength_col, actual_col, qualitative_col = explanation_columns(slot + 1)
            offset = slot * size
            columns[name_col] = names.slice(offset, size)
            columns[strength_col] = strength_cells.slice(offset, size)
            columns[actual_col] = actual_cells.slice(offset, size)
            columns[qualitative_col] = symbols.slice(offset, size)
        if wanted > available:  # more explanations asked for than there are features
            null_text, null_number = pa.nulls(size, pa.string()), pa.nulls(size, pa.float64())
            for slot in range(available, wanted):
                name_col, strength_col, actual_col, qualitative_col = explanation_columns(slot + 1)
                columns[name_col] = columns[qualitative_col] = null_text
                columns[strength_col] = columns[actual_col] = null_number
        return columns
