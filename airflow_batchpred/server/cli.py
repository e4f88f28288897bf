"""``batchpred-server``: run the local batch-prediction server, or print its stored token.

Examples::

    batchpred-server serve --data-dir ./bp-data            # 127.0.0.1:8080, token generated
    batchpred-server token --data-dir ./bp-data            # print the generated token
    curl -H "Authorization: Bearer $(batchpred-server token --data-dir ./bp-data)" \\
        http://127.0.0.1:8080/api/v2/deployments/
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from airflow_batchpred.server.config import LOOPBACK_HOST, ServerSettings

log = logging.getLogger("airflow_batchpred.server")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchpred-server", description="Local server speaking the DataRobot Batch Prediction API."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument(
        "--host",
        help=f"address to bind (default {LOOPBACK_HOST}; any other address must be given explicitly)",
    )
    serve.add_argument("--port", type=int, help="TCP port (default 8080)")
    serve.add_argument("--data-dir", type=Path, help="directory for the store, uploads, results and models")
    serve.add_argument(
        "--token", action="append", dest="tokens", help="accepted API token (repeatable); generated if none"
    )
    serve.add_argument(
        "--allow-unsafe-models",
        action="store_true",
        default=None,
        help="allow model files that can run code when loaded (pickle)",
    )
    serve.add_argument("--public-url", help="base URL for links (e.g. https://scoring.example.com)")
    serve.add_argument("--max-concurrent-jobs", type=int, help="jobs scored at the same time (default 2)")
    serve.add_argument("--faults", help="fault-injection plan as JSON (see airflow_batchpred.server.faults)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    token = commands.add_parser("token", help="print the token stored in the data dir")
    token.add_argument("--data-dir", type=Path, help="the server's data directory")
    return parser


def _stored_token(settings: ServerSettings) -> str:
    """The token kept in the data dir, created (mode 0600) on first use."""
    path = settings.token_file
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(20)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    return token


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from airflow_batchpred.server.app import create_app

    settings = ServerSettings.from_env().with_overrides(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        tokens=tuple(args.tokens) if args.tokens else None,
        allow_unsafe_models=args.allow_unsafe_models,
        public_base_url=args.public_url.rstrip("/") if args.public_url else None,
        max_concurrent_jobs=args.max_concurrent_jobs,
        faults=json.loads(args.faults) if args.faults else None,
    )
    if settings.host != LOOPBACK_HOST and args.host is None:
        # Only an explicit --host may expose the server beyond this machine.
        log.warning(
            "Ignoring BATCHPRED_HOST=%s: binding an address other than %s needs an explicit --host",
            settings.host,
            LOOPBACK_HOST,
        )
        settings = settings.with_overrides(host=LOOPBACK_HOST)
    if not settings.tokens:
        settings = settings.with_overrides(tokens=(_stored_token(settings),))
        log.info("No --token given: using the token stored in %s", settings.token_file)
    app = create_app(settings)
    services = app.state.services
    for info in services.models.list():
        log.info("Deployment %s: %s (%s, target %s)", info.id, info.label, info.target_type, info.target_name)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        access_log=False,
        # Above the usual 5 s poll interval, so pollers keep their connection between polls.
        timeout_keep_alive=75,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    _announce_when_listening(server, settings)
    server.run()
    return 0


def _announce_when_listening(server: object, settings: ServerSettings) -> None:
    """Print the listening line once uvicorn has bound its socket (the port may be chosen by the OS)."""
    original_startup = server.startup  # type: ignore[attr-defined]

    async def startup(sockets: object = None) -> None:
        await original_startup(sockets=sockets)
        port = settings.port
        servers = getattr(server, "servers", [])
        for listener in servers:
            for sock in listener.sockets:
                port = sock.getsockname()[1]
        print(f"batchpred-server listening on http://{settings.host}:{port}/api/v2", flush=True)

    server.startup = startup  # type: ignore[attr-defined]


def _print_token(args: argparse.Namespace) -> int:
    settings = ServerSettings.from_env().with_overrides(data_dir=args.data_dir)
    if not settings.token_file.exists():
        print(
            f"No token stored in {settings.data_dir}; start the server once without --token.", file=sys.stderr
        )
        return 1
    print(settings.token_file.read_text().strip())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "info").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "serve":
        return _serve(args)
    return _print_token(args)


if __name__ == "__main__":
    sys.exit(main())
