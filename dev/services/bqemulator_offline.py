"""Start ``bqemulator`` without downloading DuckDB extensions (this machine is offline).

At start-up bqemulator's ``DuckDBEngine`` runs ``INSTALL spatial`` / ``LOAD spatial`` and aborts
when the extension cannot be downloaded; it also tries ``INSTALL avro`` (best effort, but each
download attempt costs seconds). This wrapper replaces those two start-up hooks with local-only
loads: an extension already in DuckDB's extension directory is loaded, a missing one is logged and
skipped. Without ``spatial`` GEOGRAPHY columns and ``ST_*`` functions fail at query time; without
``avro`` Avro load/extract jobs report "unsupported". Everything else behaves as upstream.

Run it with the emulator venv's interpreter and the emulator's own CLI arguments::

    .services/bqemulator-venv/bin/python dev/services/bqemulator_offline.py start --rest-port 9050
"""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger("bqemulator_offline")


def _load_local_only(engine: Any, extension: str) -> bool:
    """``LOAD`` an extension from the local extension directory; never download it."""
    connection = engine._connection
    if connection is None:
        raise RuntimeError("DuckDB engine not started")
    try:
        connection.execute(f"LOAD {extension}")
    except Exception as exc:  # duckdb raises IOException; any failure means "not available"
        log.warning("DuckDB extension %s not available offline, continuing without it: %s", extension, exc)
        return False
    return True


def patch_engine() -> None:
    """Make the engine's extension loading local-only and non-fatal."""
    from bqemulator.storage import engine

    def _load_spatial(self: Any) -> None:
        _load_local_only(self, "spatial")

    def _load_format_extensions(self: Any) -> None:
        _load_local_only(self, "avro")

    engine.DuckDBEngine._load_spatial = _load_spatial  # type: ignore[method-assign]
    engine.DuckDBEngine._load_format_extensions = _load_format_extensions  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    """Patch the engine, then hand over to bqemulator's own click CLI."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    patch_engine()
    from bqemulator.cli import main as cli_main

    cli_main.main(args=argv if argv is not None else sys.argv[1:], prog_name="bqemulator")


if __name__ == "__main__":
    main()
