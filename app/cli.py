"""The ``samverkan`` command: serve, migrate, version."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence

import structlog
from pydantic import ValidationError

from app import __version__
from app.config import get_settings
from app.logging import configure_logging
from app.migrate import upgrade

log = structlog.get_logger("app.cli")


def _migrate(_: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.effective_log_format)
    upgrade(settings.database_url)
    log.info("database migrated to head")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - only this command needs the server

    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.effective_log_format)
    if settings.is_sqlite:
        # The embedded default needs nothing else: bring the file to the newest schema.
        # On PostgreSQL migrations are a deployment step, run by a privileged role.
        upgrade(settings.database_url)
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="samverkan-metrics-")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=None if args.reload else args.workers,
        reload=args.reload,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
    )
    return 0


def _version(_: argparse.Namespace) -> int:
    sys.stdout.write(f"samverkan {__version__}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samverkan", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--reload", action="store_true", help="restart on code changes (dev)")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database to the newest schema")
    migrate.set_defaults(handler=_migrate)

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(handler=_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except ValidationError as exc:
        # Invalid settings: say what is wrong without a traceback, and without echoing
        # the values (a database URL carries a password).
        for error in exc.errors(include_url=False, include_input=False):
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            sys.stderr.write(f"samverkan: invalid configuration ({field}): {error['msg']}\n")
        return 2
    return result


if __name__ == "__main__":
    raise SystemExit(main())
