"""Bad input gets a clear status code and message: CSV problems, bad settings, bad ids and tokens,
wrong content types, out-of-order calls, unscorable rows."""

from __future__ import annotations

import csv
import io
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.csv as pa_csv
import pytest
import requests
from conftest import Api, read_strings

from airflow_batchpred.server.models import DEMO_REGRESSION_ID, write_demo_csv

REGRESSION = {"deploymentId": DEMO_REGRESSION_ID}


@pytest.fixture(scope="module")
def demo_csv(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_demo_csv(
        DEMO_REGRESSION_ID, tmp_path_factory.mktemp("bad") / "in.csv", 20, seed=4
    ).read_bytes()


def rejected_upload(
    api: Api, data: bytes, body: dict[str, Any] | None = None
) -> tuple[requests.Response, dict]:
    job = api.create_job(body or REGRESSION)
    response = api.upload(job, data)
    return response, api.wait(job["id"])


def test_malformed_csv_is_rejected_and_aborts_the_job(api: Api, demo_csv: bytes) -> None:
    lines = demo_csv.decode().splitlines()
    lines[3] += ",1,2"
    response, job = rejected_upload(api, ("\n".join(lines) + "\n").encode())

    assert response.status_code == 422
    assert "Malformed CSV" in response.json()["message"]
    assert "Expected 10 columns, got 12" in response.json()["message"]
    assert response.headers["content-type"] == "application/json"
    assert job["status"] == "ABORTED"
    assert "Malformed CSV" in job["statusDetails"]


def test_empty_csv_is_rejected(api: Api) -> None:
    response, job = rejected_upload(api, b"")

    assert response.status_code == 422
    assert "The CSV data is empty" in response.json()["message"]
    assert job["status"] == "ABORTED"
    assert "empty" in job["statusDetails"]


def test_wrong_encoding_is_rejected_with_a_hint(api: Api, demo_csv: bytes) -> None:
    text = demo_csv.decode().splitlines()
    text[0] += ",note"
    text[1:] = [line + ",café" for line in text[1:]]
    response, job = rejected_upload(api, "\n".join(text).encode("latin_1"))

    assert response.status_code == 422
    message = response.json()["message"]
    assert "not valid utf-8" in message
    assert "csvSettings.encoding" in message
    assert job["status"] == "ABORTED"


def test_missing_feature_columns_abort_naming_them(api: Api, demo_csv: bytes) -> None:
    table = read_strings(demo_csv).drop_columns(["bmi", "s5"])
    buffer = io.BytesIO()
    pa_csv.write_csv(table, buffer)
    response, job = rejected_upload(api, buffer.getvalue())

    assert response.status_code == 422
    assert job["status"] == "ABORTED"
    assert "lacks feature columns the deployment needs: bmi, s5" in job["statusDetails"]
    assert "bmi, s5" in response.json()["message"]


def test_non_numeric_values_fail_their_rows_only(api: Api, demo_csv: bytes) -> None:
    rows = list(csv.reader(io.StringIO(demo_csv.decode())))
    bmi = rows[0].index("bmi")
    rows[2][bmi] = "abc"
    rows[5][bmi] = "n/a?"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)

    job, result = api.score_csv({**REGRESSION, "includePredictionStatus": True}, buffer.getvalue().encode())

    assert job["failedRows"] == 2
    assert job["scoredRows"] == 18
    scored = read_strings(result)
    status = scored["prediction_status"].to_pylist()
    assert status[1] == "Could not convert 'abc' in column 'bmi' to a number"
    assert status[4].startswith("Could not convert 'n/a?'")
    assert status.count("OK") == 18
    assert scored["progression_PREDICTION"][1].as_py() == ""
    assert scored.column_names[-1] == "prediction_status"


def test_too_many_failed_rows_abort_unless_abort_on_error_is_off(api: Api, demo_csv: bytes) -> None:
    rows = list(csv.reader(io.StringIO(demo_csv.decode())))
    age = rows[0].index("age")
    for row in rows[1:15]:
        row[age] = "old"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    data = buffer.getvalue().encode()

    _response, aborted = rejected_upload(api, data)
    tolerant, _result = api.score_csv({**REGRESSION, "abortOnError": False}, data)

    assert aborted["status"] == "ABORTED"
    assert "14 of 20 rows failed, more than 50%" in aborted["statusDetails"]
    assert "Could not convert 'old' in column 'age'" in aborted["statusDetails"]
    assert tolerant["status"] == "COMPLETED"
    assert tolerant["failedRows"] == 14


def test_unknown_deployment_is_404(api: Api) -> None:
    response = api.post("batchPredictions/", json={"deploymentId": "0123456789abcdef01234567"})

    assert response.status_code == 404
    assert "Deployment 0123456789abcdef01234567 does not exist" in response.json()["message"]
    assert DEMO_REGRESSION_ID in response.json()["message"]


def test_model_ids_are_refused_with_an_explanation(api: Api) -> None:
    response = api.post("batchPredictions/", json={"modelId": "0123456789abcdef01234567"})

    assert response.status_code == 422
    assert "scores deployments only" in response.json()["message"]


@pytest.mark.parametrize(
    "header", [None, "Token wrong-token", "Bearer wrong-token", "Basic dXNlcjpwYXNz", "Token"]
)
def test_bad_or_missing_token_is_401(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = requests.get(f"{api.endpoint}/deployments/", headers=headers, timeout=30)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert "Missing or invalid API token" in response.json()["message"]


def test_version_needs_no_token_and_both_schemes_work(api: Api) -> None:
    version = requests.get(f"{api.endpoint}/version/", timeout=30)
    bearer = requests.get(
        f"{api.endpoint}/deployments/", headers={"Authorization": f"Bearer {api.server.token}"}, timeout=30
    )
    token = requests.get(
        f"{api.endpoint}/deployments/", headers={"Authorization": f"Token {api.server.token}"}, timeout=30
    )

    assert version.status_code == 200
    assert version.json()["versionString"].startswith("2.")
    assert (bearer.status_code, token.status_code) == (200, 200)


def test_second_upload_is_409(api: Api, demo_csv: bytes) -> None:
    job = api.create_job(REGRESSION)
    first = api.upload(job, demo_csv)
    second = api.upload(job, demo_csv)

    assert first.status_code == 202
    assert second.status_code == 409
    assert f"An upload has already begun for job {job['id']}" in second.json()["message"]


def test_second_upload_while_the_first_streams_is_409(api: Api, demo_csv: bytes) -> None:
    job = api.create_job(REGRESSION)
    gate = threading.Event()

    def slow_body() -> Any:
        yield demo_csv[:50]
        gate.wait(10)
        yield demo_csv[50:]

    outcome: list[requests.Response] = []
    thread = threading.Thread(target=lambda: outcome.append(api.upload(job, slow_body())))
    thread.start()
    api.wait(job["id"], until=lambda j: j["status"] == "RUNNING")
    time.sleep(0.1)
    second = api.upload(job, demo_csv)
    gate.set()
    thread.join(30)

    assert second.status_code == 409
    assert "An upload has already begun" in second.json()["message"]
    assert outcome[0].status_code == 202


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "batchPredictions/0123456789abcdef01234567/"),
        ("DELETE", "batchPredictions/0123456789abcdef01234567/"),
        ("PATCH", "batchPredictions/0123456789abcdef01234567/"),
        ("GET", "batchPredictions/not-an-id/"),
        ("GET", "batchPredictions/0123456789abcdef01234567/download/"),
    ],
)
def test_unknown_job_is_404(api: Api, method: str, path: str) -> None:
    response = api.request(method, path, json={"hidden": True} if method == "PATCH" else None)

    assert response.status_code == 404
    assert "does not exist" in response.json()["message"]


def test_upload_to_unknown_job_is_404(api: Api, demo_csv: bytes) -> None:
    response = api.put(
        "batchPredictions/0123456789abcdef01234567/csvUpload/",
        data=demo_csv,
        headers={"Content-Type": "text/csv"},
    )

    assert response.status_code == 404
    assert "Batch prediction job 0123456789abcdef01234567 does not exist" in response.json()["message"]


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream", ""])
def test_wrong_content_type_is_406(api: Api, demo_csv: bytes, content_type: str) -> None:
    job = api.create_job(REGRESSION)
    response = api.upload(job, demo_csv, content_type=content_type)

    assert response.status_code == 406
    assert "Content-Type must be text/csv" in response.json()["message"]
    assert api.upload(job, demo_csv, content_type="text/csv; charset=utf-8").status_code == 202


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"intakeSettings": {"type": "s3"}}, ("intakeSettings", "url"), "this field is required"),
        ({"maxExplanations": 101}, ("maxExplanations",), "less than or equal to 100"),
        (
            {"csvSettings": {"delimiter": ";;"}},
            ("csvSettings", "delimiter"),
            "one character or the word 'tab'",
        ),
        ({"csvSettings": {"encoding": "klingon"}}, ("csvSettings", "encoding"), "unknown encoding"),
        ({"passthroughColumnsSet": "some"}, ("passthroughColumnsSet",), "'all'"),
        ({"numConcurrent": 0}, ("numConcurrent",), "greater than or equal to 1"),
        ({"unknownKnob": 1}, ("unknownKnob",), "unknown field"),
    ],
)
def test_bad_job_settings_are_422_naming_the_camel_case_field(
    api: Api, body: dict[str, Any], field: tuple[str, ...], text: str
) -> None:
    response = api.post("batchPredictions/", json={**REGRESSION, **body})

    assert response.status_code == 422
    payload = response.json()
    node = payload["errors"]
    for part in field:
        node = node[part]
    assert text in node
    assert ".".join(field) in payload["message"]


@pytest.mark.parametrize(
    ("side", "kind"),
    [("intakeSettings", "http"), ("outputSettings", "tableau"), ("intakeSettings", "fileSystem")],
)
def test_unknown_adapter_type_is_422_naming_it(api: Api, side: str, kind: str) -> None:
    response = api.post("batchPredictions/", json={**REGRESSION, side: {"type": kind}})

    assert response.status_code == 422
    assert repr(kind) in response.json()["message"]


def test_invalid_json_and_oversized_bodies(api: Api) -> None:
    broken = api.post("batchPredictions/", data=b"{not json", headers={"Content-Type": "application/json"})
    huge = api.post(
        "batchPredictions/",
        data=b'{"deploymentId": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    not_object = api.post("batchPredictions/", json=[1, 2])

    assert broken.status_code == 422
    assert "not valid JSON" in broken.json()["message"]
    assert huge.status_code == 413
    assert "larger than the limit" in huge.json()["message"]
    assert not_object.status_code == 422
    assert "must be a JSON object" in not_object.json()["message"]


def test_finalize_of_a_non_multipart_job_is_409(api: Api) -> None:
    job = api.create_job(REGRESSION)
    response = api.post(f"{job['links']['csvUpload']}finalizeMultipart/")

    assert response.status_code == 409
    assert "Only multipart jobs can be finalized" in response.json()["message"]


def test_multipart_misuse(api: Api, demo_csv: bytes) -> None:
    multipart = api.create_job({**REGRESSION, "intakeSettings": {"type": "localFile", "multipart": True}})
    single = api.create_job(REGRESSION)

    nothing = api.post(f"{multipart['links']['csvUpload']}finalizeMultipart/")
    whole = api.upload(multipart, demo_csv)
    part_on_single = api.put(
        f"{single['links']['csvUpload']}part/0/", data=demo_csv, headers={"Content-Type": "text/csv"}
    )
    part = api.put(
        f"{multipart['links']['csvUpload']}part/0/", data=demo_csv, headers={"Content-Type": "text/csv"}
    )
    finalized = api.post(f"{multipart['links']['csvUpload']}finalizeMultipart/")
    late = api.put(
        f"{multipart['links']['csvUpload']}part/1/", data=demo_csv, headers={"Content-Type": "text/csv"}
    )

    assert nothing.status_code == 422
    assert "No data was uploaded" in nothing.json()["message"]
    assert whole.status_code == 422
    assert "multipart upload" in whole.json()["message"]
    assert part_on_single.status_code == 422
    assert "not created for a multipart upload" in part_on_single.json()["message"]
    assert (part.status_code, finalized.status_code) == (202, 202)
    assert late.status_code == 409
    assert "already finalized" in late.json()["message"]
    assert api.wait(multipart["id"])["status"] == "COMPLETED"
    again = api.post(f"{multipart['links']['csvUpload']}finalizeMultipart/")
    assert again.status_code == 409
    assert "already finalized" in again.json()["message"]


def test_download_of_an_aborted_job_is_422(api: Api) -> None:
    job = api.create_job(REGRESSION)
    before = api.get(f"batchPredictions/{job['id']}/download/")
    api.delete(f"batchPredictions/{job['id']}/")
    after = api.get(f"batchPredictions/{job['id']}/download/")

    assert before.status_code == 404
    assert "available once it is RUNNING" in before.json()["message"]
    assert after.status_code == 422
    assert "was aborted" in after.json()["message"]


def test_missing_passthrough_column_aborts_naming_it(api: Api, demo_csv: bytes) -> None:
    _response, job = rejected_upload(api, demo_csv, {**REGRESSION, "passthroughColumns": ["id", "age"]})

    assert job["status"] == "ABORTED"
    assert "passthroughColumns not found in the input: id" in job["statusDetails"]


def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    missing = api.get("noSuchThing/")
    wrong_method = api.put("deployments/", json={})

    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert "no such route" in missing.json()["message"]
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/json"
    assert "Method not allowed" in wrong_method.json()["message"]


def test_dataset_intake_with_unknown_dataset_is_404(api: Api) -> None:
    response = api.post(
        "batchPredictions/", json={**REGRESSION, "intakeSettings": {"type": "dataset", "datasetId": "0" * 24}}
    )

    assert response.status_code == 404
    assert f"Dataset {'0' * 24} does not exist" in response.json()["message"]


def test_dataset_from_a_non_csv_file_is_422(api: Api, tmp_path: Path) -> None:
    response = api.post("datasets/fromFile/", files={"file": ("empty.csv", b"", "text/csv")})
    no_form = api.post("datasets/fromFile/", data=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"})

    assert response.status_code == 422
    assert "The CSV data is empty" in response.json()["message"]
    assert no_form.status_code == 406
    assert "multipart/form-data" in no_form.json()["message"]


def test_download_refuses_non_csv_accept_headers(api: Api, demo_csv: bytes) -> None:
    job, _result = api.score_csv(REGRESSION, demo_csv)

    refused = api.get(job["links"]["download"], headers={"Accept": "application/json"})
    accepted = api.get(job["links"]["download"], headers={"Accept": "text/csv;q=0.9, application/json"})

    assert refused.status_code == 406
    assert "Not acceptable" in refused.json()["message"]
    assert accepted.status_code == 200


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (
            {"includeProbabilitiesClasses": ["maybe"]},
            "include_probabilities_classes names unknown classes ['maybe']",
        ),
        (
            {"explanationAlgorithm": "xemp", "maxExplanations": 1},
            "explanation algorithm 'xemp' is not supported",
        ),
    ],
)
def test_options_the_deployment_cannot_honour_are_422(api: Api, body: dict[str, Any], text: str) -> None:
    from airflow_batchpred.server.models import DEMO_BINARY_ID

    response = api.post("batchPredictions/", json={"deploymentId": DEMO_BINARY_ID, **body})

    assert response.status_code == 422
    assert text in response.json()["message"]


def test_header_only_csv_completes_with_a_header_and_checks_columns(api: Api, demo_csv: bytes) -> None:
    header = demo_csv.split(b"\n", 1)[0] + b"\n"
    job, result = api.score_csv({**REGRESSION, "passthroughColumns": ["age"]}, header)
    response, wrong = rejected_upload(api, b"age,sex\n")

    assert job["scoredRows"] == 0
    assert result.decode().splitlines() == ["age,progression_PREDICTION"]
    assert response.status_code == 422
    assert wrong["status"] == "ABORTED"
    assert "lacks feature columns the deployment needs: bmi, bp" in wrong["statusDetails"]
