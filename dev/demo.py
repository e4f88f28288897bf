"""The main job: score a CSV through the local server with the example DAG, end to end.

Starts the local batch-prediction server on loopback, writes a demo CSV, runs the DAG
``example_batchpred_local_file`` with ``dag.test()`` (a real Airflow run against real HTTP), and
prints where the predictions went. Everything lives under ``.demo/`` in the repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO_ROOT / ".demo"
DAG_ID = "example_batchpred_local_file"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_server(endpoint: str, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the local server exited early; its log:\n{log_file.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{endpoint}/version/", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(
        f"the local server did not answer within 120 s; its log:\n{log_file.read_text()[-3000:]}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1000, help="rows in the demo CSV")
    parser.add_argument(
        "--deployment",
        choices=["binary", "regression", "multiclass"],
        default="binary",
        help="which demo deployment scores the file",
    )
    args = parser.parse_args()

    DEMO_DIR.mkdir(exist_ok=True)
    token = secrets.token_hex(16)
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}/api/v2"
    input_file = DEMO_DIR / "to_predict.csv"
    output_file = DEMO_DIR / "predicted.csv"
    output_file.unlink(missing_ok=True)

    # Airflow reads its configuration on import: set it up first.
    os.environ.update(
        {
            "AIRFLOW_HOME": str(DEMO_DIR / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
            "AIRFLOW_CONN_DATAROBOT_DEFAULT": json.dumps(
                {"conn_type": "datarobot", "password": token, "extra": {"endpoint": endpoint}}
            ),
        }
    )

    from airflow_batchpred.server import models

    deployment_id = {
        "binary": models.DEMO_BINARY_ID,
        "regression": models.DEMO_REGRESSION_ID,
        "multiclass": models.DEMO_MULTICLASS_ID,
    }[args.deployment]

    log_file = DEMO_DIR / "server.log"
    with log_file.open("ab") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow_batchpred.server",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(DEMO_DIR / "server"),
                "--token",
                token,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_server(endpoint, server, log_file)
        models.write_demo_csv(deployment_id, input_file, args.rows, seed=7)

        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db

        db.initdb()
        bag = DagBag(dag_folder=str(REPO_ROOT / "example_dags"))
        if DAG_ID not in bag.dags:
            raise SystemExit(f"{DAG_ID} did not load: {bag.import_errors}")
        run = bag.dags[DAG_ID].test(
            run_conf={
                "input_file": str(input_file),
                "output_file": str(output_file),
                "deployment_id": deployment_id,
            }
        )
    finally:
        server.terminate()
        server.wait(timeout=30)

    state = str(getattr(run.state, "value", run.state))
    if state != "success" or not output_file.exists():
        print(f"\nThe DAG run ended {state}; the server log is {log_file}", file=sys.stderr)
        return 1
    with output_file.open(newline="") as handle:
        rows = list(csv.reader(handle))
    print("\n" + "=" * 78)
    print(f"DAG {DAG_ID}: {state}")
    print(f"Scored {len(rows) - 1} rows of {input_file}")
    print(f"Predictions written to {output_file}")
    header, body = rows[0], rows[1:]
    shown = [
        i
        for i, name in enumerate(header)
        if name.endswith("_PREDICTION") or name == "EXPLANATION_1_FEATURE_NAME"
    ]
    print("First predictions:")
    for row in [header, *body[:3]]:
        print("  " + ", ".join(row[i] for i in shown))
    print("=" * 78)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
