"""Keep the benchmark command working: ``bench/run.py --quick`` writes every row with a number.

A smoke run, not a benchmark: nothing here asserts on timings.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ROW_IDS = ("P1", "P2", "I2", "P3", "P4", "P5", "P6")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_quick_run_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "bench" / "run.py"),
            "--quick",
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    text = out.read_text()
    assert "`.venv/bin/python bench/run.py --quick" in text
    assert re.search(r"nproc \d+", text)
    rows: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] in ROW_IDS:
            rows.setdefault(cells[0], []).append(cells)
    assert sorted(rows) == sorted(ROW_IDS), text
    for row_id, lines in rows.items():
        for _id, _figure, _reference, goal, measured, verdict in lines:
            assert re.search(r"\d", measured), (row_id, measured)
            assert goal, row_id
            assert "met" in verdict, (row_id, verdict)
            assert "ERROR" not in verdict, (row_id, verdict)
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())
