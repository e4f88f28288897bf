"""Fixtures of the security tests: a server of the module alone, started without retraining."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from security_helpers import server_with_models_of

from support import LocalServer


@pytest.fixture(scope="module")
def own_server(local_server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    server = server_with_models_of(local_server, tmp_path_factory.mktemp("own") / "data").start()
    try:
        yield server
    finally:
        server.stop()
