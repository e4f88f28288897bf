"""Every example DAG imports cleanly, every seed use case has one, and the runnable ones that no other
test module runs are run here (the others are referenced, not run again).

The seed is DataRobot's "Batch prediction use cases" page: twelve cases, from a local CSV to
BigQuery. :data:`SEED_CASES` maps each to its example DAG and to the test module that runs it.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from airflow_batchpred.contract import CsvSettings
from airflow_batchpred.server import models


def _reread_airflow_settings() -> None:
    """Point Airflow at the temporary home of ``tests/conftest.py`` (as ``tests/provider/conftest.py``).

    ``pyproject.toml``'s ``filterwarnings`` names an Airflow warning class, so pytest imports Airflow
    before ``tests/conftest.py`` sets ``AIRFLOW_HOME``.
    """
    import os

    from airflow import settings
    from airflow.configuration import conf

    if os.path.expanduser(conf.get("core", "dags_folder")) != settings.DAGS_FOLDER or (
        conf.get("database", "sql_alchemy_conn") != settings.SQL_ALCHEMY_CONN
    ):
        os.makedirs(os.environ["AIRFLOW_HOME"], exist_ok=True)
        settings.configure_vars()
        settings.reconfigure_orm()


_reread_airflow_settings()

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "example_dags"
THIS_MODULE = "tests/test_example_dags.py"

#: Seed use case → (example DAG, the test module that runs it against the local server and stand-ins).
SEED_CASES: dict[str, tuple[str, str]] = {
    "End-to-end scoring of CSV files from local files": (
        "example_batchpred_local_file",
        "tests/provider/test_provider_dag_runs.py",
    ),
    "Local files: Prediction Explanations": ("example_batchpred_local_file_explanations", THIS_MODULE),
    "Local files: Custom CSV format": ("example_batchpred_custom_csv", THIS_MODULE),
    "End-to-end scoring of CSV files on S3": (
        "example_batchpred_s3",
        "tests/object_storage/test_cloud_dag_runs.py",
    ),
    "S3: Prediction Explanations": (
        "example_batchpred_s3_explanations",
        "tests/object_storage/test_cloud_dag_runs.py",
    ),
    "S3: the same with score_azure": (
        "example_batchpred_azure",
        "tests/object_storage/test_cloud_dag_runs.py",
    ),
    "S3: the same with score_gcp": ("example_batchpred_gcs", "tests/object_storage/test_cloud_dag_runs.py"),
    "AI Catalog-to-CSV file scoring": ("example_batchpred_ai_catalog", "tests/databases/test_ai_catalog.py"),
    "End-to-end scoring from a JDBC PostgreSQL database": (
        "example_batchpred_jdbc_postgres",
        "tests/databases/test_postgres.py",
    ),
    "End-to-end scoring with Snowflake": ("example_batchpred_snowflake", "tests/databases/test_snowflake.py"),
    # No Synapse stand-in exists here: that test drives the DAG over the PostgreSQL stand-in.
    "End-to-end scoring with Synapse": ("example_batchpred_synapse", "tests/databases/test_synapse.py"),
    "End-to-end scoring with BigQuery": ("example_batchpred_bigquery", "tests/databases/test_bigquery.py"),
}
#: Example DAGs beyond the seed, and the test module that runs them.
OTHER_EXAMPLES: dict[str, str] = {
    "example_batchpred_assets_producer": "tests/ecosystem/test_assets.py",
    "example_batchpred_assets_consumer": "tests/ecosystem/test_assets.py",
}


def state_of(dag_run: Any) -> str:
    return str(getattr(dag_run.state, "value", dag_run.state))


@pytest.fixture(scope="module")
def example_bag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(EXAMPLES))


def test_every_example_dag_imports_with_tags_and_schedule(example_bag: Any) -> None:
    assert example_bag.import_errors == {}
    files = sorted(EXAMPLES.glob("*.py"))
    assert files
    dag_files = {Path(dag.fileloc).name for dag in example_bag.dags.values()}
    assert dag_files == {path.name for path in files}, "a file in example_dags/ defines no DAG"
    for dag_id, dag in example_bag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert "example" in dag.tags, dag_id
        source = Path(dag.fileloc).read_text(encoding="utf-8")
        calls = [
            node
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DAG"
        ]
        assert calls, f"{dag_id}: no DAG(...) call"
        assert all(any(k.arg == "schedule" for k in call.keywords) for call in calls), (
            f"{dag_id}: give schedule= explicitly"
        )
        assert "days_ago" not in source, f"{dag_id} uses the removed days_ago"
        assert dag.doc_md is None or dag.doc_md.strip()
        assert (dag.description or "").strip(), f"{dag_id} has no description"


def test_every_seed_use_case_has_an_example_dag_run_by_one_test(example_bag: Any) -> None:
    assert len(SEED_CASES) == 12
    mapped = {dag_id: module for dag_id, module in SEED_CASES.values()} | OTHER_EXAMPLES
    missing = [case for case, (dag_id, _) in SEED_CASES.items() if dag_id not in example_bag.dags]
    assert missing == [], f"seed use cases without an example DAG: {missing}"
    unmapped = sorted(set(example_bag.dags) - set(mapped))
    assert unmapped == [], f"example DAGs no test runs: {unmapped}"
    for dag_id, module in mapped.items():
        path = REPO_ROOT / module
        assert path.is_file(), f"{dag_id}: {module} does not exist"
        assert dag_id in path.read_text(encoding="utf-8"), f"{module} does not run {dag_id}"
    # This module runs only the examples no other test module runs (no DAG is run twice for nothing).
    for dag_id, module in mapped.items():
        if module != THIS_MODULE:
            continue
        others = [
            str(path.relative_to(REPO_ROOT))
            for path in (REPO_ROOT / "tests").rglob("test_*.py")
            if f'"{dag_id}"' in path.read_text(encoding="utf-8") and path.name != "test_example_dags.py"
        ]
        assert others == [], f"{dag_id} is already run by {others}; reference that module instead"


def test_local_file_explanations_example(
    run_dag: Any, xcom_of: Any, local_server: Any, tmp_path: Path
) -> None:
    from provider.batchpred_helpers import assert_scores_match, read_csv_rows

    source = models.write_demo_csv(models.DEMO_BINARY_ID, tmp_path / "to_predict.csv", 200, seed=21)
    target = tmp_path / "predicted.csv"
    run = run_dag(
        "example_batchpred_local_file_explanations",
        {"input_file": str(source), "output_file": str(target), "deployment_id": models.DEMO_BINARY_ID},
    )
    assert state_of(run) == "success"
    assert xcom_of(run, "score_with_explanations")["scored_rows"] == 200
    compared = assert_scores_match(
        local_server,
        models.DEMO_BINARY_ID,
        source,
        target,
        max_explanations=10,
        threshold_high=0.5,
        threshold_low=0.15,
    )
    assert compared == 200
    rows = read_csv_rows(target)
    explained = [row for row in rows if row.get("EXPLANATION_1_FEATURE_NAME")]
    assert explained, "no row was explained"
    assert len(explained) < len(rows), "rows between the thresholds must not be explained"


def test_custom_csv_example(run_dag: Any, xcom_of: Any, local_server: Any, tmp_path: Path) -> None:
    from provider.batchpred_helpers import assert_scores_match, read_csv_rows, write_kanji_csv

    kanji = CsvSettings(delimiter=";", quotechar="'", encoding="ms_kanji")
    source = write_kanji_csv(models.DEMO_REGRESSION_ID, tmp_path / "to_predict.csv", 120, kanji)
    target = tmp_path / "predicted.csv"
    run = run_dag(
        "example_batchpred_custom_csv",
        {"input_file": str(source), "output_file": str(target), "deployment_id": models.DEMO_REGRESSION_ID},
    )
    assert state_of(run) == "success"
    assert xcom_of(run, "score_custom_csv")["scored_rows"] == 120
    header = tuple(read_csv_rows(source, kanji)[0])
    assert "customer" in header
    compared = assert_scores_match(
        local_server, models.DEMO_REGRESSION_ID, source, target, settings=kanji, passthrough=header
    )
    assert compared == 120
    # The output is in the same dialect: ';'-delimited Shift JIS, the Japanese names intact.
    raw = target.read_bytes()
    assert "顧客0;山田".encode("ms_kanji") in raw
    assert b";" in raw.splitlines()[0]
