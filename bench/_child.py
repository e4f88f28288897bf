"""Processes that ``bench/run.py`` starts and measures from outside (RSS and CPU with psutil).

Each subcommand prints one JSON line (its result) on stdout as its last line. The environment
(``AIRFLOW_HOME``, ``AIRFLOW_CONN_DATAROBOT_DEFAULT``, ...) is set by the runner.

* ``initdb`` - migrate the bench's Airflow metadata database once;
* ``operator`` / ``empty`` - ``dag.test()`` of a one-task DAG: our local-file operator, or an empty
  ``@task`` (the harness's own footprint);
* ``official`` - the official ``datarobot`` client's ``BatchPredictionJob.score_to_file``;
* ``triggers`` - one asyncio loop running N ``DataRobotBatchPredictionJobTrigger.run()`` generators,
  as Airflow's triggerer does;
* ``sensor`` - one poke-mode ``DataRobotBatchPredictionJobSensor`` poking one job (a worker slot);
* ``pollers`` - N concurrent aiohttp pollers of ``GET batchPredictions/{id}/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from datetime import datetime
from typing import Any

START = datetime(2026, 1, 1)


#: Where the result (and the readiness mark) go: files, because Airflow logs to stdout, and a
#: parent that reads stdout only at the end would let a full pipe block the child.
RESULT_FILE = os.environ.get("BENCH_RESULT_FILE", "")


def _emit(result: dict[str, Any]) -> None:
    if RESULT_FILE:
        with open(RESULT_FILE + ".tmp", "w") as sink:
            json.dump(result, sink)
        os.replace(RESULT_FILE + ".tmp", RESULT_FILE)
    else:
        print(json.dumps(result), flush=True)


def _ready() -> None:
    if RESULT_FILE:
        with open(RESULT_FILE + ".ready", "w"):
            pass
    print("ready", flush=True)


def _connection() -> tuple[str, str]:
    connection = json.loads(os.environ["AIRFLOW_CONN_DATAROBOT_DEFAULT"])
    return connection["extra"]["endpoint"], connection["password"]


def _job_ids(path: str) -> list[str]:
    with open(path) as lines:
        return [line.strip() for line in lines if line.strip()]


def initdb(_args: argparse.Namespace) -> None:
    from airflow.utils import db

    db.initdb()
    _emit({"ok": True})


def run_dag(args: argparse.Namespace) -> None:
    """``dag.test()`` of a DAG in ``bench_dags.py``: the real task runner path, real context and XCom."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], "bench_dags.py"))
    dag = bag.dags[f"bench_{args.command}"]
    conf = None
    if args.command == "operator":
        conf = {"deployment_id": args.deployment, "input_file": args.input, "output_file": args.output}
    # Airflow's dag.test() spends ~20 s starting its in-process execution API before any task
    # runs; time the task's own execute() as well, which is what a worker spends on the job.
    task = dag.get_task("score")
    timing: dict[str, float] = {}
    original = type(task).execute

    def timed_execute(self: Any, context: Any) -> Any:
        timing["start"] = time.perf_counter()
        try:
            return original(self, context)
        finally:
            timing["end"] = time.perf_counter()

    type(task).execute = timed_execute  # type: ignore[method-assign]
    started = time.perf_counter()
    dag_run = dag.test(run_conf=conf)
    seconds = time.perf_counter() - started
    _emit(
        {
            "seconds": timing.get("end", 0.0) - timing.get("start", 0.0),
            "dag_test_seconds": seconds,
            "state": str(dag_run.state),
        }
    )


def official(args: argparse.Namespace) -> None:
    import datarobot as dr

    endpoint, token = _connection()
    dr.Client(endpoint=endpoint, token=token)
    started = time.perf_counter()
    job = dr.BatchPredictionJob.score_to_file(args.deployment, args.input, args.output)
    seconds = time.perf_counter() - started
    _emit({"seconds": seconds, "status": job.get_status().get("status")})


def triggers(args: argparse.Namespace) -> None:
    """Watch N jobs with N trigger generators in one loop; report when each event arrived."""
    from airflow_batchpred.triggers.batch_prediction import DataRobotBatchPredictionJobTrigger

    job_ids = _job_ids(args.jobs)

    async def watch(trigger: DataRobotBatchPredictionJobTrigger, seen: dict[str, Any]) -> None:
        async for event in trigger.run():
            seen[trigger.job_id] = {"at": time.time(), "status": event.payload.get("job_status")}

    async def main() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        tasks = []
        for job_id in job_ids:
            trigger = DataRobotBatchPredictionJobTrigger(job_id, poll_interval=args.poll_interval)
            tasks.append(asyncio.create_task(watch(trigger, seen)))
            # The triggerer picks triggers up over time; spread the first polls over one interval.
            await asyncio.sleep(args.poll_interval / len(job_ids))
        _ready()
        await asyncio.gather(*tasks)
        return seen

    seen = asyncio.run(main())
    _emit({"events": seen})


def sensor(args: argparse.Namespace) -> None:
    """One poke-mode sensor: what a worker slot costs while it waits on a job."""
    from airflow_batchpred.sensors.batch_prediction import DataRobotBatchPredictionJobSensor

    poke = DataRobotBatchPredictionJobSensor(
        task_id="wait", job_id=args.job_id, poke_interval=args.poll_interval
    )
    _ready()
    context: Any = {}
    while True:
        try:
            if poke.poke(context):
                break
        except Exception:  # FAILED/ABORTED raise: the job ended, which is what we wait for
            break
        time.sleep(args.poll_interval)
    _emit({"at": time.time()})


def pollers(args: argparse.Namespace) -> None:
    """N pollers, each GETting a job every ``interval`` seconds for ``duration`` seconds."""
    import aiohttp

    endpoint, token = _connection()
    job_ids = _job_ids(args.jobs)

    async def poller(
        session: aiohttp.ClientSession, stop: float, latencies: list[float], errors: list[str]
    ) -> None:
        await asyncio.sleep(random.random() * args.interval)
        while time.monotonic() < stop:
            url = f"{endpoint}/batchPredictions/{random.choice(job_ids)}/"
            started = time.perf_counter()
            try:
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        errors.append(str(response.status))
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors.append(type(exc).__name__)
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(args.interval)

    async def main() -> dict[str, Any]:
        latencies: list[float] = []
        errors: list[str] = []
        connector = aiohttp.TCPConnector(limit=0)
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
            stop = time.monotonic() + args.duration
            await asyncio.gather(*(poller(session, stop, latencies, errors) for _ in range(args.count)))
        return {"latencies": latencies, "errors": errors}

    _emit(asyncio.run(main()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("initdb").set_defaults(func=initdb)
    for name in ("operator", "empty"):
        dag = sub.add_parser(name)
        dag.add_argument("--deployment", default="")
        dag.add_argument("--input", default="")
        dag.add_argument("--output", default="")
        dag.add_argument("--poll-interval", type=float, default=5.0)
        dag.set_defaults(func=run_dag)
    client = sub.add_parser("official")
    client.add_argument("--deployment", required=True)
    client.add_argument("--input", required=True)
    client.add_argument("--output", required=True)
    client.set_defaults(func=official)
    trig = sub.add_parser("triggers")
    trig.add_argument("--jobs", required=True)
    trig.add_argument("--poll-interval", type=float, default=5.0)
    trig.set_defaults(func=triggers)
    sens = sub.add_parser("sensor")
    sens.add_argument("--job-id", required=True)
    sens.add_argument("--poll-interval", type=float, default=5.0)
    sens.set_defaults(func=sensor)
    poll = sub.add_parser("pollers")
    poll.add_argument("--jobs", required=True)
    poll.add_argument("--count", type=int, default=200)
    poll.add_argument("--interval", type=float, default=1.0)
    poll.add_argument("--duration", type=float, default=20.0)
    poll.set_defaults(func=pollers)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.stdout.flush()
    # Skip interpreter teardown (Airflow's atexit hooks): the result is already out.
    os._exit(0)
