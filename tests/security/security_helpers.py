"""Helpers of the security tests (no fixtures here)."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from support import LocalServer


def server_with_models_of(source: LocalServer, data_dir: Path) -> LocalServer:
    """A new server whose data dir starts with a copy of ``source``'s demo models (no training)."""
    shutil.copytree(source.data_dir / "models", data_dir / "models")
    return LocalServer(data_dir=data_dir, token=secrets.token_hex(16))
