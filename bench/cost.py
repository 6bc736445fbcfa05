"""What a read costs: CPU per step of ``GET /entries/{id}`` (or, with ``--page``, of
``GET /cases/{id}/entries?limit=20``; with ``--write``, of ``POST /cases/{id}/entries`` as
social services), in process.

    python bench/cost.py DATABASE_URL SEED_JSON [--reads 500] [--page | --write]

Against a population seeded by bench/seed.py (bench/run leaves none behind; seed one with
the commands in docs/performance.md). The app is called in this process through ASGI,
one request at a time (no HTTP client, no server, no other request in flight): the
process's CPU time around each step of the read is that step's cost, and the total per
read is the app's whole cost of the request, framework included. PostgreSQL's share (its
processes' CPU over the same reads) is reported beside it. The steps are found by
wrapping the functions that do them; the table says what each is for
(docs/performance.md, "What a read costs").
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import inspect
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPENT: Counter[str] = Counter()
CALLS: Counter[str] = Counter()

# (module, attribute, step) in the order a read takes them
STEPS = [
    ("app.security", "TokenService.decode", "token: signature and claims"),
    ("app.auth.service", "load_actor", "caller: live sign-in and account (+ BEGIN)"),
    ("app.policy.reads", "row_for_reading", "the entry row"),
    ("app.policy.reads", "_row_to_read", "the entry row"),  # its name before 2026-12-02
    ("sqlalchemy.ext.asyncio.session", "AsyncSession.get", "the entry row"),  # before d87672d
    ("app.individuals.service", "facts_of", "facts: individual, cases, agencies"),
    # a read's facts and grounds in one statement (since 2026-12-02's fourth round)
    ("app.individuals.service", "facts_and_grounds", "facts and grounds, one statement"),
    ("app.policy.reads", "grounds_for", "grounds: consents and grants"),
    # the row with its facts and grounds in one statement (since 2026-12-03's seventh round)
    ("app.individuals.service", "read_beside", "the row, facts and grounds, one statement"),
    ("app.cases.service", "case_facts", "facts: individual, cases, agencies"),  # a page's
    ("app.policy.enforce", "decide", "decision (Cedar)"),
    ("app.policy.enforce", "decide_each", "decision (Cedar)"),
    ("app.policy.enforce", "require_to_see_and", "decision (Cedar)"),  # a change's
    ("app.agencies.service", "kind_of", "the writer's agency kind"),
    ("app.events.service", "emit_about", "the change's event"),
    ("app.audit.writer", "append", "audit: flags, chained append"),  # a change's
    ("app.policy.reads", "_page_rows", "the page's rows"),
    ("app.entries.service", "_to_reads", "versions and the answer's model"),
    ("app.audit.writer", "write_deferred", "audit: flags, chained append"),
    ("sqlalchemy.ext.asyncio.session", "AsyncSession.commit", "COMMIT"),
    ("app.middleware", "_log_access", "access log line"),
]


def _postgres_cpu_seconds() -> float:
    """CPU time of every PostgreSQL process on this machine so far (the bench's server is
    local), from /proc; 0 where there is none to see."""
    tick = os.sysconf("SC_CLK_TCK")
    spent = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        name, _, rest = text.partition(") ")
        if name.endswith("(postgres"):
            fields = rest.split()
            spent += int(fields[11]) + int(fields[12])  # utime, stime
    return spent / tick


def _wrap(module_name: str, attribute: str, step: str) -> None:
    owner: Any = importlib.import_module(module_name)
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part)
    function: Callable[..., Any] = getattr(owner, name)

    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return await function(*args, **kwargs)
            finally:
                SPENT[step] += time.process_time() - started
                CALLS[step] += 1

    else:

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                SPENT[step] += time.process_time() - started
                CALLS[step] += 1

    setattr(owner, name, timed)


async def measure(seed: dict[str, Any], reads: int, *, page: bool, write: bool) -> dict[str, Any]:
    import httpx  # noqa: PLC0415 - after the wrapping, as the app imports

    from app.main import create_app  # noqa: PLC0415

    app = create_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        caller = "demo.socialsekreterare" if write else "demo.polis"
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            signed_in = await client.post(
                "/api/v1/auth/token",
                data={
                    "grant_type": "password",
                    "username": caller,
                    "password": seed["passwords"][caller],
                },
            )
        token = signed_in.json()["access_token"]
        paths = [f"/api/v1/entries/{e}" for e in seed["readable_entries"]]
        if page or write:
            paths = [f"/api/v1/cases/{c}/entries" for c in seed["shared_cases"]]
        body = json.dumps(
            {"category": "social_services", "title": "Samtal", "body": "Uppföljande samtal."}
        ).encode()
        headers = [(b"content-type", b"application/json")] if write else []

        async def read(path: str) -> None:
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST" if write else "GET",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": b"limit=20" if page else b"",
                "root_path": "",
                "headers": [
                    (b"host", b"bench"),
                    (b"authorization", f"Bearer {token}".encode()),
                    *headers,
                ],
                "client": ("127.0.0.1", 5000),
                "server": ("bench", 80),
            }
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body if write else b"", "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            await app(scope, receive, send)
            if sent[0]["status"] != (201 if write else 200):
                raise RuntimeError(f"{path}: {sent[0]['status']}")

        for path in paths[:50]:  # warm: statements prepared, caches filled
            await read(path)
        SPENT.clear()
        CALLS.clear()
        started, database = time.process_time(), _postgres_cpu_seconds()
        for index in range(reads):
            await read(paths[50 + index % (len(paths) - 50)])
        total = (time.process_time() - started) / reads * 1000
        database = (_postgres_cpu_seconds() - database) / reads * 1000
    steps = {step: round(SPENT[step] / reads * 1000, 3) for _, _, step in STEPS if CALLS[step]}
    steps["the rest: server framework, routing, dependencies, middleware"] = round(
        total - sum(steps.values()), 3
    )
    return {
        "reads": reads,
        "cpu_ms_per_read": round(total, 2),
        "postgres_cpu_ms_per_read": round(database, 2),
        "steps_ms": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("seed")
    parser.add_argument("--reads", type=int, default=500)
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--page", action="store_true", help="a page of 20 entries instead")
    kind.add_argument("--write", action="store_true", help="an entry written instead")
    args = parser.parse_args()
    os.environ["SAMVERKAN_DATABASE_URL"] = args.url
    os.environ.setdefault("SAMVERKAN_DB_POOL_SIZE", "4")
    for module_name, attribute, step in STEPS:
        try:
            _wrap(module_name, attribute, step)
        except AttributeError:  # an older version of the code: that step is elsewhere
            continue
    from app.logging import configure_logging  # noqa: PLC0415 - after the wrapping

    configure_logging(level="INFO", fmt="json")  # as in production; written, unread
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the process's life
    seed = json.loads(Path(args.seed).read_text())
    result = asyncio.run(measure(seed, args.reads, page=args.page, write=args.write))
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
