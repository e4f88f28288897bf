"""The distribution registers as an Airflow provider, cheaply and with its connection form."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

from airflow_batchpred.get_provider_info import get_provider_info

DISTRIBUTION = "airflow-provider-batchpred"


def _airflow(*args: str) -> subprocess.CompletedProcess[str]:
    airflow = str(Path(sys.executable).with_name("airflow"))
    return subprocess.run(
        [airflow, *args], capture_output=True, text=True, env=os.environ.copy(), timeout=180
    )


def test_package_name_matches_distribution() -> None:
    info = get_provider_info()
    assert info["package-name"] == DISTRIBUTION
    entry_points = importlib.metadata.entry_points(group="apache_airflow_provider")
    targets = {ep.value for ep in entry_points if ep.dist and ep.dist.name == DISTRIBUTION}
    assert targets == {"airflow_batchpred.get_provider_info:get_provider_info"}


def test_connection_form_is_declarative() -> None:
    (conn_type,) = get_provider_info()["connection-types"]
    assert conn_type["connection-type"] == "datarobot"
    assert conn_type["hook-name"] == "DataRobot"
    assert "password" in conn_type["ui-field-behaviour"]["relabeling"]
    assert {"endpoint", "timeout_seconds", "verify_ssl"} <= set(conn_type["conn-fields"])


def test_top_level_import_is_cheap() -> None:
    code = (
        "import sys, airflow_batchpred, airflow_batchpred.get_provider_info;"
        "heavy = [m for m in ('airflow', 'requests', 'aiohttp', 'pydantic', 'pyarrow') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_airflow_cli_lists_provider_and_accepts_connection_type(airflow_db: Path) -> None:
    providers = _airflow("providers", "list", "-o", "json")
    assert providers.returncode == 0, providers.stderr
    listed = {row["package_name"]: row for row in json.loads(providers.stdout[providers.stdout.index("[") :])}
    assert listed[DISTRIBUTION]["version"] == importlib.metadata.version(DISTRIBUTION)

    added = _airflow(
        "connections",
        "add",
        "datarobot_cli_check",
        "--conn-type",
        "datarobot",
        "--conn-password",
        "not-a-real-token",
        "--conn-extra",
        '{"endpoint": "http://127.0.0.1:9/api/v2"}',
    )
    assert added.returncode == 0, added.stderr
    assert "not-a-real-token" not in added.stdout + added.stderr
    shown = _airflow("connections", "get", "datarobot_cli_check", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    (conn,) = json.loads(shown.stdout[shown.stdout.index("[") :])
    assert conn["conn_type"] == "datarobot"


def test_provider_info_lists_every_public_module_and_they_import() -> None:
    import importlib
    import pkgutil

    import airflow_batchpred.operators

    info = get_provider_info()
    listed = {
        module
        for kind in ("hooks", "operators", "sensors", "triggers")
        for entry in info[kind]
        for module in entry["python-modules"]
    }
    public_operators = {
        f"airflow_batchpred.operators.{m.name}"
        for m in pkgutil.iter_modules(airflow_batchpred.operators.__path__)
        if not m.name.startswith("_")
    }
    assert public_operators <= listed
    for module in sorted(listed):
        importlib.import_module(module)
    for class_path in [*info["extra-links"], info["connection-types"][0]["hook-class-name"]]:
        module, _, name = class_path.rpartition(".")
        assert getattr(importlib.import_module(module), name)
