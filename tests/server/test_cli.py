"""The ``batchpred-server`` command: listening line, generated token, ``token`` subcommand."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from airflow_batchpred.server.cli import main
from airflow_batchpred.server.models import DEMO_REGRESSION_ID

from support import free_port, wait_for_http


def serve(
    data_dir: Path, port: int, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_batchpred.server",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


def stop(process: subprocess.Popen[bytes]) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=30)
    return output.decode(errors="replace")


def test_serve_without_token_generates_one_and_token_prints_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    process = serve(data_dir, port)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/v2/version/", process=process)
        token = subprocess.run(
            [sys.executable, "-m", "airflow_batchpred.server", "token", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        deployments = requests.get(
            f"http://127.0.0.1:{port}/api/v2/deployments/",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    finally:
        output = stop(process)

    assert deployments.status_code == 200
    assert deployments.json()["totalCount"] == 3
    assert f"batchpred-server listening on http://127.0.0.1:{port}/api/v2" in output
    assert str(data_dir / "api-token") in output
    assert token not in output
    assert (data_dir / "api-token").stat().st_mode & 0o077 == 0


def test_given_token_is_never_printed(tmp_path: Path) -> None:
    port = free_port()
    token = "given-token-" + str(time.time_ns())
    process = serve(tmp_path / "data", port, "--token", token)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/v2/version/", process=process)
    finally:
        output = stop(process)

    assert "listening on" in output
    assert DEMO_REGRESSION_ID in output
    assert token not in output


def test_token_command_without_a_stored_token_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "--data-dir", str(tmp_path)]) == 1
    assert "No token stored" in capsys.readouterr().err


def test_environment_settings_and_loopback_unless_host_is_explicit(tmp_path: Path) -> None:
    port = free_port()
    env = {"BATCHPRED_HOST": "0.0.0.0", "BATCHPRED_TOKENS": "env-token-1,env-token-2"}
    process = serve(tmp_path / "data", port, env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/v2/version/", process=process)
        second = requests.get(
            f"http://127.0.0.1:{port}/api/v2/deployments/",
            headers={"Authorization": "Token env-token-2"},
            timeout=30,
        )
    finally:
        output = stop(process)

    assert second.status_code == 200
    assert f"listening on http://127.0.0.1:{port}/api/v2" in output
    assert "Ignoring BATCHPRED_HOST=0.0.0.0" in output
    assert not (tmp_path / "data" / "api-token").exists()
