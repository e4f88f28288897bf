"""Credentials (secrets stored, never echoed), data stores, datasets and deployments."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from conftest import Api

from airflow_batchpred.server.models import DEMO_BINARY_ID, DEMO_REGRESSION_ID, ModelRegistry, write_demo_csv

from support import LocalServer

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def test_credentials_store_secrets_and_never_return_them(api: Api, local_server: LocalServer) -> None:
    password = "pw-" + secrets.token_hex(8)
    name = "db-" + secrets.token_hex(4)
    created = api.post(
        "credentials/", json={"name": name, "credentialType": "basic", "user": "u", "password": password}
    )
    credential_id = created.json()["credentialId"]
    duplicate = api.post("credentials/", json={"name": name, "credentialType": "basic", "password": "x"})
    fetched = api.get(f"credentials/{credential_id}/")
    listed = api.get("credentials/", params={"types": "basic"})
    other_types = api.get("credentials/", params={"types": "s3"})
    new_password = "pw2-" + secrets.token_hex(8)
    patched = api.patch(
        f"credentials/{credential_id}/", json={"password": new_password, "description": "prod"}
    )
    empty_patch = api.patch(f"credentials/{credential_id}/", json={})

    assert created.status_code == 201
    assert set(created.json()) == {"credentialId", "name", "credentialType", "creationDate", "description"}
    assert created.json()["description"] == ""
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.json()["message"]
    assert fetched.json() == created.json()
    assert credential_id in {item["credentialId"] for item in listed.json()["data"]}
    assert credential_id not in {item["credentialId"] for item in other_types.json()["data"]}
    assert patched.status_code == 200
    assert patched.json()["description"] == "prod"
    assert empty_patch.status_code == 422
    for response in (created, fetched, listed, patched):
        assert password not in response.text
        assert new_password not in response.text
    assert password not in local_server.log_file.read_text(errors="replace")

    deleted = api.delete(f"credentials/{credential_id}/")
    gone = api.get(f"credentials/{credential_id}/")
    assert deleted.status_code == 204
    assert gone.status_code == 404
    assert "does not exist" in gone.json()["message"]


def test_official_client_credentials_and_data_stores(dr_client: Any, api: Api) -> None:
    import datarobot as dr

    secret_key = "secret-" + secrets.token_hex(8)
    credential = dr.Credential.create_s3(
        name="s3-" + secrets.token_hex(4), aws_access_key_id="AKIA", aws_secret_access_key=secret_key
    )
    fetched = dr.Credential.get(credential.credential_id)
    store = dr.DataStore.create(
        data_store_type="jdbc",
        canonical_name="Demo DB " + secrets.token_hex(3),
        driver_id="postgres-driver",
        jdbc_url="jdbc:postgresql://127.0.0.1:5432/demo",
    )
    stores = dr.DataStore.list()
    raw_store = api.get(f"externalDataStores/{store.id}/").json()
    renamed = api.patch(f"externalDataStores/{store.id}/", json={"canonicalName": "Renamed"})

    assert fetched.credential_type == "s3"
    assert secret_key not in api.get(f"credentials/{credential.credential_id}/").text
    assert store.id in {item.id for item in stores}
    assert raw_store["params"] == {
        "driverId": "postgres-driver",
        "jdbcUrl": "jdbc:postgresql://127.0.0.1:5432/demo",
    }
    assert set(raw_store) >= {"id", "type", "canonicalName", "creator", "params", "updated", "role"}
    assert renamed.json()["canonicalName"] == "Renamed"
    assert api.delete(f"externalDataStores/{store.id}/").status_code == 204
    assert api.get(f"externalDataStores/{store.id}/").status_code == 404


def test_dataset_versions(api: Api, tmp_path: Path) -> None:
    first = write_demo_csv(DEMO_REGRESSION_ID, tmp_path / "v1.csv", 10, seed=1)
    second = write_demo_csv(DEMO_REGRESSION_ID, tmp_path / "v2.csv", 25, seed=2)
    created = api.post("datasets/fromFile/", files={"file": ("v1.csv", first.read_bytes(), "text/csv")})
    dataset_id = created.json()["catalogId"]
    status = api.get(created.headers["Location"], allow_redirects=False)
    newer = api.post(
        f"datasets/{dataset_id}/versions/fromFile/", files={"file": ("v2.csv", second.read_bytes())}
    )
    dataset = api.get(f"datasets/{dataset_id}/").json()
    versions = api.get(f"datasets/{dataset_id}/versions/").json()
    old = api.get(f"datasets/{dataset_id}/versions/{created.json()['catalogVersionId']}/").json()

    assert created.status_code == 202
    assert set(created.json()) == {"catalogId", "catalogVersionId", "statusId"}
    assert status.status_code == 303
    assert status.headers["Location"] == f"{api.endpoint}/datasets/{dataset_id}/"
    required = {
        "datasetId",
        "versionId",
        "name",
        "categories",
        "creationDate",
        "isDataEngineEligible",
        "isLatestVersion",
        "isSnapshot",
        "processingState",
    }
    assert required <= set(dataset)
    assert dataset["versionId"] == newer.json()["catalogVersionId"]
    assert (dataset["rowCount"], dataset["featureCount"], dataset["processingState"]) == (25, 10, "COMPLETED")
    assert versions["totalCount"] == 2
    assert old["rowCount"] == 10
    assert old["isLatestVersion"] is False
    assert dataset_id in {item["datasetId"] for item in api.get("datasets/").json()["data"]}


def test_deployments_and_their_features(api: Api, registry: ModelRegistry) -> None:
    listed = api.get("deployments/").json()
    one = api.get(f"deployments/{DEMO_BINARY_ID}/").json()
    features = api.get(f"deployments/{DEMO_BINARY_ID}/features/").json()
    unknown = api.get("deployments/0123456789abcdef01234567/")

    info = registry.get(DEMO_BINARY_ID)
    assert info is not None
    assert listed["totalCount"] == 3
    assert {item["id"] for item in listed["data"]} == {d.id for d in registry.list()}
    assert one["model"]["targetName"] == info.target_name
    assert one["model"]["targetType"] == "Binary"
    assert [(f["name"], f["featureType"]) for f in features["data"]] == [
        (f.name, f.feature_type) for f in info.features
    ]
    assert features["next"] is None
    assert unknown.status_code == 404
    assert "Known deployments" in unknown.json()["message"]
