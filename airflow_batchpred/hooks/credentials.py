"""Idempotent DataRobot credentials and data stores, named after the Airflow connection they mirror.

Mapping an Airflow connection to DataRobot must not pile up a new credential on every task run,
and must follow the connection when its secret rotates. Both hold if the DataRobot object has a
deterministic name and is looked up by it: found → its secret fields are updated in place
(``PATCH``, same id); missing → created. DataRobot never echoes secrets back, so the update is
unconditional rather than "only when changed".

The connection-type specific mappings (``aws``, ``wasb``, ``google_cloud_platform``, ``postgres``,
``snowflake``) build on :func:`upsert_credential` and :func:`upsert_data_store`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_batchpred.contract import Route

if TYPE_CHECKING:
    from airflow_batchpred.hooks.datarobot import DataRobotHook

#: Every object this provider manages starts with this prefix, so admins can tell them apart.
NAME_PREFIX = "airflow"


def managed_name(conn_type: str, conn_id: str, purpose: str | None = None) -> str:
    """The deterministic DataRobot name for what mirrors Airflow connection ``conn_id``."""
    parts = [NAME_PREFIX, conn_type, conn_id]
    if purpose:
        parts.append(purpose)
    return ":".join(parts)


def find_credential(hook: DataRobotHook, name: str) -> dict[str, Any] | None:
    """The credential called ``name``, or ``None``."""
    for credential in hook.paginate(Route.CREDENTIALS, {"limit": 100}, what="List credentials"):
        if credential.get("name") == name:
            return credential
    return None


def upsert_credential(
    hook: DataRobotHook,
    *,
    name: str,
    credential_type: str,
    secret_fields: Mapping[str, Any],
    description: str = "",
) -> str:
    """Return the id of credential ``name`` holding ``secret_fields``, creating or updating it.

    :param secret_fields: the type's fields in camelCase (``user``/``password``,
        ``awsAccessKeyId``/``awsSecretAccessKey``, ``azureConnectionString``, ``gcpKey`` ...).
    """
    existing = find_credential(hook, name)
    if existing is None:
        body = {"name": name, "credentialType": credential_type, "description": description, **secret_fields}
        created = hook.request(
            "POST", Route.CREDENTIALS, json_body=body, what=f"Create credential {name!r}"
        ).json()
        hook.log.info("Created DataRobot credential %s (%s)", name, created["credentialId"])
        return str(created["credentialId"])
    credential_id = str(existing["credentialId"])
    if existing.get("credentialType") != credential_type:
        raise ValueError(
            f"DataRobot credential {name!r} ({credential_id}) has type {existing.get('credentialType')!r}, "
            f"not {credential_type!r}; delete it or rename the Airflow connection"
        )
    hook.request(
        "PATCH",
        f"{Route.CREDENTIALS}{credential_id}/",
        json_body=dict(secret_fields),
        idempotent=True,
        what=f"Update credential {name!r}",
    )
    hook.log.info("Updated DataRobot credential %s (%s) in place", name, credential_id)
    return credential_id


def upsert_data_store(
    hook: DataRobotHook,
    *,
    canonical_name: str,
    params: Mapping[str, Any],
    data_store_type: str = "jdbc",
) -> str:
    """Return the id of data store ``canonical_name`` with ``params``, creating or updating it."""
    found = next(
        (
            store
            for store in hook.paginate(Route.DATA_STORES, {"type": "all"}, what="List data stores")
            if store.get("canonicalName") == canonical_name
        ),
        None,
    )
    if found is None:
        body = {"type": data_store_type, "canonicalName": canonical_name, "params": dict(params)}
        created = hook.request(
            "POST", Route.DATA_STORES, json_body=body, what=f"Create data store {canonical_name!r}"
        ).json()
        hook.log.info("Created DataRobot data store %s (%s)", canonical_name, created["id"])
        return str(created["id"])
    store_id = str(found["id"])
    if found.get("params") != dict(params):
        hook.request(
            "PATCH",
            f"{Route.DATA_STORES}{store_id}/",
            json_body={"params": dict(params)},
            idempotent=True,
            what=f"Update data store {canonical_name!r}",
        )
        hook.log.info("Updated DataRobot data store %s (%s) in place", canonical_name, store_id)
    return store_id
