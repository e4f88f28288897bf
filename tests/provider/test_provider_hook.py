"""DataRobotHook against the local server: connection, jobs, local files, retries and faults."""

from __future__ import annotations

import contextlib
import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from batchpred_helpers import assert_scores_match

from airflow_batchpred.contract import CsvSettings
from airflow_batchpred.exceptions import (
    DataRobotAmbiguousSubmitError,
    DataRobotApiError,
    DataRobotConnectionError,
    DataRobotJobFailedError,
    DataRobotRequestError,
)
from airflow_batchpred.hooks.datarobot import DataRobotHook, iter_csv_parts
from airflow_batchpred.server import models

pytestmark = pytest.mark.usefixtures("local_server")


def seed_faulting_first_request_only(rate: float) -> int:
    """A seed for which the server's injector faults the first matching request and not the second.

    The injector draws ``random() < rate`` per matching request, then ``choice(kinds)`` if it faults.
    """
    for seed in range(1000):
        draws = random.Random(seed)
        if draws.random() < rate:
            draws.choice(["x"])
            if draws.random() >= rate:
                return seed
    raise AssertionError("no seed found")


# ---------------------------------------------------------------------------------------------
# Connection
# ---------------------------------------------------------------------------------------------


def test_connection_test_reports_the_server_version(hook: DataRobotHook, local_server: Any) -> None:
    ok, message = hook.test_connection()
    assert ok
    assert "2.49.0" in message
    assert local_server.endpoint in message


def test_connection_test_with_a_wrong_token_fails_without_leaking_it(
    monkeypatch: pytest.MonkeyPatch, local_server: Any
) -> None:
    wrong = "wrong-token-0123456789abcdef"
    monkeypatch.setenv(
        "AIRFLOW_CONN_DR_WRONG",
        json.dumps(
            {"conn_type": "datarobot", "password": wrong, "extra": {"endpoint": local_server.endpoint}}
        ),
    )
    ok, message = DataRobotHook("dr_wrong", retry_limit=1).test_connection()
    assert not ok
    assert "401" in message
    assert wrong not in message


@pytest.mark.parametrize(
    ("connection", "expected_endpoint"),
    [
        ({"password": "t", "extra": {"endpoint": "http://h:1/api/v2/"}}, "http://h:1/api/v2"),
        ({"password": "t", "host": "https://app.example.com"}, "https://app.example.com/api/v2"),
        ({"password": "t", "extra": {"extra__http__endpoint": "http://old/api/v2"}}, "http://old/api/v2"),
        ({"extra": {"endpoint": "http://h/api/v2", "api_key": "legacy"}}, "http://h/api/v2"),
    ],
    ids=["extra-endpoint", "url-in-host", "legacy-http-extra", "legacy-api-key"],
)
def test_endpoint_and_token_fallbacks(
    monkeypatch: pytest.MonkeyPatch, connection: dict[str, Any], expected_endpoint: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DR_FALLBACK", json.dumps({"conn_type": "datarobot", **connection}))
    details = DataRobotHook("dr_fallback").details
    assert details.endpoint == expected_endpoint
    assert details.token in ("t", "legacy")


@pytest.mark.parametrize(
    ("connection", "missing"),
    [
        ({"password": "t"}, "endpoint"),
        ({"extra": {"endpoint": "http://h/api/v2"}}, "API token"),
        ({"password": "t", "extra": {"endpoint": "ftp://h"}}, "endpoint must start with http"),
    ],
)
def test_incomplete_connection_names_the_connection_and_field(
    monkeypatch: pytest.MonkeyPatch, connection: dict[str, Any], missing: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DR_BROKEN", json.dumps({"conn_type": "datarobot", **connection}))
    with pytest.raises(DataRobotConnectionError, match="dr_broken") as error:
        DataRobotHook("dr_broken").get_version()
    assert missing in str(error.value)


# ---------------------------------------------------------------------------------------------
# Jobs and local files
# ---------------------------------------------------------------------------------------------


def test_submit_upload_download_scores_every_row(
    hook: DataRobotHook, local_server: Any, tmp_path: Path
) -> None:
    source = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "in.csv", 250, seed=11)
    target = tmp_path / "out.csv"
    job = hook.submit_job({"deployment_id": models.DEMO_REGRESSION_ID, "max_explanations": 2})
    assert job["status"] == "INITIALIZING"
    assert job["links"]["self"].startswith(local_server.endpoint)
    hook.upload_csv(job, source)
    final = hook.download_results(job, target, poll_interval=0.1)
    assert final["status"] == "COMPLETED"
    assert final["scoredRows"] == 250
    assert (
        assert_scores_match(local_server, models.DEMO_REGRESSION_ID, source, target, max_explanations=2)
        == 250
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_multipart_upload_sends_parts_that_each_start_with_the_header(
    hook: DataRobotHook, local_server: Any, tmp_path: Path
) -> None:
    source = models.write_demo_csv(models.DEMO_MULTICLASS_ID, tmp_path / "in.csv", 2000, seed=5)
    parts = list(iter_csv_parts(source, part_size=8 * 1024))
    header = source.read_bytes().splitlines(keepends=True)[0]
    assert len(parts) > 3
    assert all(part.startswith(header) for part in parts)
    assert b"".join(part[len(header) :] for part in parts) == source.read_bytes()[len(header) :]

    job = hook.submit_job(
        {
            "deployment_id": models.DEMO_MULTICLASS_ID,
            "intake_settings": {"type": "localFile", "multipart": True},
        }
    )
    hook.upload_csv(job, source, multipart=True, part_size=8 * 1024)
    final = hook.download_results(job, tmp_path / "out.csv", poll_interval=0.1)
    assert final["scoredRows"] == 2000
    assert assert_scores_match(local_server, models.DEMO_MULTICLASS_ID, source, tmp_path / "out.csv") == 2000


def test_csv_parts_keep_quoted_multiline_records_whole(tmp_path: Path) -> None:
    source = tmp_path / "quoted.csv"
    source.write_bytes(b"a;b\n1;'x\ny'\n2;'z'\n3;'p\nq\nr'\n")
    parts = list(iter_csv_parts(source, part_size=10, quotechar="'"))
    assert parts == [b"a;b\n1;'x\ny'\n", b"a;b\n2;'z'\n", b"a;b\n3;'p\nq\nr'\n"]


@pytest.mark.parametrize("slow_download", [False, True], ids=["plain", "download-answered-late"])
def test_download_of_an_aborted_job_leaves_no_file(
    hook: DataRobotHook, faults: Any, tmp_path: Path, slow_download: bool
) -> None:
    if slow_download:
        # The download is answered after the job has aborted (422): still the job's reason.
        faults.set(rate=1.0, kinds=["slow"], routes=r"/download/$", slowSeconds=2)
    source = tmp_path / "bad.csv"
    rows = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "good.csv", 50, seed=2).read_text()
    header, *body = rows.splitlines()
    # Every row fails to convert, so the job aborts (abortOnError is on by default).
    source.write_text("\n".join([header, *("abc," + line.split(",", 1)[1] for line in body)]) + "\n")
    target = tmp_path / "out.csv"
    job = hook.submit_job({"deployment_id": models.DEMO_REGRESSION_ID})
    uploader = threading.Thread(target=lambda: _quietly(hook.upload_csv, job, source))
    uploader.start()
    with pytest.raises(DataRobotJobFailedError) as error:
        hook.download_results(job, target, poll_interval=0.1)
    uploader.join()
    assert error.value.status == "ABORTED"
    assert error.value.status_details
    assert error.value.status_details in str(error.value)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "good.csv"]


def _quietly(function: Any, *args: Any) -> None:
    # The upload of a job that aborts meanwhile is answered 422; the test checks the job instead.
    with contextlib.suppress(DataRobotApiError):
        function(*args)


def test_custom_csv_settings_round_trip_through_the_hook(
    hook: DataRobotHook, local_server: Any, tmp_path: Path
) -> None:
    from batchpred_helpers import write_kanji_csv

    settings = CsvSettings(delimiter=";", quotechar="'", encoding="ms_kanji")
    source = write_kanji_csv(models.DEMO_BINARY_ID, tmp_path / "in.csv", 120, settings)
    job = hook.submit_job(
        {
            "deployment_id": models.DEMO_BINARY_ID,
            "csv_settings": settings.model_dump(),
            "passthrough_columns": ["customer"],
        }
    )
    hook.upload_csv(job, source)
    hook.download_results(job, tmp_path / "out.csv", poll_interval=0.1)
    compared = assert_scores_match(
        local_server,
        models.DEMO_BINARY_ID,
        source,
        tmp_path / "out.csv",
        settings=settings,
        passthrough=("customer",),
    )
    assert compared == 120


def test_cancel_aborts_and_ignores_jobs_that_already_ended(hook: DataRobotHook) -> None:
    job = hook.submit_job({"deployment_id": models.DEMO_REGRESSION_ID})
    assert hook.cancel_job(job["id"]) is True
    assert hook.get_job(job["id"])["status"] == "ABORTED"
    assert hook.cancel_job(job["id"]) is False
    assert hook.cancel_job("000000000000000000000000") is False


def test_api_errors_carry_the_status_and_server_message(hook: DataRobotHook) -> None:
    with pytest.raises(DataRobotApiError) as error:
        hook.get_job("000000000000000000000000")
    assert error.value.http_status_code == 404
    assert "404" in str(error.value)
    assert hook.details.token not in str(error.value)


def test_list_jobs_filters_by_deployment(hook: DataRobotHook) -> None:
    job = hook.submit_job({"deployment_id": models.DEMO_MULTICLASS_ID})
    try:
        listed = hook.list_jobs(deployment_id=models.DEMO_MULTICLASS_ID)
        assert job["id"] in {j["id"] for j in listed}
        assert {j["jobSpec"]["deploymentId"] for j in listed} == {models.DEMO_MULTICLASS_ID}
    finally:
        hook.cancel_job(job["id"])


# ---------------------------------------------------------------------------------------------
# Retries and fault injection
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["429", "503"])
def test_job_post_retried_after_429_and_503_honouring_retry_after(
    hook: DataRobotHook, faults: Any, jobs_of: Any, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(jobs_of(models.DEMO_BINARY_ID))
    faults.set(
        rate=0.5,
        kinds=[kind],
        routes=r"/batchPredictions/$",
        methods=["POST"],
        seed=seed_faulting_first_request_only(0.5),
        retryAfter=1,
    )
    job = hook.submit_job({"deployment_id": models.DEMO_BINARY_ID})
    counters = faults.counters()
    assert counters["injected"] == {kind: 1}
    assert counters["matchedRequests"] == 2
    # Airflow's structlog writes task and hook logs to stdout.
    logged = capsys.readouterr().out
    assert f"HTTP {kind}" in logged
    assert "retrying in 1.0 s" in logged
    assert hook.details.token not in logged
    after = jobs_of(models.DEMO_BINARY_ID)
    assert len(after) == before + 1
    assert job["id"] in {j["id"] for j in after}
    hook.cancel_job(job["id"])


@pytest.mark.parametrize("kind", ["500", "drop"])
def test_ambiguous_failure_after_the_job_post_adopts_the_created_job(
    hook: DataRobotHook, faults: Any, jobs_of: Any, kind: str
) -> None:
    before = {j["id"] for j in jobs_of(models.DEMO_BINARY_ID)}
    faults.set(rate=1.0, kinds=[kind], routes=r"/batchPredictions/$", methods=["POST"], phase="after")
    job = hook.submit_job({"deployment_id": models.DEMO_BINARY_ID, "max_explanations": 1})
    assert faults.counters()["injected"] == {kind: 1}
    faults.clear()
    created = {j["id"] for j in jobs_of(models.DEMO_BINARY_ID)} - before
    assert created == {job["id"]}
    assert job["jobSpec"]["maxExplanations"] == 1
    hook.cancel_job(job["id"])


def test_ambiguous_failure_that_created_nothing_is_resent_only_after_proving_it(
    hook: DataRobotHook, faults: Any, jobs_of: Any
) -> None:
    before = {j["id"] for j in jobs_of(models.DEMO_BINARY_ID)}
    # The first POST fails before the handler ran: the lookups find no job, so it is sent again.
    faults.set(rate=1.0, kinds=["502"], routes=r"/batchPredictions/$", methods=["POST"], limit=1)
    job = hook.submit_job({"deployment_id": models.DEMO_BINARY_ID})
    assert faults.counters()["injected"] == {"502": 1}
    faults.clear()
    assert {j["id"] for j in jobs_of(models.DEMO_BINARY_ID)} - before == {job["id"]}
    hook.cancel_job(job["id"])


def test_ambiguous_failures_that_keep_creating_nothing_raise_after_the_retry_limit(
    hook: DataRobotHook, faults: Any, jobs_of: Any
) -> None:
    before = len(jobs_of(models.DEMO_BINARY_ID))
    faults.set(rate=1.0, kinds=["500"], routes=r"/batchPredictions/$", methods=["POST"], phase="before")
    with pytest.raises(DataRobotAmbiguousSubmitError, match="Not re-sending"):
        hook.submit_job({"deployment_id": models.DEMO_BINARY_ID})
    # One POST per attempt, each sent only after the lookups proved the previous one created nothing.
    assert faults.counters()["injected"] == {"500": hook.retry_limit}
    faults.clear()
    assert len(jobs_of(models.DEMO_BINARY_ID)) == before


@pytest.mark.parametrize("kind", ["500", "502", "504", "drop"])
def test_idempotent_get_is_retried_on_5xx_and_dropped_connections(
    hook: DataRobotHook, faults: Any, kind: str
) -> None:
    job = hook.submit_job({"deployment_id": models.DEMO_REGRESSION_ID})
    faults.set(
        rate=0.5,
        kinds=[kind],
        routes=r"/batchPredictions/[^/]+/$",
        methods=["GET"],
        seed=seed_faulting_first_request_only(0.5),
    )
    assert hook.get_job(job["id"])["id"] == job["id"]
    assert faults.counters()["injected"] == {kind: 1}
    faults.clear()
    hook.cancel_job(job["id"])


def test_exhausted_retries_raise_with_the_status(hook: DataRobotHook, faults: Any) -> None:
    faults.set(rate=1.0, kinds=["503"], routes=r"/version/$", retryAfter=0)
    with pytest.raises(DataRobotApiError) as error:
        hook.get_version()
    assert error.value.http_status_code == 503
    assert faults.counters()["injected"] == {"503": hook.retry_limit}


def test_connection_refused_is_a_request_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from support import free_port

    monkeypatch.setenv(
        "AIRFLOW_CONN_DR_DOWN",
        json.dumps(
            {
                "conn_type": "datarobot",
                "password": "t",
                "extra": {"endpoint": f"http://127.0.0.1:{free_port()}/api/v2"},
            }
        ),
    )
    down = DataRobotHook("dr_down", retry_limit=2, retry_delay=0.01)
    with pytest.raises(DataRobotRequestError) as error:
        down.submit_job({"deployment_id": models.DEMO_BINARY_ID})
    assert error.value.never_sent  # type: ignore[attr-defined]


def test_upload_and_download_stream_with_flat_memory(hook: DataRobotHook, tmp_path: Path) -> None:
    import tracemalloc

    source = models.write_demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "big.csv", 600_000, seed=13)
    size = source.stat().st_size
    assert size > 20 * 1024 * 1024
    target = tmp_path / "out.csv"
    job = hook.submit_job({"deployment_id": models.DEMO_REGRESSION_ID, "passthrough_columns_set": "all"})
    tracemalloc.start()
    try:
        hook.upload_csv(job, source)
        final = hook.download_results(job, target, poll_interval=0.2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert final["scoredRows"] == 600_000
    assert target.stat().st_size > size
    # Neither the input nor the output is ever held in memory: a few chunk buffers at most.
    assert peak < 8 * 1024 * 1024, peak
    with open(target, "rb") as handle:
        assert sum(1 for _ in handle) == 600_001


def test_download_survives_a_dropped_connection_on_the_download_route(
    hook: DataRobotHook, faults: Any, local_server: Any, tmp_path: Path
) -> None:
    source = models.write_demo_csv(models.DEMO_BINARY_ID, tmp_path / "in.csv", 80, seed=31)
    job = hook.submit_job({"deployment_id": models.DEMO_BINARY_ID})
    hook.upload_csv(job, source)
    hook.wait_for_job(job["id"], poll_interval=0.1)
    faults.set(
        rate=0.5,
        kinds=["drop"],
        routes=r"/download/$",
        methods=["GET"],
        seed=seed_faulting_first_request_only(0.5),
    )
    final = hook.download_results(job, tmp_path / "out.csv", poll_interval=0.1)
    assert faults.counters()["injected"] == {"drop": 1}
    assert final["status"] == "COMPLETED"
    assert assert_scores_match(local_server, models.DEMO_BINARY_ID, source, tmp_path / "out.csv") == 80
