"""Airflow ``aws``/``wasb``/``google_cloud_platform`` connections → DataRobot credentials, against
the local server: one credential per connection, rotation in place, clear errors."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from objstore_helpers import (
    AWS_CONN_ID,
    GCP_CONN_ID,
    WASB_CONN_ID,
    Stores,
    demo_csv,
    gcp_connection,
    service_account_key,
)

from airflow_batchpred.exceptions import DataRobotConnectionError
from airflow_batchpred.hooks.cloud_credentials import (
    credential_for_connection,
    credential_id_of,
    map_aws_connection,
    map_gcp_connection,
    map_wasb_connection,
    resolve_settings_credentials,
)
from airflow_batchpred.hooks.credentials import managed_name
from airflow_batchpred.hooks.datarobot import DataRobotHook
from airflow_batchpred.server import models

from support import LocalServer

CONN_TYPES = {AWS_CONN_ID: "aws", WASB_CONN_ID: "wasb", GCP_CONN_ID: "google_cloud_platform"}


@pytest.fixture
def hook() -> Iterator[DataRobotHook]:
    hook = DataRobotHook(retry_limit=2, retry_delay=0.05)
    yield hook
    hook.close()


def named(server: LocalServer, name: str) -> list[dict[str, Any]]:
    return [c for c in server.get("credentials/", limit=1000).json()["data"] if c["name"] == name]


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, connection: dict[str, Any]) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))


@pytest.mark.parametrize("conn_id", [AWS_CONN_ID, WASB_CONN_ID, GCP_CONN_ID])
def test_same_connection_twice_gives_one_credential(
    conn_id: str, hook: DataRobotHook, object_server: LocalServer
) -> None:
    conn_type = CONN_TYPES[conn_id]
    first = credential_for_connection(hook, conn_type, conn_id)
    second = credential_for_connection(hook, conn_type, conn_id)
    assert first == second
    credentials = named(object_server, managed_name(conn_type, conn_id))
    assert [c["credentialId"] for c in credentials] == [first]
    expected_type = {"aws": "s3", "wasb": "azure", "google_cloud_platform": "gcp"}[conn_type]
    assert credentials[0]["credentialType"] == expected_type


def _wait_for_job(hook: DataRobotHook, job_id: str) -> dict[str, Any]:
    return hook.wait_for_job(job_id, poll_interval=0.2, timeout=120)


def test_rotated_azure_key_updates_the_credential_in_place(
    monkeypatch: pytest.MonkeyPatch,
    hook: DataRobotHook,
    stores: Stores,
    object_server: LocalServer,
    unique_key: Any,
    tmp_path: Any,
) -> None:
    """Azurite checks the account key: a job fails with the old key and works after the rotation,
    with the same credential id, so the secret really was replaced in place."""
    conn_id = f"wasb_rotating_{secrets.token_hex(3)}"
    wrong_key = stores.azure.connection_string.replace(
        stores.azure.account_key, "d3Jvbmcta2V5" + stores.azure.account_key[12:]
    )
    set_connection(monkeypatch, conn_id, {"conn_type": "wasb", "extra": {"connection_string": wrong_key}})
    before = credential_for_connection(hook, "wasb", conn_id)
    source = stores.put(
        "azure", unique_key("in.csv"), demo_csv(models.DEMO_REGRESSION_ID, tmp_path / "i.csv", 50)
    )
    settings = {
        "deployment_id": models.DEMO_REGRESSION_ID,
        "intake_settings": {"type": "azure", "url": source, "credential_id": before},
        "output_settings": {
            "type": "azure",
            "url": stores.url("azure", unique_key("out.csv")),
            "credential_id": before,
        },
    }
    failed = _wait_for_job(hook, hook.submit_job(settings)["id"])
    assert failed["status"] == "ABORTED"
    assert "failed to authenticate" in failed["statusDetails"]
    assert stores.azure.account_key not in json.dumps(failed)

    set_connection(
        monkeypatch,
        conn_id,
        {"conn_type": "wasb", "extra": {"connection_string": stores.azure.connection_string}},
    )
    after = credential_for_connection(hook, "wasb", conn_id)

    assert after == before
    assert len(named(object_server, managed_name("wasb", conn_id))) == 1
    done = _wait_for_job(hook, hook.submit_job(settings)["id"])
    assert done["status"] == "COMPLETED", done["statusDetails"]
    assert done["scoredRows"] == 50


def test_rotated_aws_keys_update_in_place_with_session_token(
    monkeypatch: pytest.MonkeyPatch, hook: DataRobotHook, object_server: LocalServer, stores: Stores
) -> None:
    conn_id = f"aws_rotating_{secrets.token_hex(3)}"
    old_secret, new_secret, token = secrets.token_hex(16), secrets.token_hex(16), secrets.token_hex(24)
    set_connection(monkeypatch, conn_id, {"conn_type": "aws", "login": "AKIAOLD", "password": old_secret})
    first = credential_for_connection(hook, "aws", conn_id)
    connection = {
        "conn_type": "aws",
        "login": "AKIANEW",
        "password": new_secret,
        "extra": {"aws_session_token": token, "endpoint_url": stores.s3.endpoint_url},
    }
    set_connection(monkeypatch, conn_id, connection)
    mapped = map_aws_connection(conn_id)
    rotated = credential_for_connection(hook, "aws", conn_id)

    assert rotated == first
    assert mapped.fields == {
        "awsAccessKeyId": "AKIANEW",
        "awsSecretAccessKey": new_secret,
        "awsSessionToken": token,
    }
    assert mapped.endpoint_url == stores.s3.endpoint_url
    assert len(named(object_server, managed_name("aws", conn_id))) == 1
    listing = object_server.get("credentials/", limit=1000).text
    for secret in (old_secret, new_secret, token):
        assert secret not in listing


def test_wasb_account_name_and_key_become_a_connection_string(
    monkeypatch: pytest.MonkeyPatch, stores: Stores
) -> None:
    conn_id = f"wasb_key_{secrets.token_hex(3)}"
    set_connection(
        monkeypatch,
        conn_id,
        {
            "conn_type": "wasb",
            "login": stores.azure.account_name,
            "password": stores.azure.account_key,
            "host": stores.azure.blob_endpoint,
        },
    )
    connection_string = map_wasb_connection(conn_id).fields["azureConnectionString"]
    assert f"AccountName={stores.azure.account_name};" in connection_string
    assert f"AccountKey={stores.azure.account_key};" in connection_string
    assert f"BlobEndpoint={stores.azure.blob_endpoint};" in connection_string


def test_gcp_key_from_key_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    key = service_account_key()
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(key))
    conn_id = f"gcp_path_{secrets.token_hex(3)}"
    set_connection(
        monkeypatch, conn_id, {"conn_type": "google_cloud_platform", "extra": {"key_path": str(key_file)}}
    )
    assert map_gcp_connection(conn_id).fields == {"gcpKey": key}


#: (connection, the words the error must contain). ``CONN`` is replaced by the connection id.
BROKEN_CONNECTIONS: dict[str, tuple[str, dict[str, Any] | None, tuple[str, ...]]] = {
    "aws-unknown-conn-id": ("aws", None, ("does not exist",)),
    "aws-no-keys": (
        "aws",
        {"conn_type": "aws", "extra": {"region_name": "us-east-1"}},
        ("login", "password"),
    ),
    "aws-key-without-secret": ("aws", {"conn_type": "aws", "login": "AKIAONLY"}, ("password",)),
    "aws-wrong-type": ("aws", {"conn_type": "wasb", "login": "a", "password": "b"}, ("conn_type", "'aws'")),
    "wasb-unknown-conn-id": ("wasb", None, ("does not exist",)),
    "wasb-no-connection-string": ("wasb", {"conn_type": "wasb", "extra": {}}, ("connection_string",)),
    "wasb-string-without-key": (
        "wasb",
        {"conn_type": "wasb", "extra": {"connection_string": "BlobEndpoint=http://127.0.0.1:1/acct;"}},
        ("AccountKey",),
    ),
    "gcp-unknown-conn-id": ("google_cloud_platform", None, ("does not exist",)),
    "gcp-anonymous": (
        "google_cloud_platform",
        gcp_connection(None) | {"extra": {"is_anonymous": True}},
        ("keyfile_dict", "anonymous"),
    ),
    "gcp-no-key": ("google_cloud_platform", gcp_connection(None), ("keyfile_dict", "key_path")),
    "gcp-key-not-json": (
        "google_cloud_platform",
        {"conn_type": "google_cloud_platform", "extra": {"keyfile_dict": "{not json"}},
        ("keyfile_dict", "not valid JSON"),
    ),
    "gcp-key-without-private-key": (
        "google_cloud_platform",
        {
            "conn_type": "google_cloud_platform",
            "extra": {
                "keyfile_dict": json.dumps(
                    {"type": "service_account", "project_id": "p", "client_email": "e@p"}
                )
            },
        },
        ("keyfile_dict", "private_key"),
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_CONNECTIONS))
def test_broken_connection_errors_name_the_connection_and_the_field(
    case: str, monkeypatch: pytest.MonkeyPatch, hook: DataRobotHook, object_server: LocalServer
) -> None:
    conn_type, connection, words = BROKEN_CONNECTIONS[case]
    conn_id = f"broken_{case.replace('-', '_')}_{secrets.token_hex(3)}"
    if connection is not None:
        set_connection(monkeypatch, conn_id, connection)
    with pytest.raises(DataRobotConnectionError) as caught:
        credential_for_connection(hook, conn_type, conn_id)
    message = str(caught.value)
    assert repr(conn_id) in message
    for word in words:
        assert word in message, message
    assert "AKIAONLY" not in message
    assert named(object_server, managed_name(conn_type, conn_id)) == []


def test_settings_name_a_connection_or_a_credential_object(hook: DataRobotHook, stores: Stores) -> None:
    mapped = resolve_settings_credentials(
        hook, {"type": "s3", "url": "s3://b/k.csv", "aws_conn_id": AWS_CONN_ID}
    )
    assert set(mapped) == {"type", "url", "credential_id", "endpoint_url"}
    assert mapped["endpoint_url"] == stores.s3.endpoint_url
    assert mapped["credential_id"] == credential_for_connection(hook, "aws", AWS_CONN_ID)

    class Credential:  # the official client's Credential object carries credential_id
        credential_id = mapped["credential_id"]

    for form in (Credential(), {"credentialId": mapped["credential_id"]}, mapped["credential_id"]):
        assert credential_id_of(form) == mapped["credential_id"]
        resolved = resolve_settings_credentials(
            hook, {"type": "s3", "url": "s3://b/k.csv", "credential": form}
        )
        assert resolved == {"type": "s3", "url": "s3://b/k.csv", "credential_id": mapped["credential_id"]}

    plain = {"type": "s3", "url": "s3://b/k.csv", "credential_id": "abc"}
    assert resolve_settings_credentials(hook, plain) is plain
    with pytest.raises(DataRobotConnectionError, match="wasb_conn_id maps to a azure credential"):
        resolve_settings_credentials(hook, {"type": "s3", "url": "s3://b/k", "wasb_conn_id": WASB_CONN_ID})
    with pytest.raises(DataRobotConnectionError, match="give only one"):
        resolve_settings_credentials(hook, {**plain, "aws_conn_id": AWS_CONN_ID})


def test_a_dag_run_with_a_broken_connection_fails_naming_it(
    run_dag: Any, stores: Stores, capsys: pytest.CaptureFixture[str], tmp_path: Any, unique_key: Any
) -> None:
    source = stores.put("s3", unique_key("in.csv"), demo_csv(models.DEMO_BINARY_ID, tmp_path / "in.csv", 10))
    target_key = unique_key("out.csv")

    run = run_dag(
        "example_batchpred_s3",
        {
            "deployment_id": models.DEMO_BINARY_ID,
            "source_url": source,
            "destination_url": stores.url("s3", target_key),
            "aws_conn_id": "no_such_aws_connection",
            "format": "csv",
        },
    )

    assert str(getattr(run.state, "value", run.state)) == "failed"
    assert "Airflow connection 'no_such_aws_connection' does not exist" in capsys.readouterr().out
    assert stores.get("s3", target_key) is None


def test_invalid_settings_fail_before_any_credential_is_created(
    hook: DataRobotHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_batchpred.exceptions import DataRobotSettingsError
    from airflow_batchpred.operators.s3 import DataRobotS3BatchPredictionOperator

    conn_id = "aws_order_check"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "aws", "login": "AKIAORDERCHECK", "password": "order-check-secret"}),
    )
    operator = DataRobotS3BatchPredictionOperator(
        task_id="bad_settings",
        deployment_id="64f0a1d3e5b7c9d1e3f50001",
        source_url="s3://bucket/in.csv",
        destination_url="s3://bucket/out.csv",
        aws_conn_id=conn_id,
        max_explanations=1000,
    )
    with pytest.raises(DataRobotSettingsError, match="max_explanations"):
        operator.execute({})  # type: ignore[arg-type]
    listed = hook.request("GET", "credentials/", params={"limit": 1000}, what="List credentials").json()
    assert not [c["name"] for c in listed["data"] if conn_id in c["name"]]
