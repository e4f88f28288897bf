"""Run one DAG of the dags folder with ``dag.test()`` and OpenLineage enabled (a child process).

``tests/conftest.py`` disables OpenLineage for the suite, and Airflow loads the OpenLineage plugin
(its listener) once per process, when plugins load: it cannot be switched on for one test inside
the pytest process. ``test_openlineage.py`` therefore runs its DAGs here, with the parent's
environment (Airflow home, database, dags folder, connections) plus the OpenLineage settings.

Usage: ``python lineage_runner.py <dag_id> <run conf as JSON>``; prints ``STATE <state>`` last.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    dag_id, run_conf = sys.argv[1], json.loads(sys.argv[2])
    from airflow.dag_processing.dagbag import DagBag
    from airflow.settings import DAGS_FOLDER

    bag = DagBag(dag_folder=DAGS_FOLDER)
    if dag_id not in bag.dags:
        print(f"DAG {dag_id!r} not found; import errors: {bag.import_errors}")
        return 2
    run = bag.dags[dag_id].test(run_conf=run_conf)
    print(f"STATE {getattr(run.state, 'value', run.state)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
