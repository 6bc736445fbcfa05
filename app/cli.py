"""The samverkan command: serve, migrate, create-admin, demo, audit verify|checkpoint,
retention plan|run, worker, version."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import structlog
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.se import orgnr
from tqdm import tqdm

from app import __version__, bootstrap
from app.audit import service as audit_service
from app.audit.checkpoints import Checkpoint, CheckpointSigner
from app.audit.schemas import CheckpointRead, VerifyRead
from app.config import Environment, Settings, get_settings
from app.db import Database
from app.errors import Conflict
from app.logging import configure_logging
from app.migrate import head_revisions, reset, upgrade
from app.policy.engine import PolicyEngine
from app.retention import lock as retention_lock
from app.retention import service as retention_service
from app.retention.rules import RetentionRules
from app.security import TokenService
from app.users.schemas import UserCreate
from app.webhooks import worker as webhook_worker

T = TypeVar("T")

log = structlog.get_logger("app.cli")


def _migrate(_: argparse.Namespace) -> int:
    """Each revision applied is a line on stderr at a terminal (counts as it goes); off a
    terminal only warnings reach stderr, and stdout carries one JSON line of the result."""
    settings = get_settings()
    at_terminal = sys.stderr.isatty()
    configure_logging(
        level=settings.log_level if at_terminal else "WARNING",
        fmt=settings.effective_log_format,
    )
    upgrade(settings.database_url)
    log.info("database migrated to head")
    sys.stdout.write(json.dumps({"ok": True, "head": sorted(head_revisions())}) + "\n")
    return 0


def _serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.effective_log_format)
    if settings.is_sqlite:
        # The embedded default needs nothing else: bring the file to the newest schema.
        # On PostgreSQL migrations are a deployment step, run by a privileged role.
        upgrade(settings.database_url)
    return _run_server(args, settings)


def _run_server(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn  # noqa: PLC0415 - only the serving commands need the server

    # Load (in dev: generate) the signing keys once, before workers start, so that
    # every worker signs with the same key.
    TokenService(settings)
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
        # Forwarded headers are trusted only from SAMVERKAN_TRUSTED_PROXIES, by the app
        # itself (app.main); uvicorn's default trusts them from 127.0.0.1.
        proxy_headers=False,
        server_header=False,
    )
    return 0


async def _with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    database = Database.from_settings(settings)
    try:
        async with database.sessionmaker() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await database.dispose()


def _create_admin(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(level="WARNING", fmt=settings.effective_log_format)
    password = os.environ.get("SAMVERKAN_ADMIN_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            sys.stderr.write("samverkan: set SAMVERKAN_ADMIN_PASSWORD or run interactively\n")
            return 2
        password = getpass.getpass("Password for the new administrator: ")
        if password != getpass.getpass("Again: "):
            sys.stderr.write("samverkan: the passwords differ; nothing was changed\n")
            return 2
    try:
        create = UserCreate.model_validate(
            {
                "username": args.username,
                "display_name": "Administrator",
                "agency_id": uuid.uuid4(),
                "roles": ["admin"],
                "password": password,
            }
        )
        number = None if args.organisation_number is None else _orgnr(args.organisation_number)
    except (ValidationError, ValueError) as exc:
        sys.stderr.write(f"samverkan: {_first_error(exc)}; nothing was changed\n")
        return 2
    if settings.is_sqlite:
        upgrade(settings.database_url)
    try:
        user = asyncio.run(
            _with_session(
                settings,
                lambda session: bootstrap.create_admin(
                    session,
                    username=create.username,
                    password=create.password or password,
                    organisation_number=number,
                ),
            )
        )
    except Conflict as exc:
        sys.stderr.write(f"samverkan: {exc.detail}\n")
        return 1
    sys.stdout.write(f"created administrator {user.username} ({user.id})\n")
    return 0


def _orgnr(value: str) -> str:
    try:
        return str(orgnr.validate(value))
    except StdnumError:
        raise ValueError("--organisation-number is not a valid organisationsnummer") from None


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors(include_url=False, include_input=False)[0]
        return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
    return str(exc)


def _demo(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.effective_log_format)
    if settings.env is Environment.PROD:
        sys.stderr.write("samverkan: demo data is refused in prod\n")
        return 2
    if args.reset:
        if not _confirm_reset(args, settings):
            return 2
        reset(settings.database_url)
    elif settings.is_sqlite:
        upgrade(settings.database_url)
    seed = asyncio.run(_with_session(settings, bootstrap.seed_demo))
    width = max(len(login.username) for login in seed.logins)
    lines = ["", "Demo logins (passwords are new on every run):"]
    lines += [
        f"  {login.username:<{width}}  {login.password}  {login.roles:<22} {login.agency}"
        for login in seed.logins
    ]
    lines += [
        "",
        f"Demo case:       {seed.case_id}",
        f"Demo individual: {seed.individual_id} (test person {bootstrap.DEMO_PERSONAL_NUMBER})",
        f"  POST http://{args.host}:{args.port}/api/v1/auth/token",
        "",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return _run_server(args, settings)


def _confirm_reset(args: argparse.Namespace, settings: Settings) -> bool:
    """``--reset`` deletes every record: asked for at a terminal, or given with ``--yes``."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        sys.stderr.write("samverkan: demo --reset deletes every record; add --yes to confirm\n")
        return False
    where = make_url(settings.database_url).render_as_string(hide_password=True)
    answer = input(f"Delete every record in {where} and seed the demo again? Type yes: ")
    return answer.strip().lower() == "yes"


@contextmanager
def _progress(unit: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr when it is a terminal (tqdm); silent otherwise, so that a
    script or cron reads nothing but the JSON on stdout."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    with tqdm(unit=f" {unit}", unit_scale=True, file=sys.stderr, leave=False) as bar:

        def tell(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        yield tell


def _read_checkpoints(path: Path) -> list[Checkpoint]:
    """Checkpoints kept elsewhere, one JSON object a line (as ``audit checkpoint`` prints)."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = CheckpointRead.model_validate_json(line)
            found.append(Checkpoint(item.seq, item.hash, item.at, item.signature, item.key_id))
    return found


def _audit_verify(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(level="WARNING", fmt=settings.effective_log_format)
    kept = _read_checkpoints(args.checkpoints) if args.checkpoints else []

    async def run() -> VerifyRead:
        database = Database.from_settings(settings)
        try:
            async with database.engine.connect() as connection:
                with _progress("records") as tell:
                    return await audit_service.verify_all(
                        connection,
                        CheckpointSigner(settings),
                        kept,
                        jobs=settings.audit_verify_jobs,
                        progress=tell,
                    )
        finally:
            await database.dispose()

    result = asyncio.run(run())
    sys.stdout.write(result.model_dump_json() + "\n")
    return 0 if result.ok else 1


def _worker(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.effective_log_format)
    if settings.is_sqlite:  # as serve does: the embedded default migrates itself
        upgrade(settings.database_url)
    asyncio.run(webhook_worker.run(settings, once=args.once))
    return 0


def _audit_checkpoint(_: argparse.Namespace) -> int:
    """For cron: sign the head now; print the checkpoint as one JSON line to ship away."""
    settings = get_settings()
    configure_logging(level="WARNING", fmt=settings.effective_log_format)

    async def run() -> CheckpointRead:
        database = Database.from_settings(settings)
        try:
            async with database.sessionmaker() as session:
                made = await audit_service.create_checkpoint(
                    session, None, CheckpointSigner(settings)
                )
                await session.commit()
                return made
        finally:
            await database.dispose()

    sys.stdout.write(asyncio.run(run()).model_dump_json() + "\n")
    return 0


def _retention_rules() -> RetentionRules:
    rules = PolicyEngine().reference.retention  # validated as at start-up
    assert rules is not None
    return rules


def _retention_plan(_: argparse.Namespace) -> int:
    """What a run would cull now and why, as JSON (counts, rule ids, agencies; no personal
    data)."""
    settings = get_settings()
    configure_logging(level="WARNING", fmt=settings.effective_log_format)
    rules = _retention_rules()

    async def run() -> dict[str, object]:
        database = Database.from_settings(settings)
        try:
            async with database.engine.connect() as connection:
                return await retention_service.plan(connection, rules, datetime.now(UTC))
        finally:
            await database.dispose()

    sys.stdout.write(json.dumps(asyncio.run(run()), indent=2, ensure_ascii=False) + "\n")
    return 0


def _retention_run(args: argparse.Namespace) -> int:
    """Cull what is due, a batch per transaction; a progress bar at a terminal, one JSON
    line of what was culled on stdout. Exits 4 while another run holds the lock."""
    settings = get_settings()
    configure_logging(level="WARNING", fmt=settings.effective_log_format)
    if settings.is_sqlite:
        upgrade(settings.database_url)
    rules = _retention_rules()
    signer = CheckpointSigner(settings)

    async def run() -> retention_service.RunResult:
        database = Database.from_settings(settings)
        try:
            async with retention_lock.held(database.engine):
                total = 0
                if sys.stderr.isatty():  # the bar's length; a cron job is spared the counting
                    async with database.engine.connect() as connection:
                        due = await retention_service.plan(connection, rules, datetime.now(UTC))
                    total = sum(int(kind["due"]) for kind in due["kinds"].values())
                with _progress("records") as tell:
                    return await retention_service.run(
                        database.sessionmaker,
                        rules,
                        signer,
                        datetime.now(UTC),
                        batch_size=args.batch_size,
                        audit_batch_size=args.audit_batch_size,
                        tell=lambda _kind, done: tell(done, max(total, done)),
                    )
        finally:
            await database.dispose()

    try:
        result = asyncio.run(run())
    except retention_lock.RunInProgress:
        sys.stderr.write(
            "samverkan: another retention run holds the lock; nothing was culled. "
            "Wait for it to finish (or for its process to end) and run again.\n"
        )
        return 4
    sys.stdout.write(json.dumps(result.as_json()) + "\n")
    return 0


def _version(_: argparse.Namespace) -> int:
    sys.stdout.write(f"samverkan {__version__}\n")
    return 0


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--reload", action="store_true", help="restart on code changes (dev)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="samverkan",
        description="Samverkan: case coordination with consent-gated sharing and a "
        "tamper-evident audit log. Settings come from SAMVERKAN_* environment variables "
        "(README, Configuration).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API (uvicorn)")
    _server_options(serve)
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database to the newest schema")
    migrate.set_defaults(handler=_migrate)

    admin = commands.add_parser(
        "create-admin",
        help="create the first administrator (password from SAMVERKAN_ADMIN_PASSWORD or a prompt)",
    )
    admin.add_argument("--username", required=True)
    admin.add_argument(
        "--organisation-number",
        help="organisationsnummer of the system agency the administrator belongs to: "
        "required the first time (on a fresh install no agency of kind 'other' exists)",
    )
    admin.set_defaults(handler=_create_admin)

    demo = commands.add_parser("demo", help="seed demo agencies and users, print logins, serve")
    _server_options(demo)
    demo.add_argument(
        "--reset",
        action="store_true",
        help="drop every table and seed the demo again (asks first, unless --yes)",
    )
    demo.add_argument("--yes", action="store_true", help="with --reset: do not ask")
    demo.set_defaults(handler=_demo)

    audit = commands.add_parser("audit", help="audit log tools")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify", help="recompute the hash chain and check it against signed checkpoints"
    )
    verify.add_argument(
        "--checkpoints",
        type=Path,
        help="a file of checkpoints kept elsewhere, one JSON line each (from 'audit checkpoint')",
    )
    verify.set_defaults(handler=_audit_verify)
    checkpoint = audit_commands.add_parser(
        "checkpoint", help="sign the chain's head now and print the checkpoint (for cron)"
    )
    checkpoint.set_defaults(handler=_audit_checkpoint)

    worker = commands.add_parser(
        "worker",
        help="deliver webhooks and emit time-driven events (run next to 'serve'; several "
        "on PostgreSQL, one on SQLite)",
    )
    worker.add_argument("--once", action="store_true", help="one round, then exit")
    worker.set_defaults(handler=_worker)

    retention = commands.add_parser(
        "retention", help="culling (gallring) by policies/retention.yaml (docs/audit.md)"
    )
    retention_commands = retention.add_subparsers(dest="retention_command", required=True)
    retention_commands.add_parser(
        "plan", help="print, as JSON, what a run would cull now and under which rule"
    ).set_defaults(handler=_retention_plan)
    cull = retention_commands.add_parser(
        "run", help="cull what is due, in batches (one transaction each; resumable)"
    )
    cull.add_argument("--batch-size", type=_positive, default=200, help="records per batch")
    cull.add_argument(
        "--audit-batch-size",
        type=_positive,
        default=50_000,
        help="audit records removed per batch (each batch leaves a signed anchor)",
    )
    cull.set_defaults(handler=_retention_run)

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(handler=_version)
    return parser


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _unreachable(exc: BaseException) -> str:
    """One line on a database that cannot be reached: where, and why, without the
    password or a traceback."""
    try:
        url = make_url(get_settings().database_url)
        where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"
        if url.drivername.startswith("sqlite"):
            where = str(url.database)
    except (ValidationError, ArgumentError):
        where = "(invalid SAMVERKAN_DATABASE_URL)"
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
    return f"samverkan: the database at {where} cannot be reached: {reason}\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except (OSError, OperationalError, InterfaceError) as exc:
        sys.stderr.write(_unreachable(exc))
        return 3
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
