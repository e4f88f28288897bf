"""Scoring-engine benchmark: the server's ``Scorer.score`` against an in-process baseline.

For each demo deployment, N rows of a demo CSV are scored twice in the same run, with and without
prediction explanations:

* **engine** - what the server does per job: pyarrow's streaming CSV reader with every column as
  text (1 MiB blocks), ``Scorer.score`` on chunks of the server's chunk size, pyarrow CSV writer;
* **baseline** - the straightforward in-process job on the same model: ``pyarrow.csv.read_csv``
  (typed, multi-threaded), ``predict``/``predict_proba`` on the whole matrix, the same explanation
  computation (TreeSHAP or the linear terms, then argsort/take of the top N), ``write_csv``.

The goal is engine >= 0.8x baseline rows/s. Results go to the ``## Server scoring (P5)`` section of
``bench/RESULTS.md`` (other sections are kept).

Usage::

    .venv/bin/python bench/bench_scoring.py --rows 1000000
    .venv/bin/python bench/bench_scoring.py --rows 20000 --no-results   # smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import shap
import sklearn

from airflow_batchpred.server.config import ServerSettings
from airflow_batchpred.server.models import (
    BINARY,
    DEMO_BINARY_ID,
    DEMO_MULTICLASS_ID,
    DEMO_REGRESSION_ID,
    REGRESSION,
    DeploymentInfo,
    ModelRegistry,
    ScoreOptions,
    Scorer,
    explanation_columns,
    prediction_column,
    write_demo_csv,
)

SECTION_HEADING = "## Server scoring (P5)"
GOAL_RATIO = 0.8
READ_BLOCK_BYTES = ServerSettings().read_block_bytes
DEPLOYMENTS = {"binary": DEMO_BINARY_ID, "regression": DEMO_REGRESSION_ID, "multiclass": DEMO_MULTICLASS_ID}
QUALITATIVE = pa.array(["+++", "++", "+", "-", "--", "---"])


@dataclass
class Measurement:
    deployment: str
    model_type: str
    explanations: int
    rows: int
    engine_seconds: float
    baseline_seconds: float
    engine_cpu_seconds: float
    baseline_cpu_seconds: float

    @property
    def engine_rate(self) -> float:
        return self.rows / self.engine_seconds

    @property
    def baseline_rate(self) -> float:
        return self.rows / self.baseline_seconds

    @property
    def ratio(self) -> float:
        return self.engine_rate / self.baseline_rate

    @property
    def cpu_ratio(self) -> float:
        """Baseline CPU seconds over engine CPU seconds: the ratio on an otherwise idle machine."""
        return self.baseline_cpu_seconds / self.engine_cpu_seconds


# --------------------------------------------------------------------------------------- engine
def score_with_engine(
    source: Path, target: Path, scorer: Scorer, options: ScoreOptions, chunk_rows: int
) -> int:
    """Stream ``source`` through ``Scorer.score`` the way the server's job runner does."""
    with source.open("rb") as handle:
        names = handle.readline().decode().rstrip("\r\n").split(",")
    reader = pa_csv.open_csv(
        source,
        read_options=pa_csv.ReadOptions(block_size=READ_BLOCK_BYTES, column_names=names, skip_rows=1),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
        ),
    )
    rows = 0
    writer: pa_csv.CSVWriter | None = None
    with target.open("wb") as sink:
        for batch in reader:
            for offset in range(0, batch.num_rows, chunk_rows):
                scored = scorer.score(batch.slice(offset, chunk_rows), options)
                if writer is None:
                    writer = pa_csv.CSVWriter(sink, scored.table.schema)
                writer.write_table(scored.table)
                rows += scored.table.num_rows
        if writer is not None:
            writer.close()
    return rows


# ------------------------------------------------------------------------------------- baseline
def _top_explanations(
    contributions: np.ndarray, features: np.ndarray, names: pa.Array, count: int
) -> dict[str, pa.Array]:
    available = min(count, contributions.shape[1])
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :available]
    strengths = np.take_along_axis(contributions, order, axis=1)
    actual = np.take_along_axis(features, order, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.abs(strengths) / np.abs(strengths[:, :1])
    level = np.where(ratio >= 0.5, 0, np.where(ratio >= 0.25, 1, 2))
    codes = np.where(strengths < 0, 5 - level, level)
    columns: dict[str, pa.Array] = {}
    for slot in range(count):
        name, strength, actual_value, qualitative = explanation_columns(slot + 1)
        if slot >= available:
            size = len(contributions)
            columns[name] = columns[qualitative] = pa.nulls(size, pa.string())
            columns[strength] = columns[actual_value] = pa.nulls(size, pa.float64())
            continue
        columns[name] = names.take(pa.array(order[:, slot]))
        columns[strength] = pa.array(strengths[:, slot])
        columns[actual_value] = pa.array(actual[:, slot])
        columns[qualitative] = QUALITATIVE.take(pa.array(codes[:, slot]))
    return columns


def _linear_contributions(model: Any, features: np.ndarray, coef_rows: np.ndarray) -> np.ndarray:
    preprocess = model[:-1]
    reference = preprocess.transform(model[0].statistics_[np.newaxis, :])[0]
    return (preprocess.transform(features) - reference) * coef_rows


def score_with_baseline(
    source: Path, target: Path, model: Any, info: DeploymentInfo, explanations: int
) -> int:
    """The in-process job: read everything, predict once, explain, write everything."""
    table = pa_csv.read_csv(source)
    features = np.empty((table.num_rows, len(info.feature_names)))
    for position, name in enumerate(info.feature_names):
        features[:, position] = table[name].to_numpy()
    columns: dict[str, pa.Array] = {}
    names = pa.array(info.feature_names)
    classes = pa.array(info.classes)
    if info.target_type == REGRESSION:
        columns[prediction_column(info.target_name)] = pa.array(model.predict(features))
        if explanations:
            coef = model[-1].coef_
            contributions = _linear_contributions(model, features, coef[np.newaxis, :])
    elif info.target_type == BINARY:
        positive = info.classes.index(info.positive_class)
        negative = 1 - positive
        proba = model.predict_proba(features)
        for index in (positive, negative):
            columns[prediction_column(info.target_name, info.classes[index])] = pa.array(proba[:, index])
        label = np.where(proba[:, positive] > 0.5, positive, negative)
        columns[prediction_column(info.target_name)] = classes.take(pa.array(label))
        columns["THRESHOLD"] = pa.array(np.full(len(label), 0.5))
        columns["POSITIVE_CLASS"] = pa.array([info.positive_class]).take(
            pa.array(np.zeros(len(label), np.int32))
        )
        if explanations:
            explainer = shap.TreeExplainer(model[-1])
            contributions = explainer.shap_values(model[:-1].transform(features), check_additivity=False)
            if positive == 0:
                contributions = -contributions
    else:
        proba = model.predict_proba(features)
        label = np.argmax(proba, axis=1)
        for index, name in enumerate(info.classes):
            columns[prediction_column(info.target_name, name)] = pa.array(proba[:, index])
        columns[prediction_column(info.target_name)] = classes.take(pa.array(label))
        if explanations:
            contributions = _linear_contributions(model, features, model[-1].coef_[label])
    if explanations:
        columns.update(_top_explanations(contributions, features, names, explanations))
    pa_csv.write_csv(pa.table(columns), target)
    return table.num_rows


# ------------------------------------------------------------------------------------- running
def timed(action: Callable[[], int]) -> tuple[float, float, int]:
    """``(wall seconds, CPU seconds of this process, rows)`` of one run."""
    started, cpu_started = time.perf_counter(), time.process_time()
    rows = action()
    return time.perf_counter() - started, time.process_time() - cpu_started, rows


def measure(
    label: str,
    registry: ModelRegistry,
    workdir: Path,
    rows: int,
    explanations: int,
    repeat: int,
    settings: ServerSettings,
) -> Measurement:
    deployment_id = DEPLOYMENTS[label]
    info = registry.get(deployment_id)
    assert info is not None
    scorer = registry.scorer(deployment_id)
    model = registry.load_model(deployment_id)
    source = workdir / f"{label}-{rows}.csv"
    if not source.exists():
        write_demo_csv(deployment_id, source, rows, seed=0)
    options = ScoreOptions(max_explanations=explanations)
    chunk_rows = settings.explanation_chunk_rows if explanations else settings.chunk_rows
    warmup = workdir / f"{label}-warmup.csv"
    if not warmup.exists():
        write_demo_csv(deployment_id, warmup, 5_000, seed=1)
    score_with_engine(warmup, workdir / "warm-engine.csv", scorer, options, chunk_rows)
    score_with_baseline(warmup, workdir / "warm-baseline.csv", model, info, explanations)

    times: dict[str, list[tuple[float, float]]] = {"engine": [], "baseline": []}
    for attempt in range(repeat):
        runs = [
            (
                "engine",
                lambda: score_with_engine(source, workdir / "engine.csv", scorer, options, chunk_rows),
            ),
            (
                "baseline",
                lambda: score_with_baseline(source, workdir / "baseline.csv", model, info, explanations),
            ),
        ]
        if attempt % 2:  # alternate the order so drift in machine load does not favour one side
            runs.reverse()
        for name, action in runs:
            seconds, cpu_seconds, scored_rows = timed(action)
            assert scored_rows == rows, (name, scored_rows, rows)
            times[name].append((seconds, cpu_seconds))
    measurement = Measurement(
        label,
        info.model_type,
        explanations,
        rows,
        engine_seconds=min(wall for wall, _ in times["engine"]),
        baseline_seconds=min(wall for wall, _ in times["baseline"]),
        engine_cpu_seconds=min(cpu for _, cpu in times["engine"]),
        baseline_cpu_seconds=min(cpu for _, cpu in times["baseline"]),
    )
    print(
        f"{label:<10} explanations={explanations:<3} engine {measurement.engine_rate:>11,.0f} rows/s  "
        f"baseline {measurement.baseline_rate:>11,.0f} rows/s  ratio {measurement.ratio:.2f}  "
        f"(CPU-time ratio {measurement.cpu_ratio:.2f})",
        flush=True,
    )
    return measurement


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def render_section(
    measurements: list[Measurement], command: str, settings: ServerSettings, repeat: int
) -> str:
    load = os.getloadavg()
    lines = [
        SECTION_HEADING,
        "",
        "Scoring engine (`airflow_batchpred.server.models.Scorer`) against an in-process baseline of the",
        "same model, measured in the same run by `bench/bench_scoring.py`.",
        "",
        f"- Command: `{command}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; best of {repeat} run(s) per figure",
        f"- Machine: nproc {os.cpu_count()}, {cpu_model()}; load average at the end "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (other work shares this machine)",
        f"- Software: Python {platform.python_version()}, numpy {np.__version__}, scikit-learn "
        f"{sklearn.__version__}, pyarrow {pa.__version__}, shap {shap.__version__}",
        "- Engine: pyarrow streaming CSV reader, every column as text, "
        f"{settings.read_block_bytes >> 10} KiB blocks -> `Scorer.score` per chunk of "
        f"{settings.chunk_rows:,} rows ({settings.explanation_chunk_rows:,} with explanations, the "
        "server's defaults) -> pyarrow CSV writer.",
        "- Baseline: `pyarrow.csv.read_csv` (typed, multi-threaded) -> `predict`/`predict_proba` on the "
        "whole matrix (+ the same explanation computation: TreeSHAP or linear terms, argsort/take of the "
        "top N) -> `pyarrow.csv.write_csv`.",
        "- Both write the same columns (predictions, then explanations); the engine also converts text "
        "cells, checks every cell and builds per-row status.",
        "",
        "| deployment | model | explanations | rows | engine rows/s | baseline rows/s | engine / baseline "
        "| CPU-time ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measurements:
        lines.append(
            f"| {m.deployment} | {m.model_type} | {m.explanations} | {m.rows:,} | {m.engine_rate:,.0f} | "
            f"{m.baseline_rate:,.0f} | {m.ratio:.2f}x | {m.cpu_ratio:.2f}x |"
        )
    worst = min(m.ratio for m in measurements)
    verdict = "met" if worst >= GOAL_RATIO else "NOT met"
    lines += [
        "",
        f"Goal: engine >= {GOAL_RATIO}x baseline rows/s in every row. "
        f"Lowest ratio {worst:.2f}x: goal {verdict}.",
        "Wall-clock ratios move from run to run on a shared machine; the CPU-time ratio (baseline CPU "
        "seconds / engine CPU seconds of the process) is the steadier figure.",
        "This is the scoring engine alone; the end-to-end HTTP figure is measured by the server benchmark.",
        "",
    ]
    return "\n".join(lines)


def update_results(path: Path, section: str) -> None:
    """Replace (or append) this benchmark's section, keeping every other section."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION_HEADING)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per scored file")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--no-results", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument(
        "--deployments",
        default="binary,regression,multiclass",
        help="comma-separated: " + ", ".join(DEPLOYMENTS),
    )
    parser.add_argument("--explanations", type=int, default=10, help="max_explanations of the explained run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (the best is kept)")
    parser.add_argument("--workdir", type=Path, default=None, help="where data and models go (default: temp)")
    args = parser.parse_args(argv)

    settings = ServerSettings()
    labels = [label.strip() for label in args.deployments.split(",") if label.strip()]
    unknown = [label for label in labels if label not in DEPLOYMENTS]
    if unknown:
        parser.error(f"unknown deployments {unknown}; choose from {list(DEPLOYMENTS)}")
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as temp:
        workdir = args.workdir or Path(temp)
        workdir.mkdir(parents=True, exist_ok=True)
        registry = ModelRegistry(workdir / "models")
        registry.ensure_demo_models()
        measurements = [
            measure(label, registry, workdir, args.rows, explanations, args.repeat, settings)
            for label in labels
            for explanations in (0, args.explanations)
        ]
    command = ".venv/bin/python bench/bench_scoring.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    section = render_section(measurements, command.strip(), settings, args.repeat)
    if args.no_results:
        print(section)
    else:
        update_results(args.out, section)
        print(f"Updated {SECTION_HEADING!r} in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
