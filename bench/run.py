"""Performance campaign (issue 7): every figure P1-P6 beside its reference, in one run.

Usage::

    .venv/bin/python bench/run.py            # full size (P1 1 GB, P2 2 GB, P5 1 M rows: ~30 min)
    .venv/bin/python bench/run.py --quick    # smoke run (small sizes, ~2 min), used by CI
    .venv/bin/python bench/run.py --only P1,P3 --keep

It starts one local server (``python -m airflow_batchpred.server serve``) on loopback, generates
demo CSVs under ``bench/.data/`` (deleted afterwards unless ``--keep``), measures, and writes
``bench/RESULTS.md`` (``--out`` elsewhere). Sections written by other benchmarks
(``## Server scoring (P5)``, ``## Object storage (issue 4)``) are kept; the full run refreshes the
first with ``bench/bench_scoring.py`` and the second with ``bench/bench_object_store.py`` when that
script exists.

Task-side processes (operator, official client, triggers, sensors, pollers) run as children
(``bench/_child.py``) and are sampled from outside with psutil every 20 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path[:0] = [str(ROOT / "tests"), str(BENCH)]

import bench_scoring  # noqa: E402

from airflow_batchpred.server.models import (  # noqa: E402
    DEMO_BINARY_ID,
    DEMO_REGRESSION_ID,
    ModelRegistry,
    write_demo_csv,
)

from support import LocalServer  # noqa: E402

MB = 1 << 20
CHILD = [sys.executable, str(BENCH / "_child.py")]
RESULTS_TITLE = "# Benchmark results"
SECTION = "## Performance campaign (issue 7)"
KEPT_SECTIONS = ("## Server scoring (P5)", "## Object storage (issue 4)")
FIGURES = ("P1", "P2", "P3", "P4", "P5", "P6")


@dataclass(frozen=True)
class Sizes:
    p1_bytes: tuple[int, ...]
    p2_bytes: tuple[int, ...]
    p3_bytes: int
    p4_jobs: int
    p4_sensors: int
    p4_poll: float
    p4_window: float
    p5_rows: int
    p5_deployments: tuple[str, ...]
    p5_repeat: int
    p6_pollers: int
    p6_duration: float


FULL = Sizes(
    p1_bytes=(10 * MB, 1024 * MB),
    p2_bytes=(100 * MB, 2048 * MB),
    p3_bytes=512 * MB,
    p4_jobs=1000,
    p4_sensors=50,
    p4_poll=5.0,
    p4_window=30.0,
    p5_rows=1_000_000,
    p5_deployments=("binary", "regression"),
    p5_repeat=2,
    p6_pollers=200,
    p6_duration=20.0,
)
QUICK = Sizes(
    # One P1 size, shared with P2: each dag.test() costs ~20 s of Airflow start-up.
    p1_bytes=(4 * MB,),
    p2_bytes=(4 * MB, 8 * MB),
    p3_bytes=16 * MB,
    p4_jobs=40,
    p4_sensors=2,
    p4_poll=1.0,
    p4_window=3.0,
    p5_rows=20_000,
    p5_deployments=("regression",),
    p5_repeat=1,
    p6_pollers=20,
    p6_duration=3.0,
)


@dataclass
class Row:
    """One line of the results table."""

    id: str
    figure: str
    reference: str
    goal: str
    measured: str
    verdict: str
    value: float | None = None
    notes: list[str] = field(default_factory=list)


def log(message: str, *args: object) -> None:
    print(time.strftime("%H:%M:%S ") + (message % args if args else message), flush=True)


# --------------------------------------------------------------------------------- measuring
class Sampler:
    """Peak RSS (a process plus its children) and CPU seconds, sampled from outside."""

    def __init__(self, pids: Sequence[int], interval: float = 0.02) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self.interval = interval
        self.peak = 0
        self.cpu_start = self._cpu()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _family(self) -> list[psutil.Process]:
        family: list[psutil.Process] = []
        for process in self.processes:
            try:
                family += [process, *process.children(recursive=True)]
            except psutil.Error:
                continue
        return family

    def rss(self) -> int:
        total = 0
        for process in self._family():
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _cpu(self) -> float:
        total = 0.0
        for process in self.processes:
            try:
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except psutil.Error:
                continue
        return total

    def cpu_seconds(self) -> float:
        return self._cpu() - self.cpu_start

    def reset(self) -> None:
        self.peak = 0
        self.cpu_start = self._cpu()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class ChildResult:
    result: dict[str, Any]
    peak_rss: int
    wall: float
    server_peak_rss: int = 0


class Bench:
    def __init__(self, args: argparse.Namespace, sizes: Sizes, workdir: Path) -> None:
        self.args = args
        self.sizes = sizes
        self.workdir = workdir
        self.data = workdir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        # The upload PUT answers as soon as the bytes are in (no wait for the job's verdict on
        # the data), so P3 times the transfer; end-to-end figures wait for the job either way.
        self.server = LocalServer(
            data_dir=workdir / "server",
            token=secrets.token_hex(16),
            env={"BATCHPRED_UPLOAD_VERDICT_SECONDS": "0"},
        )
        self.airflow_home = workdir / "airflow"
        self.dags = workdir / "dags"
        self.rows: list[Row] = []
        self.extra: list[str] = []
        self.operator_runs: dict[Path, ChildResult] = {}
        self.spawned = 0

    # ------------------------------------------------------------------------------ set-up
    @property
    def env(self) -> dict[str, str]:
        connection = {
            "conn_type": "datarobot",
            "password": self.server.token,
            "extra": {"endpoint": self.server.endpoint},
        }
        return {
            **os.environ,
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.airflow_home / 'airflow.db'}",
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_DATAROBOT_DEFAULT": json.dumps(connection),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        }

    def start(self) -> None:
        log("starting the local server")
        self.server.start()
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("AIRFLOW")})
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        self.dags.mkdir(parents=True, exist_ok=True)
        link = self.dags / "bench_dags.py"
        if not link.exists():
            link.symlink_to(BENCH / "bench_dags.py")
        log("migrating the bench's Airflow database")
        self.child(["initdb"])

    def stop(self) -> None:
        self.server.stop()

    @property
    def server_pid(self) -> int:
        assert self.server.service is not None
        assert self.server.service.process is not None
        return self.server.service.process.pid

    def spawn(self, argv: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``bench/_child.py argv``; its output goes to the log, its result to a file."""
        self.spawned += 1
        result = self.workdir / f"result-{self.spawned}.json"
        with (self.workdir / "children.log").open("ab") as log_file:
            process = subprocess.Popen(
                [*CHILD, *argv],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**self.env, "BENCH_RESULT_FILE": str(result)},
                cwd=ROOT,
            )
        return process, result

    def wait_ready(self, process: subprocess.Popen[bytes], result: Path, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        ready = Path(str(result) + ".ready")
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"child {process.args} did not get ready:\n{self.log_tail()}")
            time.sleep(0.05)

    def result_of(
        self, process: subprocess.Popen[bytes], result: Path, timeout: float = 3600
    ) -> dict[str, Any]:
        process.wait(timeout=timeout)
        if process.returncode != 0 or not result.exists():
            raise RuntimeError(f"{process.args} failed (exit {process.returncode}):\n{self.log_tail()}")
        return dict(json.loads(result.read_text()))

    def log_tail(self) -> str:
        return (self.workdir / "children.log").read_text(errors="replace")[-3000:]

    def child(self, argv: list[str], *, watch_server: bool = False, timeout: float = 3600) -> ChildResult:
        """Run ``bench/_child.py argv``, sampling its RSS (and the server's) until it exits."""
        started = time.perf_counter()
        process, result = self.spawn(argv)
        server = Sampler([self.server_pid]) if watch_server else None
        with Sampler([process.pid]) as sampler:
            if server:
                server.__enter__()
            try:
                outcome = self.result_of(process, result, timeout)
            finally:
                if server:
                    server.__exit__()
        wall = time.perf_counter() - started
        return ChildResult(outcome, sampler.peak, wall, server.peak if server else 0)

    def csv(self, deployment_id: str, size: int) -> Path:
        """A demo CSV of about ``size`` bytes: a generated block, its data rows repeated."""
        path = self.data / f"{deployment_id}-{size}.csv"
        if path.exists():
            return path
        block = self.data / f"{deployment_id}-block.csv"
        if not block.exists():
            rows = 200_000 if deployment_id == DEMO_BINARY_ID else 400_000
            write_demo_csv(deployment_id, block, rows, seed=0)
        with block.open("rb") as source:
            header = source.readline()
            body = source.read()
        temporary = path.with_suffix(".tmp")
        with temporary.open("wb") as sink:
            sink.write(header)
            written = len(header)
            while written < size:
                room = size - written
                piece = body if room >= len(body) else body[: body.rfind(b"\n", 0, room) + 1]
                sink.write(piece or body[: body.index(b"\n") + 1])
                written += len(piece) or body.index(b"\n") + 1
        temporary.rename(path)
        return path

    def remove(self, *paths: Path) -> None:
        for path in paths:
            path.unlink(missing_ok=True)

    def add(self, row: Row) -> None:
        log("%s %s: %s (%s)", row.id, row.figure, row.measured, row.verdict)
        self.rows.append(row)

    # ---------------------------------------------------------------------------------- P1/P2
    def operator_run(self, source: Path, deployment_id: str) -> ChildResult:
        if source in self.operator_runs:
            return self.operator_runs[source]
        target = self.data / "operator-out.csv"
        try:
            self.operator_runs[source] = self.child(
                ["operator", "--deployment", deployment_id, "--input", str(source), "--output", str(target)],
                watch_server=True,
            )
            return self.operator_runs[source]
        finally:
            self.remove(target)

    def official_run(self, source: Path, deployment_id: str) -> ChildResult:
        target = self.data / "official-out.csv"
        try:
            return self.child(
                ["official", "--deployment", deployment_id, "--input", str(source), "--output", str(target)]
            )
        finally:
            self.remove(target)

    def p1(self) -> None:
        deployment = DEMO_BINARY_ID
        for size in self.sizes.p1_bytes:
            source = self.csv(deployment, size)
            ours = self.operator_run(source, deployment)
            theirs = self.official_run(source, deployment)
            ratio = ours.result["seconds"] / theirs.result["seconds"]
            label = _size(size)
            self.add(
                Row(
                    "P1",
                    f"local CSV end to end, {label} (operator execute() in dag.test())",
                    f"official client score_to_file: {theirs.result['seconds']:.2f} s, "
                    f"peak RSS {_mb(theirs.peak_rss)}",
                    "<= 0.7x its wall time",
                    f"{ours.result['seconds']:.2f} s = {ratio:.2f}x; task process peak RSS "
                    f"{_mb(ours.peak_rss)}",
                    _verdict(ratio <= 0.7),
                    ratio,
                )
            )
            self.extra.append(
                f"P1 {label}: whole `dag.test()` {ours.result['dag_test_seconds']:.1f} s of which the task's "
                f"execute() {ours.result['seconds']:.2f} s; child process wall {ours.wall:.1f} s "
                f"(official client process wall {theirs.wall:.1f} s)."
            )
            if size not in self.sizes.p2_bytes:
                self.remove(source)

    def p2(self) -> None:
        deployment = DEMO_BINARY_ID
        empty = self.child(["empty"])
        peaks: list[tuple[int, ChildResult]] = []
        idle_server = Sampler([self.server_pid]).rss()
        for size in self.sizes.p2_bytes:
            source = self.csv(deployment, size)
            peaks.append((size, self.operator_run(source, deployment)))
            self.remove(source)
        (small, small_run), (large, large_run) = peaks[0], peaks[-1]
        growth = large_run.peak_rss - small_run.peak_rss
        provider = large_run.peak_rss - empty.peak_rss
        self.add(
            Row(
                "P2",
                f"peak RSS of the task process, {_size(small)} vs {_size(large)} input",
                f"itself; empty task in the same harness (dag.test()): {_mb(empty.peak_rss)}",
                "<= 150 MB, growth <= 20 MB",
                f"{_mb(small_run.peak_rss)} -> {_mb(large_run.peak_rss)} (growth {_mb(growth)}); "
                f"provider on top of the empty task {_mb(provider)}",
                _verdict(large_run.peak_rss <= 150 * MB and growth <= 20 * MB)
                if empty.peak_rss <= 150 * MB
                else f"growth {_verdict(growth <= 20 * MB)}; 150 MB not met by the harness alone "
                f"({_mb(empty.peak_rss)}), provider {_verdict(provider <= 150 * MB)} on top of it",
                growth / MB,
            )
        )
        self.add(
            Row(
                "I2",
                f"peak server RSS while a {_size(large)} upload is scored (issue 2)",
                f"idle server {_mb(idle_server)}; {_size(small)} upload {_mb(small_run.server_peak_rss)}",
                "flat memory",
                f"{_mb(large_run.server_peak_rss)}",
                _verdict(large_run.server_peak_rss - small_run.server_peak_rss <= 64 * MB),
                large_run.server_peak_rss / MB,
            )
        )

    # -------------------------------------------------------------------------------------- P3
    def p3(self) -> None:
        from airflow_batchpred.hooks.datarobot import DataRobotHook

        source = self.csv(DEMO_REGRESSION_ID, self.sizes.p3_bytes)
        size = source.stat().st_size
        hook = DataRobotHook()
        spec = {"deployment_id": DEMO_REGRESSION_ID, "passthrough_columns_set": "all"}
        headers = {**self.server.headers}

        def curl_upload(job: dict[str, Any]) -> None:
            # Without the trailing slash: curl -T appends the file name to a URL ending in "/".
            url = job["links"]["csvUpload"].rstrip("/")
            _curl(["-T", str(source), "-H", "Content-Type: text/csv", url], headers)

        def hook_upload(job: dict[str, Any]) -> None:
            hook.upload_csv(job, source)

        uploads: dict[str, float] = {}
        jobs: dict[str, dict[str, Any]] = {}
        sides = (("curl", curl_upload), ("hook", hook_upload), ("curl2", curl_upload), ("hook2", hook_upload))
        for name, action in sides:
            job = hook.submit_job(spec)
            started = time.perf_counter()
            action(job)
            uploads[name] = time.perf_counter() - started
            hook.wait_for_job(job["id"], poll_interval=0.2)
            jobs[name] = hook.get_job(job["id"])
        # Download the same completed result both ways (the job is COMPLETED: pure transfer).
        done = jobs["hook"]
        target = self.data / "p3-download.csv"
        downloads: dict[str, float] = {}
        for name in ("curl", "hook", "curl2", "hook2"):
            started = time.perf_counter()
            if name.startswith("curl"):
                _curl(["-o", str(target), done["links"]["download"]], headers)
            else:
                hook.download_results(done, target)
            downloads[name] = time.perf_counter() - started
        out_size = target.stat().st_size
        hook.close()
        self.remove(target, source)
        curl_up = min(uploads["curl"], uploads["curl2"])
        curl_down = min(downloads["curl"], downloads["curl2"])
        hook_up = min(uploads["hook"], uploads["hook2"])
        hook_down = min(downloads["hook"], downloads["hook2"])
        for direction, ours, theirs, nbytes in (
            ("upload", hook_up, curl_up, size),
            ("download", hook_down, curl_down, out_size),
        ):
            ratio = theirs / ours
            self.add(
                Row(
                    "P3",
                    f"hook {direction} throughput, {_size(nbytes)}",
                    f"curl {'PUT' if direction == 'upload' else 'GET'}: {nbytes / MB / theirs:,.0f} MB/s",
                    ">= 0.8x",
                    f"{nbytes / MB / ours:,.0f} MB/s = {ratio:.2f}x",
                    _verdict(ratio >= 0.8),
                    ratio,
                )
            )
        self.extra.append(
            "P3: the bench server runs with `BATCHPRED_UPLOAD_VERDICT_SECONDS=0`, so an upload PUT "
            "answers once the bytes are spooled (by default it waits up to 10 s for the job to read "
            "them, which timed the server's scoring, not the transfer); the download is of a "
            "COMPLETED job's result (all columns passed through), so it is the transfer alone. "
            "Each side runs twice per direction, alternating, and keeps its better run."
        )

    # -------------------------------------------------------------------------------------- P4
    def create_waiting_jobs(self, count: int) -> list[str]:
        """Local-file jobs that wait INITIALIZING for an upload that never comes: no data needed."""
        session = requests.Session()
        session.headers.update(self.server.headers)
        ids = []
        for _ in range(count):
            response = session.post(
                f"{self.server.endpoint}/batchPredictions/",
                json={"deploymentId": DEMO_REGRESSION_ID, "intakeSettings": {"type": "localFile"}},
                timeout=30,
            )
            response.raise_for_status()
            ids.append(response.json()["id"])
        session.close()
        return ids

    def release(self, job_ids: Sequence[str]) -> dict[str, float]:
        """End the jobs (DELETE aborts them: a terminal status) and note when each ended."""
        session = requests.Session()
        session.headers.update(self.server.headers)
        ended = {}
        for job_id in job_ids:
            session.delete(f"{self.server.endpoint}/batchPredictions/{job_id}/", timeout=30)
            ended[job_id] = time.time()
        session.close()
        return ended

    def p4_p6(self) -> None:
        sizes = self.sizes
        job_ids = self.create_waiting_jobs(sizes.p4_jobs)
        jobs_file = self.data / "jobs.txt"
        jobs_file.write_text("\n".join(job_ids) + "\n")
        self.p6(jobs_file)

        # One triggerer-like process watching every job.
        log("P4: %d triggers in one loop, poll interval %.0f s", len(job_ids), sizes.p4_poll)
        process, result = self.spawn(
            ["triggers", "--jobs", str(jobs_file), "--poll-interval", str(sizes.p4_poll)]
        )
        self.wait_ready(process, result)
        time.sleep(sizes.p4_poll)  # every trigger has polled at least once
        with Sampler([process.pid]) as sampler:
            sampler.reset()
            window_start = time.perf_counter()
            time.sleep(sizes.p4_window)
            cpu = sampler.cpu_seconds() / (time.perf_counter() - window_start)
            rss = sampler.peak
            ended = self.release(job_ids)
            outcome = self.result_of(process, result, timeout=sizes.p4_poll * 10 + 120)
        events = outcome["events"]
        latencies = [events[job_id]["at"] - ended[job_id] for job_id in job_ids if job_id in events]
        missing = len(job_ids) - len(latencies)

        # Poke sensors, one process (a worker slot) per job, measured on a sample and scaled.
        count = sizes.p4_sensors
        sensor_jobs = self.create_waiting_jobs(count)
        log("P4: %d poke sensors (one process each)", count)
        sensors = [
            self.spawn(["sensor", "--job-id", job_id, "--poll-interval", str(sizes.p4_poll)])
            for job_id in sensor_jobs
        ]
        for sensor, result in sensors:
            self.wait_ready(sensor, result)
        time.sleep(sizes.p4_poll)
        with Sampler([sensor.pid for sensor, _ in sensors]) as sampler:
            sampler.reset()
            window_start = time.perf_counter()
            time.sleep(sizes.p4_window)
            sensor_cpu = sampler.cpu_seconds() / (time.perf_counter() - window_start)
            sensor_rss = sampler.peak
        sensor_ended = self.release(sensor_jobs)
        sensor_latencies = []
        for job_id, (sensor, result) in zip(sensor_jobs, sensors, strict=True):
            at = self.result_of(sensor, result, timeout=sizes.p4_poll * 5 + 60)["at"]
            sensor_latencies.append(at - sensor_ended[job_id])
        scale = len(job_ids) / count
        worst = max(latencies) if latencies else float("inf")
        met = rss <= 200 * MB and cpu <= 0.10 and worst <= sizes.p4_poll + 1 and not missing
        self.add(
            Row(
                "P4",
                f"one triggerer process watching {len(job_ids):,} deferred jobs "
                f"(poll every {sizes.p4_poll:g} s)",
                f"{len(job_ids):,} poke sensors (estimated from {count}): {_mb(sensor_rss * scale)} RSS, "
                f"{sensor_cpu * scale:.0%} of a core; completion seen after at most "
                f"{max(sensor_latencies):.1f} s",
                f"<= 200 MB RSS, <= 10 % of a core, completion seen <= {sizes.p4_poll + 1:g} s",
                f"{_mb(rss)} RSS, {cpu:.1%} of a core, completion seen after p50 "
                f"{statistics.median(latencies):.1f} s / max {worst:.1f} s"
                + (f"; {missing} events missing" if missing else ""),
                _verdict(met),
                rss / MB,
            )
        )
        self.extra.append(
            "P4 jobs: local-file jobs created without an upload wait INITIALIZING (no data, no scoring "
            "worker); they are released with DELETE (ABORTED is terminal), and the latency is from the "
            "DELETE's answer to the trigger's event. Sensors: one process per job running "
            "`DataRobotBatchPredictionJobSensor.poke()` every poll interval (what a worker slot costs "
            "without Airflow's supervisor); RSS and CPU scaled linearly from the sample."
        )
        self.remove(jobs_file)

    # -------------------------------------------------------------------------------------- P6
    def p6(self, jobs_file: Path) -> None:
        sizes = self.sizes
        log("P6: %d pollers for %.0f s", sizes.p6_pollers, sizes.p6_duration)
        with Sampler([self.server_pid]) as server:
            run = self.child(
                [
                    "pollers",
                    "--jobs",
                    str(jobs_file),
                    "--count",
                    str(sizes.p6_pollers),
                    "--interval",
                    "1.0",
                    "--duration",
                    str(sizes.p6_duration),
                ]
            )
            server_cpu = server.cpu_seconds() / run.wall
        latencies = sorted(run.result["latencies"])
        errors = run.result["errors"]
        p50, p99 = _percentile(latencies, 50) * 1000, _percentile(latencies, 99) * 1000
        self.add(
            Row(
                "P6",
                f"server API under {sizes.p6_pollers} concurrent pollers (GET job every 1 s each, "
                f"{sizes.p6_duration:g} s)",
                "-",
                "p99 GET job < 25 ms, no errors",
                f"p99 {p99:.1f} ms (p50 {p50:.1f} ms, max {latencies[-1] * 1000:.1f} ms) over "
                f"{len(latencies):,} requests, {len(errors)} errors; server {server_cpu:.0%} of a core",
                _verdict(p99 < 25 and not errors),
                p99,
            )
        )

    # -------------------------------------------------------------------------------------- P5
    def p5(self) -> None:
        from airflow_batchpred.hooks.datarobot import DataRobotHook

        registry = ModelRegistry(self.workdir / "models")
        registry.ensure_demo_models()
        hook = DataRobotHook()
        for label in self.sizes.p5_deployments:
            deployment_id = bench_scoring.DEPLOYMENTS[label]
            info = registry.get(deployment_id)
            assert info is not None
            model = registry.load_model(deployment_id)
            source = self.data / f"p5-{label}.csv"
            write_demo_csv(deployment_id, source, self.sizes.p5_rows, seed=0)
            target = self.data / "p5-out.csv"
            for explanations in (0, 10):
                http_seconds = _best(
                    self.sizes.p5_repeat,
                    functools.partial(_score_over_http, hook, deployment_id, source, target, explanations),
                )
                base_seconds = _best(
                    self.sizes.p5_repeat,
                    functools.partial(
                        bench_scoring.score_with_baseline, source, target, model, info, explanations
                    ),
                )
                rows = self.sizes.p5_rows
                ratio = base_seconds / http_seconds
                self.add(
                    Row(
                        "P5",
                        f"server scoring over HTTP, {rows:,} rows, {label} ({info.model_type}), "
                        f"{explanations} explanations",
                        f"in-process pyarrow read -> predict -> write: {rows / base_seconds:,.0f} rows/s",
                        ">= 0.8x",
                        f"{rows / http_seconds:,.0f} rows/s = {ratio:.2f}x",
                        _verdict(ratio >= 0.8),
                        ratio,
                    )
                )
            self.remove(source, target)
        hook.close()
        self.extra.append(
            "P5 over HTTP: the hook submits, streams the upload in a thread and streams the result down "
            "while the job scores (what the local-file operator does), timed from submit to the last "
            "byte; the baseline is `bench_scoring.score_with_baseline` on the same file; best of "
            "2 runs each in a full run, 1 in a quick one."
        )


def _score_over_http(hook: Any, deployment_id: str, source: Path, target: Path, explanations: int) -> None:
    spec: dict[str, Any] = {"deployment_id": deployment_id}
    if explanations:
        spec["max_explanations"] = explanations
    job = hook.submit_job(spec)
    failure: list[BaseException] = []

    def upload() -> None:
        try:
            hook.copy().upload_csv(job, source)
        except BaseException as exc:  # reported below
            failure.append(exc)

    uploader = threading.Thread(target=upload)
    uploader.start()
    final = hook.download_results(job, target, poll_interval=0.2)
    uploader.join()
    if failure:
        raise failure[0]
    if final.get("status") != "COMPLETED":
        raise RuntimeError(f"job {job['id']} ended {final.get('status')}: {final.get('statusDetails')}")


def _best(times: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def _curl(args: list[str], headers: dict[str, str]) -> None:
    header_args = [part for name, value in headers.items() for part in ("-H", f"{name}: {value}")]
    subprocess.run(["curl", "-sS", "--fail", *header_args, *args], check=True, stdout=subprocess.DEVNULL)


def _percentile(values: Sequence[float], percent: float) -> float:
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(percent / 100 * len(values)) - 1))
    return sorted(values)[index]


def _mb(value: float) -> str:
    return f"{value / MB:,.0f} MB"


def _size(value: int) -> str:
    return f"{value / 1024 / MB:g} GB" if value >= 1024 * MB else f"{value / MB:.0f} MB"


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


# ----------------------------------------------------------------------------------- results
def machine() -> str:
    import airflow

    memory = psutil.virtual_memory().total / (1 << 30)
    return (
        f"nproc {os.cpu_count()}, {bench_scoring.cpu_model()}, {memory:.0f} GiB RAM; "
        f"Python {platform.python_version()}, Airflow {airflow.__version__}, {platform.platform()}"
    )


def previous_run(path: Path, rerun: set[str]) -> tuple[list[Row], list[str], list[str]]:
    """Rows, notes and run lines of the existing section that this (partial) run does not redo."""
    if not path.exists():
        return [], [], []
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(SECTION)}\n(.*?)(?=^## (?!#)|\Z)", text, re.DOTALL | re.MULTILINE)
    if not match:
        return [], [], []
    rows, notes, runs = [], [], []
    in_notes = False
    for line in match.group(1).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 6 and cells[0] not in ("id", "---"):
            if cells[0] not in rerun:
                rows.append(Row(*cells))
        elif line.startswith("Notes on method"):
            in_notes = True
        elif in_notes and line.startswith("- ") and line[2:4] not in rerun:
            notes.append(line[2:])
        elif not in_notes and line.startswith(("- Command:", "- Date:", "- Earlier run:")):
            runs.append(line[2:].removeprefix("Earlier run: "))
    return rows, notes, runs


def render(
    rows: list[Row],
    extra: list[str],
    command: str,
    seconds: float,
    quick: bool,
    earlier: Sequence[str] = (),
) -> str:
    lines = [
        SECTION,
        "",
        f"- Command: `{command}`" + (" (smoke run: small sizes, figures not comparable)" if quick else ""),
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; the run took {seconds / 60:.1f} min",
        *(f"- Earlier run: {line}" for line in earlier),
        f"- Machine: {machine()}",
        "- Everything runs on this machine over loopback: the server, the task-side process and the "
        "reference share 2 cores.",
        "",
        "| id | figure | reference (same run) | goal | measured | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.id} | {row.figure} | {row.reference} | {row.goal} | {row.measured} | {row.verdict} |"
        )
    lines += ["", "Notes on method:", ""]
    lines += [f"- {note}" for note in extra]
    return "\n".join(lines) + "\n"


def write_results(path: Path, section: str) -> None:
    """Replace this section, keep the other benchmarks' sections and any hand-written ones."""
    text = path.read_text(encoding="utf-8") if path.exists() else RESULTS_TITLE + "\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## (?!#)|\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        head, _, rest = text.partition("\n")
        text = head + "\n\n" + section + "\n" + rest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n", encoding="utf-8")


def run_side_benchmarks(args: argparse.Namespace, out: Path) -> list[str]:
    """Refresh the sections of ``bench_scoring.py`` and ``bench_object_store.py`` (full runs only)."""
    notes = []
    scoring = [sys.executable, str(BENCH / "bench_scoring.py"), "--rows", "1000000", "--out", str(out)]
    log("running %s", " ".join(scoring[1:]))
    if subprocess.run(scoring, cwd=ROOT).returncode != 0:
        notes.append("`bench/bench_scoring.py` failed in this run; its section is from an earlier run.")
    object_store = BENCH / "bench_object_store.py"
    if object_store.exists():
        # It writes its section of bench/RESULTS.md itself (no --out): elsewhere, print only.
        record = out.resolve() == (BENCH / "RESULTS.md").resolve()
        command = [sys.executable, str(object_store), *([] if record else ["--no-record"])]
        log("running %s", " ".join(command[1:]))
        if subprocess.run(command, cwd=ROOT).returncode != 0:
            notes.append("`bench/bench_object_store.py` failed in this run; see its output.")
    else:
        notes.append(
            "Issue 4's `bench/bench_object_store.py` is not in the repository yet: no 1 GB S3 figure."
        )
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small smoke run (about 2 minutes)")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep bench/.data/ (data, server, logs)")
    parser.add_argument("--only", default=",".join(FIGURES), help="comma-separated figures, e.g. P1,P3")
    parser.add_argument("--workdir", type=Path, default=BENCH / ".data")
    parser.add_argument("--no-side", action="store_true", help="full run without bench_scoring/object store")
    args = parser.parse_args(argv)
    only = {part.strip().upper() for part in args.only.split(",") if part.strip()}
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    workdir = args.workdir / f"run-{os.getpid()}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    bench = Bench(args, sizes, workdir)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("P5", bench.p5),
        ("P3", bench.p3),
        ("P1", bench.p1),
        ("P2", bench.p2),
        ("P4", bench.p4_p6),
    ]
    failures = 0
    try:
        bench.start()
        for name, step in steps:
            if name not in only and not (name == "P4" and "P6" in only):
                continue
            log("---- %s", name)
            try:
                step()
            except Exception as exc:  # keep the other figures; the row says what broke
                failures += 1
                log("%s failed: %s", name, exc)
                bench.add(Row(name, "(failed in this run)", "-", "-", f"error: {str(exc)[:200]}", "ERROR"))
    finally:
        bench.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    notes = bench.extra
    if not args.quick and not args.no_side:
        notes += run_side_benchmarks(args, args.out)
    command = ".venv/bin/python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    earlier: list[str] = []
    if only != set(FIGURES):
        # A partial run keeps the rows of the figures it did not measure (marked by their run).
        rerun = only | ({"I2"} if "P2" in only else set()) | ({"P4", "P6"} if only & {"P4", "P6"} else set())
        kept_rows, kept_notes, earlier = previous_run(args.out, rerun)
        bench.rows = kept_rows + bench.rows
        notes = kept_notes + notes
    order = {name: index for index, name in enumerate(("P1", "P2", "I2", "P3", "P4", "P5", "P6"))}
    bench.rows.sort(key=lambda row: order.get(row.id, 99))
    seconds = time.perf_counter() - started
    section = render(bench.rows, notes, command.strip(), seconds, args.quick, earlier)
    write_results(args.out, section)
    log("wrote %s", args.out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
