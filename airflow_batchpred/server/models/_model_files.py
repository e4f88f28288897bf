"""Loading model files without trusting them: skops by default, pickle only on explicit opt-in.

A skops file is a zip archive with a ``schema.json`` that describes every object in it; loading it
never runs ``pickle``. skops itself trusts scikit-learn's estimators and plain containers. On top
of that we trust only the types in :data:`EXTRA_TRUSTED_TYPES` (internal scikit-learn and numpy
types that fitted estimators carry). A file holding any other type is refused unless the server
operator started the server with ``allow_unsafe``.

Pickle and joblib files can execute arbitrary code when loaded, so they are refused unless
``allow_unsafe`` is set.
"""

from __future__ import annotations

import logging
import warnings
import zipfile
from pathlib import Path
from typing import Any

from airflow_batchpred.server.models._types import UnsafeModelError

with warnings.catch_warnings():
    # On import skops finds the modules of scipy's ufuncs by probing every loaded module; in an
    # Airflow process that trips Airflow's deprecated-attribute shims, whose warnings are noise.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", FutureWarning)
    import skops.io as sio

log = logging.getLogger(__name__)

SKOPS = "skops"
PICKLE = "pickle"

#: Types trusted in addition to skops' defaults (scikit-learn estimators, numpy arrays, builtins).
#: Each is a data holder of a fitted scikit-learn model, not something that runs code on load.
EXTRA_TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn.ensemble._gb.VerboseReporter",
)

#: How the error names the opt-in an operator sets to allow pickle files and untrusted skops types.
ALLOW_UNSAFE_FLAG = "allow_unsafe=True (batchpred-server serve --allow-unsafe-models)"


def detect_format(path: Path) -> str:
    """Tell a skops archive from anything else (which we treat as pickle/joblib)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "schema.json" in archive.namelist():
                return SKOPS
    return PICKLE


def untrusted_types(path: Path) -> list[str]:
    """The types in a skops file that neither skops nor :data:`EXTRA_TRUSTED_TYPES` trust."""
    return sorted(set(sio.get_untrusted_types(file=path)) - set(EXTRA_TRUSTED_TYPES))


def load_model_file(path: Path, *, allow_unsafe: bool = False, name: str | None = None) -> tuple[Any, str]:
    """Load a model file and return ``(model, format)``.

    :param path: a skops file, or a pickle/joblib file when ``allow_unsafe`` is set.
    :param allow_unsafe: the server operator's opt-in to pickle and to untrusted skops types.
    :param name: how error messages name the file (default: its file name).
    :raises UnsafeModelError: the file is a pickle or holds untrusted types and unsafe loading is
        not allowed.
    """
    name = name or path.name
    file_format = detect_format(path)
    if file_format == PICKLE:
        if not allow_unsafe:
            raise UnsafeModelError(
                f"{name} is not a skops file; pickle/joblib model files can run arbitrary code "
                f"when loaded and are refused unless the server runs with {ALLOW_UNSAFE_FLAG}. "
                "Save the model with skops.io.dump instead."
            )
        log.warning("Loading %s with pickle because unsafe model loading is allowed", path)
        import joblib  # joblib reads both joblib and plain pickle files

        return joblib.load(path), PICKLE

    untrusted = untrusted_types(path)
    if untrusted and not allow_unsafe:
        raise UnsafeModelError(
            f"{name} holds types that are not trusted: {', '.join(untrusted)}. Only scikit-learn "
            f"estimators and their internal types are loaded unless the server runs with "
            f"{ALLOW_UNSAFE_FLAG}."
        )
    if untrusted:
        log.warning("Loading %s with untrusted types %s because unsafe loading is allowed", path, untrusted)
    return sio.load(path, trusted=[*EXTRA_TRUSTED_TYPES, *untrusted]), SKOPS


def save_skops(model: Any, path: Path) -> None:
    """Write ``model`` as a skops file (atomically: a reader never sees half a file)."""
    partial = path.with_name(path.name + ".partial")
    sio.dump(model, partial)
    partial.replace(path)
