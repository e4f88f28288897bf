"""PostgreSQL → PostgreSQL through the example DAG, with every statement type, against a real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from database_helpers import DEPLOYMENT_ID, PREDICTION, Postgres, demo_rows, expected_predictions, state_of
from psycopg2 import sql

DAG_ID = "example_batchpred_jdbc_postgres"
ROWS = 300


@pytest.fixture(scope="module")
def scoring(
    tmp_path_factory: pytest.TempPathFactory, postgres: Postgres, scorer: Any
) -> tuple[pa.Table, dict[int, float]]:
    table = demo_rows(tmp_path_factory.mktemp("pg"), ROWS)
    postgres.load_scoring_table("scoring_data", table)
    return table, expected_predictions(scorer, table)


def create_scored_table(postgres: Postgres, name: str, features: list[str], schema: str = "public") -> None:
    """The seed's pre-existing target: the input columns plus the prediction column."""
    columns = [sql.SQL("{} BIGINT PRIMARY KEY").format(sql.Identifier("id"))]
    columns += [sql.SQL("{} DOUBLE PRECISION").format(sql.Identifier(name)) for name in features]
    columns.append(sql.SQL("{} DOUBLE PRECISION").format(sql.Identifier(PREDICTION)))
    postgres.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, name)))
    postgres.execute(
        sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(schema, name), sql.SQL(", ").join(columns))
    )


def assert_predictions(
    rows: list[dict[str, Any]], expected: dict[int, float], ids: set[int] | None = None
) -> None:
    wanted = ids if ids is not None else set(expected)
    assert sorted(int(row["id"]) for row in rows) == sorted(wanted)
    for row in rows:
        assert row[PREDICTION] == pytest.approx(expected[int(row["id"])], rel=1e-9, abs=1e-9), row["id"]


#: Every parameter of the example DAG: a cached DAG keeps the params of its previous test run.
DEFAULT_CONF: dict[str, Any] = {
    "deployment_id": DEPLOYMENT_ID,
    "postgres_conn_id": "batchpred_postgres",
    "source_schema": "public",
    "source_table": "scoring_data",
    "source_query": None,
    "target_schema": "public",
    "target_table": "scored_data",
    "statement_type": "insert",
    "update_columns": None,
    "where_columns": None,
    "create_table_if_not_exists": None,
    "commit_interval": None,
}


def run_jdbc(run_dag: Any, **conf: Any) -> Any:
    return run_dag(DAG_ID, {**DEFAULT_CONF, **conf})


def test_insert_into_existing_table_like_the_seed(
    run_dag: Any, postgres_conn_env: str, postgres: Postgres, scoring: Any, xcom_of: Any
) -> None:
    table, expected = scoring
    create_scored_table(postgres, "scored_data", table.column_names[1:])

    run = run_jdbc(run_dag, statement_type="insert")

    assert state_of(run) == "success"
    rows = postgres.rows("scored_data")
    assert_predictions(rows, expected)
    # Passed-through features are the input values, unchanged.
    first = table.slice(0, 1).to_pylist()[0]
    assert rows[0]["bmi"] == pytest.approx(first["bmi"])
    summary = xcom_of(run, "score_postgres_table")
    assert summary["scored_rows"] == ROWS
    assert summary["output_location"] == "jdbc:public.scored_data"


def test_create_table_creates_and_fills_it(
    run_dag: Any, postgres_conn_env: str, postgres: Postgres, scoring: Any
) -> None:
    _, expected = scoring
    postgres.execute("DROP TABLE IF EXISTS public.created_scores")

    run = run_jdbc(run_dag, statement_type="createTable", target_table="created_scores")

    assert state_of(run) == "success"
    assert_predictions(postgres.rows("created_scores"), expected)
    types = dict(
        postgres.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
            ("created_scores",),
        )
    )
    # Predictions are typed; passed-through columns arrive as text from the intake and stay text.
    assert types[PREDICTION] == "double precision"
    assert types["id"] == "text"


def test_insert_with_create_table_if_not_exists(
    run_dag: Any, postgres_conn_env: str, postgres: Postgres, scoring: Any
) -> None:
    _, expected = scoring
    postgres.execute("DROP TABLE IF EXISTS public.created_on_demand")

    run = run_jdbc(
        run_dag, statement_type="insert", target_table="created_on_demand", create_table_if_not_exists=True
    )

    assert state_of(run) == "success"
    assert_predictions(postgres.rows("created_on_demand"), expected)


def test_update_sets_only_matching_rows(
    run_dag: Any, postgres_conn_env: str, postgres: Postgres, scoring: Any
) -> None:
    table, expected = scoring
    create_scored_table(postgres, "to_update", table.column_names[1:])
    # Every other row exists, with a stale prediction; update must not insert the others.
    postgres.execute(
        sql.SQL("INSERT INTO {} (id, {}) SELECT id, -1 FROM public.scoring_data WHERE id % 2 = 0").format(
            sql.Identifier("public", "to_update"), sql.Identifier(PREDICTION)
        )
    )

    run = run_jdbc(
        run_dag,
        statement_type="update",
        target_table="to_update",
        where_columns=["id"],
        update_columns=[PREDICTION],
    )

    assert state_of(run) == "success"
    rows = postgres.rows("to_update")
    assert_predictions(rows, expected, ids={i for i in expected if i % 2 == 0})
    # Only the update column was set: the features stay NULL as inserted.
    assert all(row["bmi"] is None for row in rows)


def test_insert_update_updates_matches_and_inserts_the_rest(
    run_dag: Any, postgres_conn_env: str, postgres: Postgres, scoring: Any
) -> None:
    table, expected = scoring
    create_scored_table(postgres, "to_upsert", table.column_names[1:])
    postgres.execute(
        sql.SQL("INSERT INTO {} (id, {}) SELECT id, -1 FROM public.scoring_data WHERE id <= 100").format(
            sql.Identifier("public", "to_upsert"), sql.Identifier(PREDICTION)
        )
    )

    run = run_jdbc(run_dag, statement_type="insertUpdate", target_table="to_upsert", where_columns=["id"])

    assert state_of(run) == "success"
    rows = postgres.rows("to_upsert")
    assert_predictions(rows, expected)
    # Without update_columns every non-key output column is set, features included.
    features = table.to_pylist()
    assert rows[0]["bmi"] == pytest.approx(features[0]["bmi"])


def test_reads_a_query_and_writes_another_schema(
    run_dag: Any, postgres_conn_env: str, postgres: Postgres, scoring: Any, tmp_path: Path
) -> None:
    table, expected = scoring
    postgres.execute("CREATE SCHEMA IF NOT EXISTS reporting")
    create_scored_table(postgres, "scored_subset", table.column_names[1:], schema="reporting")

    run = run_jdbc(
        run_dag,
        source_table=None,
        source_query="SELECT * FROM public.scoring_data WHERE id <= 50",
        target_schema="reporting",
        target_table="scored_subset",
    )

    assert state_of(run) == "success"
    assert_predictions(postgres.rows("scored_subset", schema="reporting"), expected, ids=set(range(1, 51)))


def test_deferrable_operator_maps_and_scores(
    run_dag: Any, postgres_conn_env: str, postgres: Postgres, scoring: Any, xcom_of: Any
) -> None:
    _, expected = scoring
    postgres.execute("DROP TABLE IF EXISTS public.deferred_scores")

    run = run_dag(
        "batchpred_jdbc_deferred", {"deployment_id": DEPLOYMENT_ID, "target_table": "deferred_scores"}
    )

    assert state_of(run) == "success"
    assert_predictions(postgres.rows("deferred_scores"), expected)
    assert xcom_of(run, "score")["status"] == "COMPLETED"
