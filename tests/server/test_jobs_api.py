"""The job resource over plain HTTP: job JSON, links, jobSpec defaults, listing, PATCH, output
layout and knobs, streaming download, the queue."""

from __future__ import annotations

import re
import secrets
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
import requests
from conftest import Api, assert_close, expected_predictions, read_strings

from airflow_batchpred.server.models import (
    DEMO_BINARY_ID,
    DEMO_MULTICLASS_ID,
    DEMO_REGRESSION_ID,
    ModelRegistry,
    write_demo_csv,
)

from support import LocalServer

REGRESSION = {"deploymentId": DEMO_REGRESSION_ID}


@pytest.fixture(scope="module")
def regression_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_csv(DEMO_REGRESSION_ID, tmp_path_factory.mktemp("jobs") / "in.csv", 30, seed=8)


@pytest.fixture(scope="module")
def binary_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_csv(DEMO_BINARY_ID, tmp_path_factory.mktemp("jobs") / "bin.csv", 30, seed=9)


def test_create_answers_202_with_location_and_full_job_json(api: Api) -> None:
    response = api.post("batchPredictions/", json=REGRESSION)

    assert response.status_code == 202
    job = response.json()
    assert re.fullmatch(r"[0-9a-f]{24}", job["id"])
    assert response.headers["Location"] == f"{api.endpoint}/batchPredictions/{job['id']}/"
    assert job["links"] == {
        "self": response.headers["Location"],
        "csvUpload": f"{response.headers['Location']}csvUpload/",
    }
    assert job["status"] == "INITIALIZING"
    assert job["statusDetails"]
    assert job["elapsedTimeSec"] == 0
    assert isinstance(job["percentageCompleted"], float)
    assert job["createdBy"]["username"]
    spec = job["jobSpec"]
    assert spec["intakeSettings"] == {"type": "localFile"}
    assert spec["outputSettings"] == {"type": "localFile"}
    assert spec["csvSettings"] == {"delimiter": ",", "quotechar": '"', "encoding": "utf-8"}
    assert spec["numConcurrent"] == 4
    assert (
        spec["chunkSize"],
        spec["maxExplanations"],
        spec["abortOnError"],
        spec["includeProbabilities"],
    ) == (
        "auto",
        0,
        True,
        True,
    )


def test_links_follow_the_host_the_caller_used(api: Api) -> None:
    url = api.endpoint.replace("127.0.0.1", "localhost")
    response = requests.post(
        f"{url}/batchPredictions", json=REGRESSION, headers=dict(api.session.headers), timeout=30
    )

    assert response.status_code == 202
    assert response.headers["Location"].startswith(url + "/batchPredictions/")
    assert response.json()["links"]["self"].startswith(url)


def test_routes_work_without_trailing_slash(api: Api, regression_csv: Path) -> None:
    job = api.create_job(REGRESSION)
    upload = api.put(
        f"batchPredictions/{job['id']}/csvUpload",
        data=regression_csv.read_bytes(),
        headers={"Content-Type": "text/csv"},
    )
    fetched = api.get(f"batchPredictions/{job['id']}")

    assert upload.status_code == 202
    assert fetched.status_code == 200
    assert fetched.json()["id"] == job["id"]


def test_prediction_instance_keys_are_redacted(api: Api) -> None:
    job = api.create_job(
        {**REGRESSION, "predictionInstance": {"hostName": "pred.example.com", "apiKey": "very-secret-key"}}
    )

    assert "very-secret-key" not in api.get(f"batchPredictions/{job['id']}/").text
    assert job["jobSpec"]["predictionInstance"] == {"hostName": "pred.example.com"}
    assert job["jobSpec"]["redactedFields"] == ["predictionInstance.apiKey"]


def test_chunked_upload_download_link_and_headers(
    api: Api, regression_csv: Path, local_server: LocalServer
) -> None:
    job = api.create_job({**REGRESSION, "passthroughColumnsSet": "all"})
    assert "download" not in job["links"]

    def pieces() -> Any:
        data = regression_csv.read_bytes()
        for start in range(0, len(data), 100):
            yield data[start : start + 100]

    response = api.upload(job, pieces())
    done = api.wait(job["id"])
    download = api.get(done["links"]["download"])

    assert response.status_code == 202
    assert done["status"] == "COMPLETED"
    assert done["percentageCompleted"] == 100.0
    assert done["scoredRows"] == 30
    assert done["jobIntakeSize"] == regression_csv.stat().st_size
    assert done["jobOutputSize"] == len(download.content)
    assert download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"] == f"attachment;filename=result-{job['id']}.csv"
    assert any("Job done processing" in line for line in done["logs"])
    job_dir = local_server.data_dir / "jobs" / job["id"]
    assert sorted(path.name for path in job_dir.iterdir()) == ["result.csv"], "the upload was not removed"


def test_download_streams_while_the_job_runs(api: Api, tmp_path: Path) -> None:
    source = write_demo_csv(DEMO_REGRESSION_ID, tmp_path / "stream.csv", 60_000, seed=10)
    job = api.create_job(REGRESSION)
    gate = threading.Event()
    data = source.read_bytes()
    half = data.index(b"\n", len(data) // 2) + 1

    def body() -> Any:
        yield data[:half]
        gate.wait(30)
        yield data[half:]

    uploader = threading.Thread(target=lambda: api.upload(job, body()), daemon=True)
    uploader.start()
    running = api.wait(job["id"], until=lambda j: j["status"] == "RUNNING" and j["scoredRows"] > 0)
    assert "download" in running["links"]
    with api.get(running["links"]["download"], stream=True) as response:
        assert response.status_code == 200
        chunks = response.iter_content(chunk_size=None)
        first = next(chunks)
        assert first.startswith(b"progression_PREDICTION\n")
        assert api.job(job["id"])["status"] == "RUNNING"
        gate.set()
        content = first + b"".join(chunks)
    uploader.join(30)

    assert content.count(b"\n") == 60_001
    assert api.wait(job["id"])["status"] == "COMPLETED"


def test_output_column_order_and_prediction_status(
    api: Api, binary_csv: Path, registry: ModelRegistry
) -> None:
    body = {
        "deploymentId": DEMO_BINARY_ID,
        "passthroughColumns": ["mean_radius"],
        "maxExplanations": 2,
        "includePredictionStatus": True,
    }
    _job, result = api.score_csv(body, binary_csv.read_bytes())

    table = read_strings(result)
    expected = expected_predictions(registry, DEMO_BINARY_ID, read_strings(binary_csv), max_explanations=2)
    assert table.column_names == ["mean_radius", *expected.column_names, "prediction_status"]
    assert set(table["prediction_status"].to_pylist()) == {"OK"}


def test_column_names_remapping_renames_and_drops(api: Api, binary_csv: Path) -> None:
    remap = {"diagnosis_PREDICTION": "label", "THRESHOLD": None, "POSITIVE_CLASS": None}
    _job, as_dict = api.score_csv(
        {"deploymentId": DEMO_BINARY_ID, "columnNamesRemapping": remap}, binary_csv.read_bytes()
    )
    listed = [
        {"inputName": "diagnosis_PREDICTION", "outputName": "label"},
        {"inputName": "THRESHOLD", "outputName": None},
    ]
    job, as_list = api.score_csv(
        {"deploymentId": DEMO_BINARY_ID, "columnNamesRemapping": listed}, binary_csv.read_bytes()
    )

    assert read_strings(as_dict).column_names == [
        "diagnosis_malignant_PREDICTION",
        "diagnosis_benign_PREDICTION",
        "label",
    ]
    assert read_strings(as_list).column_names == [
        "diagnosis_malignant_PREDICTION",
        "diagnosis_benign_PREDICTION",
        "label",
        "POSITIVE_CLASS",
    ]
    assert job["jobSpec"]["columnNamesRemapping"] == listed


def test_probability_knobs_and_threshold(api: Api, binary_csv: Path, registry: ModelRegistry) -> None:
    _job, without = api.score_csv(
        {"deploymentId": DEMO_BINARY_ID, "includeProbabilities": False}, binary_csv.read_bytes()
    )
    _job, strict = api.score_csv(
        {"deploymentId": DEMO_BINARY_ID, "predictionThreshold": 0.99}, binary_csv.read_bytes()
    )

    assert read_strings(without).column_names == ["diagnosis_PREDICTION", "THRESHOLD", "POSITIVE_CLASS"]
    scored = pa_csv.read_csv(pa.BufferReader(strict))
    assert set(scored["THRESHOLD"].to_pylist()) == {0.99}
    expected = expected_predictions(
        registry, DEMO_BINARY_ID, read_strings(binary_csv), prediction_threshold=0.99
    )
    assert scored["diagnosis_PREDICTION"].to_pylist() == expected["diagnosis_PREDICTION"].to_pylist()


def test_tab_delimited_latin_1_round_trip(api: Api, regression_csv: Path, registry: ModelRegistry) -> None:
    inputs = read_strings(regression_csv)
    lines = ["\t".join([*inputs.column_names, "ville"])]
    lines += ["\t".join([*row.values(), "Montréal"]) for row in inputs.to_pylist()]
    settings = {"delimiter": "tab", "quotechar": '"', "encoding": "latin_1"}

    job, result = api.score_csv(
        {**REGRESSION, "csvSettings": settings, "passthroughColumns": ["ville"]},
        ("\n".join(lines) + "\n").encode("latin_1"),
    )

    assert job["jobSpec"]["csvSettings"] == settings
    table = read_strings(result.decode("latin_1").encode(), delimiter="\t")
    assert set(table["ville"].to_pylist()) == {"Montréal"}
    assert_close(
        table["progression_PREDICTION"].to_pylist(),
        expected_predictions(registry, DEMO_REGRESSION_ID, inputs)["progression_PREDICTION"].to_pylist(),
    )


def test_list_filters_and_pagination(api: Api, regression_csv: Path) -> None:
    marker = api.create_job({"deploymentId": DEMO_MULTICLASS_ID})
    ids = {api.create_job(REGRESSION)["id"] for _ in range(3)}
    done, _ = api.score_csv(REGRESSION, regression_csv.read_bytes())

    first = api.get("batchPredictions/", params={"limit": 2, "deploymentId": DEMO_REGRESSION_ID}).json()
    pages, url = [first], first["next"]
    while url:
        pages.append(api.get(url).json())
        url = pages[-1]["next"]
    listed = [job["id"] for page in pages for job in page["data"]]
    statuses = api.get("batchPredictions/", params=[("status", "COMPLETED"), ("status", "ABORTED")]).json()
    multiclass = api.get(
        "batchPredictions/", params={"deploymentId": DEMO_MULTICLASS_ID, "intakeType": "local_file"}
    ).json()
    oldest = api.get("batchPredictions/", params={"orderBy": "created", "limit": 1}).json()
    bad = api.get("batchPredictions/", params={"status": "PENDING"})

    assert first["count"] == 2
    assert first["next"].startswith(api.endpoint + "/batchPredictions/")
    assert first["previous"] is None
    assert pages[-1]["next"] is None
    assert first["totalCount"] == len(listed)
    assert ids | {done["id"]} <= set(listed)
    assert marker["id"] not in listed
    assert {job["status"] for job in statuses["data"]} <= {"COMPLETED", "ABORTED"}
    assert done["id"] in {job["id"] for job in statuses["data"]}
    assert marker["id"] in {job["id"] for job in multiclass["data"]}
    assert oldest["data"][0]["created"] <= done["created"]
    assert bad.status_code == 422
    assert "Unknown status 'PENDING'" in bad.json()["message"]


def test_patch_hides_finished_jobs_only(api: Api, regression_csv: Path) -> None:
    running = api.create_job(REGRESSION)
    done, _ = api.score_csv(REGRESSION, regression_csv.read_bytes())

    refused = api.patch(f"batchPredictions/{running['id']}/", json={"hidden": True})
    hidden = api.patch(f"batchPredictions/{done['id']}/", json={"hidden": True})
    unknown = api.patch(f"batchPredictions/{done['id']}/", json={"deploymentId": "x"})

    assert refused.status_code == 409
    assert "cannot be hidden" in refused.json()["message"]
    assert hidden.status_code == 200
    assert hidden.json()["hidden"]
    assert unknown.status_code == 422
    assert "deploymentId" in unknown.json()["message"]


def test_queued_jobs_wait_initializing_with_a_queue_position(tmp_path: Path, regression_csv: Path) -> None:
    server = LocalServer(
        data_dir=tmp_path / "data", token=secrets.token_hex(8), extra_args=("--max-concurrent-jobs", "1")
    )
    server.start()
    try:
        api = Api(server)
        blocker = api.create_job(REGRESSION)
        gate = threading.Event()
        data = regression_csv.read_bytes()

        def body() -> Any:
            yield data[:200]
            gate.wait(30)
            yield data[200:]

        uploader = threading.Thread(target=lambda: api.upload(blocker, body()), daemon=True)
        uploader.start()
        api.wait(blocker["id"], until=lambda j: j["status"] == "RUNNING")
        waiting = api.create_job(REGRESSION)
        response = api.upload(waiting, data)
        queued = api.job(waiting["id"])
        gate.set()
        uploader.join(30)
        finished = api.wait(waiting["id"])
    finally:
        server.stop()

    assert response.status_code == 202
    assert queued["status"] == "INITIALIZING"
    assert queued["queued"] is True
    assert queued["queuePosition"] == 0
    assert finished["status"] == "COMPLETED"
    assert finished["queuePosition"] is None


def test_from_existing_queues_a_copy(api: Api, tmp_path: Path) -> None:
    source = write_demo_csv(DEMO_REGRESSION_ID, tmp_path / "catalog.csv", 12, seed=3)
    created = api.post("datasets/fromFile/", files={"file": ("catalog.csv", source.read_bytes())}).json()
    original = api.create_job(
        {
            **REGRESSION,
            "intakeSettings": {"type": "dataset", "datasetId": created["catalogId"]},
            "maxExplanations": 2,
        }
    )
    first = api.wait(original["id"])

    response = api.post("batchPredictions/fromExisting/", json={"predictionJobId": original["id"]})
    copy = api.wait(response.json()["id"])
    missing = api.post("batchPredictions/fromExisting/", json={})

    assert first["status"] == "COMPLETED"
    assert first["intakeDatasetDisplayName"] == "catalog.csv"
    assert response.status_code == 202
    assert response.json()["id"] != original["id"]
    assert copy["status"] == "COMPLETED"
    assert copy["jobSpec"] == first["jobSpec"]
    assert copy["scoredRows"] == 12
    assert missing.status_code == 422
    assert "predictionJobId is required" in missing.json()["message"]


class GatedFile:
    """A file-like body of known length that stops at ``pause_at`` until ``gate`` is set."""

    def __init__(self, data: bytes, pause_at: int, gate: threading.Event) -> None:
        self.data, self.pause_at, self.gate, self.position = data, pause_at, gate, 0

    def __len__(self) -> int:
        return len(self.data)

    def read(self, size: int = -1) -> bytes:
        if self.position >= self.pause_at:
            self.gate.wait(30)
        end = len(self.data) if size < 0 else self.position + size
        if self.position < self.pause_at:
            end = min(end, self.pause_at)
        piece = self.data[self.position : end]
        self.position += len(piece)
        return piece


def test_progress_of_an_upload_with_content_length(api: Api, tmp_path: Path) -> None:
    data = write_demo_csv(DEMO_REGRESSION_ID, tmp_path / "progress.csv", 100_000, seed=12).read_bytes()
    job = api.create_job(REGRESSION)
    gate = threading.Event()
    body = GatedFile(data, data.index(b"\n", len(data) // 2) + 1, gate)
    uploader = threading.Thread(target=lambda: api.upload(job, body), daemon=True)
    uploader.start()

    halfway = api.wait(job["id"], until=lambda j: j["percentageCompleted"] > 30)
    gate.set()
    uploader.join(30)
    done = api.wait(job["id"])

    assert halfway["status"] == "RUNNING"
    assert halfway["percentageCompleted"] < 100
    assert done["percentageCompleted"] == 100.0
    assert done["scoredRows"] == 100_000


def test_public_url_overrides_the_host_in_links(tmp_path: Path) -> None:
    server = LocalServer(
        data_dir=tmp_path / "data",
        token=secrets.token_hex(8),
        extra_args=("--public-url", "https://scoring.example.com/"),
    )
    server.start()
    try:
        api = Api(server)
        response = api.post("batchPredictions/", json=REGRESSION)
        for _ in range(2):
            api.create_job(REGRESSION)
        listed = api.get("batchPredictions/", params={"limit": 1}).json()
    finally:
        server.stop()

    job_id = response.json()["id"]
    assert response.headers["Location"] == f"https://scoring.example.com/api/v2/batchPredictions/{job_id}/"
    assert response.json()["links"]["csvUpload"].startswith("https://scoring.example.com/api/v2/")
    assert listed["next"].startswith("https://scoring.example.com/api/v2/batchPredictions/?")
