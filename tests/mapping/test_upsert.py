"""Idempotent credentials and data stores against the local server."""

from __future__ import annotations

import secrets

import pytest

from airflow_batchpred.hooks.credentials import managed_name, upsert_credential, upsert_data_store
from airflow_batchpred.hooks.datarobot import DataRobotHook

from support import LocalServer


@pytest.fixture
def hook(local_server: LocalServer) -> DataRobotHook:
    return DataRobotHook()


def _named(server: LocalServer, name: str) -> list[dict]:
    return [c for c in server.get("credentials/", limit=1000).json()["data"] if c["name"] == name]


def test_same_credential_twice_gives_one_credential(hook: DataRobotHook, local_server: LocalServer) -> None:
    name = managed_name("aws", f"conn_{secrets.token_hex(4)}")
    fields = {"awsAccessKeyId": "AKIAEXAMPLE", "awsSecretAccessKey": secrets.token_hex(16)}
    first = upsert_credential(hook, name=name, credential_type="s3", secret_fields=fields)
    second = upsert_credential(hook, name=name, credential_type="s3", secret_fields=fields)
    assert first == second
    assert [c["credentialId"] for c in _named(local_server, name)] == [first]


def test_rotated_secret_updates_in_place(hook: DataRobotHook, local_server: LocalServer) -> None:
    name = managed_name("postgres", f"conn_{secrets.token_hex(4)}")
    first = upsert_credential(
        hook, name=name, credential_type="basic", secret_fields={"user": "u", "password": "old-secret"}
    )
    rotated = upsert_credential(
        hook, name=name, credential_type="basic", secret_fields={"user": "u", "password": "new-secret"}
    )
    assert rotated == first
    assert len(_named(local_server, name)) == 1
    listing = local_server.get("credentials/", limit=1000).text
    assert "old-secret" not in listing
    assert "new-secret" not in listing


def test_type_clash_names_the_credential(hook: DataRobotHook) -> None:
    name = managed_name("wasb", f"conn_{secrets.token_hex(4)}")
    upsert_credential(hook, name=name, credential_type="azure", secret_fields={"azureConnectionString": "x"})
    with pytest.raises(ValueError, match=name):
        upsert_credential(hook, name=name, credential_type="s3", secret_fields={"awsAccessKeyId": "a"})


def test_data_store_upsert_is_idempotent_and_follows_params(
    hook: DataRobotHook, local_server: LocalServer
) -> None:
    name = managed_name("postgres", f"conn_{secrets.token_hex(4)}")
    params = {"driverId": "postgres", "jdbcUrl": "jdbc:postgresql://127.0.0.1:5432/db"}
    first = upsert_data_store(hook, canonical_name=name, params=params)
    assert upsert_data_store(hook, canonical_name=name, params=params) == first
    moved = {**params, "jdbcUrl": "jdbc:postgresql://127.0.0.1:6543/db"}
    assert upsert_data_store(hook, canonical_name=name, params=moved) == first
    stored = local_server.get(f"externalDataStores/{first}/").json()
    assert stored["params"]["jdbcUrl"] == moved["jdbcUrl"]
    same_name = [
        s for s in local_server.get("externalDataStores/").json()["data"] if s["canonicalName"] == name
    ]
    assert len(same_name) == 1
