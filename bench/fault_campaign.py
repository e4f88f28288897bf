"""Fault campaign: run batch prediction jobs through the operators while the server misbehaves.

    .venv/bin/python bench/fault_campaign.py [--jobs N] [--rate 0.3] [--seed S] [--out PATH]

Starts a local batch-prediction server and an S3 stand-in (moto) on 127.0.0.1, then runs ``N``
jobs through the operators in four variants (local file sync and deferrable, S3 sync and
deferrable): first once each without faults (the reference), then again with ``rate`` of the
responses on every API route turned into 429 (``Retry-After``), 502, 503, 504, slow answers or
dropped connections, half of the jobs with the fault answered *before* the handler runs and half
*after* it (the server did the work, the client never heard: 502, 504, slow or dropped; see
``AFTER_KINDS``). It prints and writes (JSON):

* jobs run, faults injected (the server's own counters), jobs completed;
* duplicates: jobs the server created beyond one per task (a blind POST retry or a re-upload);
* byte mismatches: outputs that differ from the fault-free run of the same input.

The goal is 100 % completed, 0 duplicates, 0 mismatches; the exit status is 1 otherwise.
``tests/reliability/test_fault_campaign.py`` runs a smaller campaign inside the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("local-sync", "local-deferrable", "s3-sync", "s3-deferrable")
FAULT_KINDS = ["429", "502", "503", "504", "slow", "drop"]
#: Faults answered after the handler did the work. 429 and 503 are left out on purpose: they
#: promise the request was not processed (retry after ``Retry-After``), which is what makes
#: re-sending a POST safe; a server that did the work and then answered 429/503 would break that
#: contract (DataRobot's rate limiter and maintenance mode answer before doing anything).
AFTER_KINDS = ["502", "504", "slow", "drop"]
BUCKET = "fault-campaign"
DATAROBOT_CONN_ID = "datarobot_campaign"
AWS_CONN_ID = "aws_campaign"
#: Retries generous enough for 30 % faults (each attempt fails with p = 0.3): 12 attempts fail
#: together with p = 0.3**12, about 5e-7.
HOOK_PARAMS = {"retry_limit": 12, "retry_delay": 0.05, "max_retry_delay": 1.0}


@dataclass
class CampaignResult:
    jobs_run: int = 0
    jobs_completed: int = 0
    faults_injected: int = 0
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    requests_seen: int = 0
    duplicates: int = 0
    byte_mismatches: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def goal_met(self) -> bool:
        return self.jobs_completed == self.jobs_run and self.duplicates == 0 and self.byte_mismatches == 0

    def summary(self) -> str:
        share = 100.0 * self.jobs_completed / self.jobs_run if self.jobs_run else 0.0
        kinds = ", ".join(f"{kind}: {count}" for kind, count in sorted(self.faults_by_kind.items()))
        return "\n".join(
            [
                f"jobs run:         {self.jobs_run}",
                f"faults injected:  {self.faults_injected} of {self.requests_seen} API requests ({kinds})",
                f"jobs completed:   {self.jobs_completed} ({share:.1f} %)",
                f"duplicates:       {self.duplicates}",
                f"byte mismatches:  {self.byte_mismatches}",
                f"seconds:          {self.seconds:.1f}",
                f"goal (100 % / 0 / 0): {'met' if self.goal_met else 'NOT met'}",
                *(f"  failure: {failure}" for failure in self.failures),
            ]
        )


class _Ti:
    def xcom_push(self, key: str, value: Any) -> None:
        pass


class _Store:
    """A task state store for one task (``context["task_state_store"]``)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


@dataclass
class Campaign:
    """Everything a campaign needs: the server, the S3 stand-in and a work directory."""

    endpoint: str
    token: str
    s3_client: Any
    s3_connection: dict[str, Any]
    work_dir: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def set_faults(self, plan: dict[str, Any] | None) -> None:
        url = f"{self.endpoint}/admin/faults/"
        response = (
            requests.delete(url, headers=self.headers, timeout=30)
            if plan is None
            else requests.put(url, json=plan, headers=self.headers, timeout=30)
        )
        response.raise_for_status()

    def fault_counters(self) -> dict[str, Any]:
        return requests.get(f"{self.endpoint}/admin/faults/", headers=self.headers, timeout=30).json()  # type: ignore[no-any-return]

    def job_ids(self) -> set[str]:
        ids: set[str] = set()
        url: str | None = f"{self.endpoint}/batchPredictions/"
        params: dict[str, Any] | None = {"limit": 1000}
        while url:
            body = self._get_through_faults(url, params)
            ids.update(job["id"] for job in body["data"])
            url, params = body.get("next"), None
        return ids

    def _get_through_faults(self, url: str, params: dict[str, Any] | None) -> dict[str, Any]:
        """GET ``url`` for the campaign's own bookkeeping, retrying the faults injected into it."""
        for _ in range(100):
            try:
                response = requests.get(url, headers=self.headers, params=params, timeout=30)
            except requests.RequestException:
                continue
            if response.status_code == 200:
                return response.json()  # type: ignore[no-any-return]
            time.sleep(0.05)
        raise RuntimeError(f"GET {url} kept failing")

    @contextmanager
    def connections(self) -> Iterator[None]:
        values = {
            f"AIRFLOW_CONN_{DATAROBOT_CONN_ID.upper()}": json.dumps(
                {"conn_type": "datarobot", "password": self.token, "extra": {"endpoint": self.endpoint}}
            ),
            f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}": json.dumps(self.s3_connection),
        }
        previous = {key: os.environ.get(key) for key in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    # -- one job --------------------------------------------------------------------------------
    def run_job(self, variant: str, index: int, source: Path, tag: str) -> bytes:
        """Run one task (sync, or deferred: execute, trigger, execute_complete); return its output."""
        from airflow.sdk.exceptions import TaskDeferred

        from airflow_batchpred.operators.local_file import DataRobotLocalFileBatchPredictionOperator
        from airflow_batchpred.operators.s3 import DataRobotS3BatchPredictionOperator
        from airflow_batchpred.server import models

        deferrable = variant.endswith("deferrable")
        common: dict[str, Any] = {
            "task_id": f"score_{variant}_{index}_{tag}".replace("-", "_"),
            "datarobot_conn_id": DATAROBOT_CONN_ID,
            "deployment_id": models.DEMO_REGRESSION_ID,
            "poll_interval": 0.05,
            "deferrable": deferrable,
            "hook_params": HOOK_PARAMS,
        }
        target = self.work_dir / f"{variant}-{index}-{tag}.csv"
        key = f"{tag}/{variant}-{index}.csv"
        if variant.startswith("local"):
            operator: Any = DataRobotLocalFileBatchPredictionOperator(
                input_file=str(source), output_file=str(target), **common
            )
        else:
            self.s3_client.put_object(
                Bucket=BUCKET, Key=f"in/{variant}-{index}.csv", Body=source.read_bytes()
            )
            operator = DataRobotS3BatchPredictionOperator(
                source_url=f"s3://{BUCKET}/in/{variant}-{index}.csv",
                destination_url=f"s3://{BUCKET}/out/{key}",
                aws_conn_id=AWS_CONN_ID,
                **common,
            )
        context: dict[str, Any] = {"ti": _Ti(), "task_state_store": _Store()}
        try:
            operator.execute(context)
        except TaskDeferred as deferred:
            events = asyncio.run(_events(deferred.trigger))
            if len(events) != 1:
                raise RuntimeError(f"the trigger fired {len(events)} events: {events}") from None
            operator.execute_complete(context, events[0].payload)
        if variant.startswith("local"):
            return target.read_bytes()
        return self.s3_client.get_object(Bucket=BUCKET, Key=f"out/{key}")["Body"].read()  # type: ignore[no-any-return]

    # -- the campaign ---------------------------------------------------------------------------
    def run(self, jobs: int, rate: float, seed: int, rows: int = 300) -> CampaignResult:
        from airflow_batchpred.server import models

        rng = random.Random(seed)
        started = time.monotonic()
        result = CampaignResult()
        self.s3_client.create_bucket(Bucket=BUCKET)
        plan = [(VARIANTS[i % len(VARIANTS)], i) for i in range(jobs)]
        sources = {
            index: models.write_demo_csv(
                models.DEMO_REGRESSION_ID,
                self.work_dir / f"in-{index}.csv",
                rows + rng.randrange(rows),
                seed=index,
            )
            for _, index in plan
        }
        with self.connections():
            self.set_faults(None)
            reference = {
                index: self.run_job(variant, index, sources[index], "reference") for variant, index in plan
            }
            before = self.job_ids()
            injected: dict[str, int] = {}
            for phase in ("before", "after"):
                half = [item for item in plan if (item[1] % 2 == 0) == (phase == "before")]
                self.set_faults(
                    {
                        "rate": rate,
                        "kinds": FAULT_KINDS if phase == "before" else AFTER_KINDS,
                        "routes": ".*",
                        "seed": seed + (phase == "after"),
                        "retryAfter": 1,
                        "phase": phase,
                        "slowSeconds": 0.3,
                    }
                )
                for variant, index in half:
                    result.jobs_run += 1
                    jobs_before = self.job_ids()
                    try:
                        output = self.run_job(variant, index, sources[index], "faulted")
                    except Exception as error:
                        result.failures.append(
                            f"{variant} #{index} (faults {phase}): {type(error).__name__}: {error}"
                        )
                        continue
                    result.jobs_completed += 1
                    extra = len(self.job_ids() - jobs_before) - 1
                    if extra > 0:
                        result.failures.append(
                            f"{variant} #{index} (faults {phase}): {extra} duplicate job(s)"
                        )
                    if output != reference[index]:
                        result.byte_mismatches += 1
                        result.failures.append(
                            f"{variant} #{index} (faults {phase}): output differs from reference"
                        )
                counters = self.fault_counters()
                result.requests_seen += int(counters["matchedRequests"])
                for kind, count in counters["injected"].items():
                    injected[kind] = injected.get(kind, 0) + int(count)
            self.set_faults(None)
            created = self.job_ids() - before
        result.faults_by_kind = injected
        result.faults_injected = sum(injected.values())
        result.duplicates = max(len(created) - result.jobs_run, 0)
        result.seconds = time.monotonic() - started
        return result


async def _events(trigger: Any) -> list[Any]:
    return [event async for event in trigger.run()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40, help="jobs in the faulted run (default 40)")
    parser.add_argument("--rate", type=float, default=0.3, help="share of responses faulted (default 0.3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault and data draws")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "fault_campaign.json", help="JSON results"
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "tests"))
    import tempfile

    from services import MotoS3  # the test stand-ins: real servers on loopback
    from support import LocalServer

    work = Path(tempfile.mkdtemp(prefix="fault-campaign-"))
    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow"))
    with ExitStack() as stack:
        server = LocalServer(data_dir=work / "server" / "data", token=secrets.token_hex(16)).start()
        stack.callback(server.stop)
        s3 = MotoS3()
        s3.start()
        stack.callback(s3.cleanup)
        campaign = Campaign(
            endpoint=server.endpoint,
            token=server.token,
            s3_client=s3.client(),
            s3_connection=s3.airflow_connection(),
            work_dir=work,
        )
        result = campaign.run(args.jobs, args.rate, args.seed)
    print(result.summary())
    args.out.write_text(
        json.dumps({**asdict(result), "goal_met": result.goal_met, "rate": args.rate}, indent=1)
    )
    print(f"written to {args.out}")
    return 0 if result.goal_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
