"""Helpers of the database tests: demo scoring data, expected scores, PostgreSQL access."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv

from airflow_batchpred.server import models

#: The Airflow connection id the JDBC example DAG uses.
POSTGRES_CONN_ID = "batchpred_postgres"
#: The regression demo deployment scores every database test (one prediction column, easy to check).
DEPLOYMENT_ID = models.DEMO_REGRESSION_ID
PREDICTION = "progression_PREDICTION"


def state_of(dag_run: Any) -> str:
    return str(getattr(dag_run.state, "value", dag_run.state))


def demo_rows(tmp_dir: Path, rows: int, seed: int = 7) -> pa.Table:
    """``rows`` rows of the regression deployment's features, with an ``id`` column first."""
    path = models.write_demo_csv(DEPLOYMENT_ID, tmp_dir / f"demo-{rows}-{seed}.csv", rows, seed=seed)
    table = pa_csv.read_csv(path)
    return table.add_column(0, "id", pa.array(range(1, rows + 1), pa.int64()))


def expected_predictions(scorer: models.Scorer, table: pa.Table) -> dict[int, float]:
    """``{id: prediction}`` for the rows of ``table``, scored in process."""
    strings = pa.table({name: table[name].cast(pa.string()) for name in table.column_names})
    scored = scorer.score(strings.combine_chunks().to_batches()[0], models.ScoreOptions()).table
    return dict(zip(table["id"].to_pylist(), scored[PREDICTION].to_pylist(), strict=True))


class Postgres:
    """Helpers on the PostgreSQL stand-in (as the test user, autocommit)."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def execute(self, statement: Any, params: Any = None) -> list[tuple[Any, ...]]:
        connection = self.server.connect()
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
                return list(cursor.fetchall()) if cursor.description else []
        finally:
            connection.close()

    def load_scoring_table(self, name: str, table: pa.Table, schema: str = "public") -> None:
        """(Re)create ``schema.name`` with an integer ``id`` key and float features, filled from ``table``."""
        from psycopg2 import sql

        columns = [sql.SQL("{} BIGINT PRIMARY KEY").format(sql.Identifier("id"))] + [
            sql.SQL("{} DOUBLE PRECISION").format(sql.Identifier(name)) for name in table.column_names[1:]
        ]
        target = sql.Identifier(schema, name)
        connection = self.server.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
                cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
                cursor.execute(sql.SQL("CREATE TABLE {} ({})").format(target, sql.SQL(", ").join(columns)))
                buffer = pa_csv_bytes(table)
                cursor.copy_expert(
                    sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv, HEADER true)")
                    .format(target)
                    .as_string(cursor),
                    buffer,
                )
            connection.commit()
        finally:
            connection.close()

    def rows(
        self, name: str, columns: str = "*", schema: str = "public", order: str = "id"
    ) -> list[dict[str, Any]]:
        from psycopg2 import sql

        connection = self.server.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
                        sql.SQL(columns), sql.Identifier(schema, name), sql.Identifier(order)
                    )
                )
                names = [column[0] for column in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            connection.close()


def pa_csv_bytes(table: pa.Table) -> Any:
    import io

    sink = io.BytesIO()
    pa_csv.write_csv(table, sink)
    sink.seek(0)
    return io.TextIOWrapper(sink, encoding="utf-8")
