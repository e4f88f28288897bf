"""The async connection pool shared per event loop is closed when its loop ends."""

from __future__ import annotations

import os
import subprocess
import sys

from support import LocalServer

POLL_IN_SEVERAL_LOOPS = """
import asyncio, gc
from airflow_batchpred.hooks.datarobot import DataRobotHook

async def poll():
    async with DataRobotHook() as hook:
        return await hook.a_request("GET", "batchPredictions/", what="List jobs")

for _ in range(3):
    assert "data" in asyncio.run(poll())
gc.collect()
print("polled")
"""


def test_pool_of_a_finished_loop_leaves_no_unclosed_connector(local_server: LocalServer) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", POLL_IN_SEVERAL_LOOPS],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "polled" in result.stdout
    assert "Unclosed connector" not in result.stdout + result.stderr
