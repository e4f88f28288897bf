"""DataRobot credentials mirrored from Airflow's ``aws``, ``wasb`` and ``google_cloud_platform``
connections.

DAG authors keep cloud secrets in Airflow connections; a batch prediction job needs them as a
DataRobot credential (``s3``, ``azure``, ``gcp``). :func:`credential_for_connection` reads the
connection **through the Apache provider's own hook** (``AwsBaseHook``, ``WasbHook``,
``GoogleBaseHook``, so every form those hooks accept is read the way they read it), then gets or
creates the credential named :func:`~airflow_batchpred.hooks.credentials.managed_name` of the
connection: the same connection always maps to the same credential, and a rotated secret
updates it in place.

Settings dicts may name a connection instead of a credential; :func:`resolve_settings_credentials`
replaces ``aws_conn_id`` / ``wasb_conn_id`` / ``gcp_conn_id`` (and the ``credential=`` object form
of the official client) by ``credential_id`` right before the job is submitted::

    intake_settings={"type": "s3", "url": "s3://bucket/in.csv", "aws_conn_id": "aws_default"}

Every secret read is registered with Airflow's secrets masker; no message names a secret value.
The provider packages are imported lazily: install the ``amazon``, ``microsoft-azure`` or
``google`` extra for the connection types you use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_batchpred.contract import CredentialType
from airflow_batchpred.exceptions import DataRobotConnectionError
from airflow_batchpred.hooks.credentials import managed_name, upsert_credential

if TYPE_CHECKING:
    from airflow_batchpred.hooks.datarobot import DataRobotHook

AWS = "aws"
WASB = "wasb"
GOOGLE_CLOUD = "google_cloud_platform"

#: Settings keys naming an Airflow connection → (connection type, adapter types it serves).
CONNECTION_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "aws_conn_id": (AWS, ("s3",)),
    "wasb_conn_id": (WASB, ("azure",)),
    "gcp_conn_id": (GOOGLE_CLOUD, ("gcp",)),
}
_CONNECTION_KEY_OF_TYPE = {conn_type: key for key, (conn_type, _) in CONNECTION_KEYS.items()}
_CREDENTIAL_TYPES = {AWS: CredentialType.S3, WASB: CredentialType.AZURE, GOOGLE_CLOUD: CredentialType.GCP}
_EXTRAS = {AWS: "amazon", WASB: "microsoft-azure", GOOGLE_CLOUD: "google"}
#: Connection types the Apache hooks accept for each kind (``s3`` is the legacy name of ``aws``).
_ACCEPTED_CONN_TYPES = {
    AWS: ("aws", "s3"),
    WASB: ("wasb",),
    GOOGLE_CLOUD: ("google_cloud_platform", "gcpssh"),
}
_GCP_KEY_FIELDS = ("type", "project_id", "private_key", "client_email")


@dataclass(frozen=True)
class MappedConnection:
    """What a connection maps to: the credential's type and fields, plus non-secret hints.

    :param credential_type: ``s3``, ``azure`` or ``gcp``.
    :param fields: the credential body's fields (camelCase), secrets included: never log them.
    :param endpoint_url: the S3 endpoint the connection names (``endpoint_url`` extra), if any.
    """

    credential_type: str
    fields: dict[str, Any] = field(repr=False)
    endpoint_url: str | None = None


def _mask(*values: Any) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - Airflow without the task SDK
        return
    for value in values:
        if value:
            mask_secret(value if isinstance(value, str) else json.dumps(value))


def _provider(module: str, conn_type: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataRobotConnectionError(
            f"Mapping {conn_type!r} connections needs the Apache provider imported from {module}: "
            f"pip install 'airflow-provider-batchpred[{_EXTRAS[conn_type]}]'"
        ) from None


def _connection(conn_id: str, conn_type: str) -> Any:
    """The Airflow connection, checked to exist and to have the right type."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    if not conn_id or not isinstance(conn_id, str):
        raise DataRobotConnectionError(f"A {conn_type} connection id is required, got {conn_id!r}")
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise DataRobotConnectionError(
            f"Airflow connection {conn_id!r} does not exist: create a {conn_type!r} connection with "
            f"that id (or fix the conn id)"
        ) from None
    accepted = _ACCEPTED_CONN_TYPES[conn_type]
    if conn.conn_type not in accepted:
        raise DataRobotConnectionError(
            f"Airflow connection {conn_id!r} has conn_type {conn.conn_type!r}; it must be "
            f"{accepted[0]!r} to map it to a DataRobot {_CREDENTIAL_TYPES[conn_type].value} credential"
        )
    return conn


# ---------------------------------------------------------------------------------------------
# One mapping per connection type
# ---------------------------------------------------------------------------------------------


def map_aws_connection(conn_id: str) -> MappedConnection:
    """An ``s3`` credential from an ``aws`` connection, read through ``AwsBaseHook``.

    Static keys (login/password or the ``aws_access_key_id`` extra) and a session token
    (``aws_session_token`` extra) are taken as they are; a connection with ``role_arn`` or
    ``profile_name`` yields the temporary keys that boto resolves for it (with their token).
    """
    _connection(conn_id, AWS)
    base_aws = _provider("airflow.providers.amazon.aws.hooks.base_aws", AWS)
    hook = base_aws.AwsBaseHook(aws_conn_id=conn_id, client_type="s3")
    config = hook.conn_config
    has_keys = bool(config.aws_access_key_id)
    if has_keys and not config.aws_secret_access_key:
        raise DataRobotConnectionError(
            f"Airflow connection {conn_id!r} has an AWS access key id but no secret: set its password "
            "(AWS Secret Access Key)"
        )
    if not has_keys and not (config.role_arn or config.profile_name):
        raise DataRobotConnectionError(
            f"Airflow connection {conn_id!r} has no AWS keys to copy into a DataRobot credential: set "
            "its login (AWS Access Key ID) and password (AWS Secret Access Key), or a role_arn extra"
        )
    try:
        credentials = hook.get_credentials()
    except Exception as exc:
        raise DataRobotConnectionError(
            f"Airflow connection {conn_id!r}: AWS credentials could not be resolved ({type(exc).__name__}); "
            "check its keys, role_arn or profile_name"
        ) from None
    if not credentials or not credentials.access_key or not credentials.secret_key:
        raise DataRobotConnectionError(
            f"Airflow connection {conn_id!r} resolved to no AWS keys: set its login and password"
        )
    _mask(credentials.secret_key, credentials.token)
    fields = {"awsAccessKeyId": credentials.access_key, "awsSecretAccessKey": credentials.secret_key}
    if credentials.token:
        fields["awsSessionToken"] = credentials.token
    endpoint = None
    get_endpoint = getattr(config, "get_service_endpoint_url", None)
    if callable(get_endpoint):
        endpoint = get_endpoint("s3")
    return MappedConnection(CredentialType.S3.value, fields, endpoint or config.endpoint_url or None)


def _account_key_connection_string(account: str, key: str, host: str | None) -> str:
    if host and "://" in host:
        return f"AccountName={account};AccountKey={key};BlobEndpoint={host.rstrip('/')};"
    return (
        f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};"
        "EndpointSuffix=core.windows.net"
    )


def map_wasb_connection(conn_id: str) -> MappedConnection:
    """An ``azure`` credential (a connection string) from a ``wasb`` connection, via ``WasbHook``.

    Accepted forms: the ``connection_string`` extra; login (account name) + password (account
    key), with ``host`` as the blob endpoint when it is a URL; ``shared_access_key``; ``sas_token``.
    Service-principal and managed-identity connections hold no connection string: DataRobot's
    ``azure`` credential cannot express them.
    """
    conn = _connection(conn_id, WASB)
    wasb = _provider("airflow.providers.microsoft.azure.hooks.wasb", WASB)
    hook = wasb.WasbHook(wasb_conn_id=conn_id)
    try:
        extra = conn.extra_dejson
    except Exception:
        extra = None
    if not isinstance(extra, Mapping):
        raise DataRobotConnectionError(f"Airflow connection {conn_id!r}: its extra is not a JSON object")
    connection_string = hook._get_field(extra, "connection_string")
    account = conn.login
    if not connection_string:
        shared_key = hook._get_field(extra, "shared_access_key") or conn.password
        sas_token = hook._get_field(extra, "sas_token")
        if account and shared_key and not hook._get_field(extra, "tenant_id"):
            connection_string = _account_key_connection_string(account, shared_key, conn.host)
        elif sas_token:
            if sas_token.startswith("http"):
                endpoint, _, token = sas_token.partition("?")
            else:
                endpoint, token = f"https://{account}.blob.core.windows.net", sas_token
            connection_string = f"BlobEndpoint={endpoint};SharedAccessSignature={token.lstrip('?')}"
    if not connection_string:
        raise DataRobotConnectionError(
            f"Airflow connection {conn_id!r} holds no Azure connection string: set its "
            "connection_string extra (or login = account name and password = account key)"
        )
    if "AccountKey=" not in connection_string and "SharedAccessSignature=" not in connection_string:
        raise DataRobotConnectionError(
            f"Airflow connection {conn_id!r}: its connection_string has neither AccountKey nor "
            "SharedAccessSignature; give a full storage account connection string"
        )
    _mask(connection_string, *_connection_string_secrets(connection_string))
    return MappedConnection(CredentialType.AZURE.value, {"azureConnectionString": connection_string})


def _connection_string_secrets(connection_string: str) -> list[str]:
    parts = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    return [parts[name] for name in ("AccountKey", "SharedAccessSignature") if parts.get(name)]


def map_gcp_connection(conn_id: str) -> MappedConnection:
    """A ``gcp`` credential (service-account key JSON) from a ``google_cloud_platform`` connection.

    The key comes from ``GoogleBaseHook``'s ``keyfile_dict`` (JSON text or object) or
    ``key_path`` (a JSON key file) fields.
    """
    _connection(conn_id, GOOGLE_CLOUD)
    base_google = _provider("airflow.providers.google.common.hooks.base_google", GOOGLE_CLOUD)
    hook = base_google.GoogleBaseHook(gcp_conn_id=conn_id)
    keyfile_dict = hook._get_field("keyfile_dict", None)
    key_path = hook._get_field("key_path", None)
    if keyfile_dict and key_path:
        raise DataRobotConnectionError(
            f"Airflow connection {conn_id!r} sets both keyfile_dict and key_path; keep one"
        )
    if keyfile_dict:
        source = "keyfile_dict"
        if isinstance(keyfile_dict, str):
            try:
                key = json.loads(keyfile_dict)
            except ValueError:
                raise DataRobotConnectionError(
                    f"Airflow connection {conn_id!r}: keyfile_dict is not valid JSON; paste the "
                    "service-account key file's content"
                ) from None
        else:
            key = keyfile_dict
    elif key_path:
        source = "key_path"
        if str(key_path).endswith(".p12"):
            raise DataRobotConnectionError(
                f"Airflow connection {conn_id!r}: key_path points at a .p12 key; use a JSON key file"
            )
        try:
            with open(os.path.expanduser(str(key_path)), encoding="utf-8") as handle:
                key = json.load(handle)
        except OSError as exc:
            raise DataRobotConnectionError(
                f"Airflow connection {conn_id!r}: key_path {key_path!r} cannot be read ({exc.strerror})"
            ) from None
        except ValueError:
            raise DataRobotConnectionError(
                f"Airflow connection {conn_id!r}: key_path {key_path!r} is not a JSON key file"
            ) from None
    else:
        anonymous = " (it is anonymous)" if hook._get_field("is_anonymous", None) else ""
        raise DataRobotConnectionError(
            f"Airflow connection {conn_id!r} has no service-account key{anonymous}: set its "
            "keyfile_dict (Keyfile JSON) or key_path extra"
        )
    if not isinstance(key, Mapping):
        raise DataRobotConnectionError(
            f"Airflow connection {conn_id!r}: {source} must hold a JSON object (a service-account key)"
        )
    missing = [name for name in _GCP_KEY_FIELDS if not key.get(name)]
    if missing:
        raise DataRobotConnectionError(
            f"Airflow connection {conn_id!r}: the key in {source} lacks {', '.join(missing)}; use a "
            "service-account key file"
        )
    if key["type"] != "service_account":
        raise DataRobotConnectionError(
            f"Airflow connection {conn_id!r}: the key in {source} has type {key['type']!r}; a DataRobot "
            "gcp credential needs a 'service_account' key"
        )
    _mask(key["private_key"], json.dumps(dict(key)))
    return MappedConnection(CredentialType.GCP.value, {"gcpKey": dict(key)})


_MAPPERS = {AWS: map_aws_connection, WASB: map_wasb_connection, GOOGLE_CLOUD: map_gcp_connection}


def map_connection(conn_type: str, conn_id: str) -> MappedConnection:
    """Read ``conn_id`` (of kind ``aws``, ``wasb`` or ``google_cloud_platform``) into credential fields."""
    try:
        mapper = _MAPPERS[conn_type]
    except KeyError:
        raise DataRobotConnectionError(
            f"Cannot map connection kind {conn_type!r}; use one of {', '.join(_MAPPERS)}"
        ) from None
    return mapper(conn_id)


def credential_for_connection(
    hook: DataRobotHook, conn_type: str, conn_id: str, *, mapped: MappedConnection | None = None
) -> str:
    """Get or create (and refresh) the DataRobot credential mirroring Airflow connection ``conn_id``.

    :param conn_type: ``aws``, ``wasb`` or ``google_cloud_platform``.
    :returns: the credential id (the same for every call with the same connection).
    :raises DataRobotConnectionError: naming the connection and the field to fix.
    """
    mapped = mapped or map_connection(conn_type, conn_id)
    return upsert_credential(
        hook,
        name=managed_name(conn_type, conn_id),
        credential_type=mapped.credential_type,
        secret_fields=mapped.fields,
        description=f"Mirrors Airflow connection {conn_id!r} ({conn_type}); managed by airflow-batchpred",
    )


def credential_id_of(credential: Any) -> str:
    """The id of the official client's ``credential=`` argument: an id string, a dict with
    ``credential_id``/``credentialId``, or an object with a ``credential_id`` attribute."""
    if isinstance(credential, str) and credential:
        return credential
    if isinstance(credential, Mapping):
        found = credential.get("credential_id") or credential.get("credentialId")
    else:
        found = getattr(credential, "credential_id", None) or getattr(credential, "credentialId", None)
    if not found:
        raise ValueError(
            "credential must be a credential id, a dict with 'credential_id', or an object with a "
            f"credential_id attribute (got {type(credential).__name__})"
        )
    return str(found)


def resolve_settings_credentials(
    hook: DataRobotHook | None, settings: Any, *, map_connections: bool = True
) -> Any:
    """Replace a connection id (or a ``credential`` object) in intake/output settings by ``credential_id``.

    Settings without those keys (and contract models) are returned unchanged, as the same object.

    :param hook: the DataRobot hook used to upsert the credential.
    :param map_connections: ``False`` only drops the connection keys (after the job was submitted,
        when the settings are needed for bookkeeping alone), without reading anything.
    """
    if not isinstance(settings, Mapping):
        return settings
    present = [key for key in (*CONNECTION_KEYS, "credential") if settings.get(key) is not None]
    if not present:
        return settings
    data = {key: value for key, value in settings.items() if key not in (*CONNECTION_KEYS, "credential")}
    adapter_type = str(data.get("type", "localFile"))
    explicit = data.get("credential_id") or data.get("credentialId")
    if len(present) > 1 or (explicit and present):
        named = ["credential_id"] * bool(explicit) + present
        raise DataRobotConnectionError(
            f"{adapter_type} settings name several credentials ({', '.join(named)}); give only one"
        )
    key = present[0]
    if key == "credential":
        data["credential_id"] = credential_id_of(settings["credential"])
        return data
    conn_type, adapter_types = CONNECTION_KEYS[key]
    if adapter_type not in adapter_types:
        raise DataRobotConnectionError(
            f"{key} maps to a {_CREDENTIAL_TYPES[conn_type].value} credential, which a {adapter_type!r} "
            f"intake/output cannot use; use it with type {adapter_types[0]!r}"
        )
    if not map_connections:
        return data
    if hook is None:
        raise DataRobotConnectionError(f"a DataRobot hook is needed to map {key}={settings[key]!r}")
    mapped = map_connection(conn_type, str(settings[key]))
    data["credential_id"] = credential_for_connection(hook, conn_type, str(settings[key]), mapped=mapped)
    if conn_type == AWS and mapped.endpoint_url and not (data.get("endpoint_url") or data.get("endpointUrl")):
        data["endpoint_url"] = mapped.endpoint_url
    return data


def connection_key_for(conn_type: str) -> str:
    """The settings key that names a connection of ``conn_type`` (``aws`` → ``aws_conn_id``)."""
    return _CONNECTION_KEY_OF_TYPE[conn_type]
