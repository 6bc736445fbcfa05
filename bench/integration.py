"""Integration benchmarks (issue 16): webhook deliveries per second by one worker, and what
the outbox (with everything else added since) costs an entry write.

    python bench/integration.py [--events 2000] [--seconds 20] [--rounds 3] [--before REF]

1. **Delivery rate.** On a throwaway PostgreSQL database with the demo data (two uvicorn
   workers), a subscription to ``entry.recorded`` at a local receiver (uvicorn, answering 204
   to every POST), ``--events`` entries written through the API; then one
   ``samverkan worker`` process is started and timed until every delivery is delivered.
2. **Outbox cost.** ``POST /cases/{id}/entries`` from 16 concurrent writers for ``--seconds``,
   against this checkout and against ``--before`` (default: the commit before the outbox,
   checked out into a temporary worktree), alternating, ``--rounds`` times each; the median
   writes per second of each and their ratio. Target (issue 16): the outbox costs at most 10 %.

Prints one JSON object and writes it to ``bench/results/integration.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from harness import PG, ROOT, Writers, demo_service

BEFORE_OUTBOX = "415566d"  # main before issue 16's first commit
RECEIVER = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""


def _receiver(port: int, directory: Path) -> subprocess.Popen[bytes]:
    (directory / "receiver.py").write_text(RECEIVER)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "receiver:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=directory,
    )


async def delivery_rate(events: int) -> dict[str, Any]:
    async with demo_service("integ") as service:
        work = Path(tempfile.mkdtemp(prefix="samverkan_receiver"))
        port = 9700 + os.getpid() % 200
        receiver = _receiver(port, work)
        worker = None
        try:
            token = await service.token("demo.samordnare")
            async with httpx.AsyncClient(base_url=service.base, timeout=30) as client:
                hook = await client.post(
                    "/api/v1/webhooks",
                    headers={"Authorization": f"Bearer {token}"},
                    json={"url": f"http://127.0.0.1:{port}/hook", "types": ["entry.recorded"]},
                )
                hook.raise_for_status()
            load = Writers(service, 16)
            await load.start()
            while len(load.answered) < events:  # noqa: ASYNC110 - polling the writers
                await asyncio.sleep(0.1)
            await load.stop()
            written = len(load.answered)
            env = {
                **os.environ,
                "SAMVERKAN_DATABASE_URL": service.url,
                "SAMVERKAN_WEBHOOK_ALLOW_PRIVATE": "true",
                "SAMVERKAN_LOG_LEVEL": "WARNING",
                "SAMVERKAN_WORKER_POLL_SECONDS": "0.05",
            }
            connection = await asyncpg.connect(f"postgresql://{PG}/{service.name}")
            try:
                started = time.monotonic()
                worker = subprocess.Popen(
                    [sys.executable, "-m", "app.cli", "worker"], env=env, cwd=ROOT
                )
                delivered = 0
                while delivered < written and time.monotonic() - started < 600:
                    await asyncio.sleep(0.2)
                    delivered = await connection.fetchval(
                        "SELECT count(*) FROM webhook_delivery WHERE status = 'delivered'"
                    )
                elapsed = time.monotonic() - started
            finally:
                await connection.close()
        finally:
            for process in (worker, receiver):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=30)
    return {
        "events": written,
        "delivered": delivered,
        "seconds": round(elapsed, 2),
        "events_per_second": round(delivered / elapsed, 1),
    }


async def _writes_per_second(root: Path, seconds: float) -> float:
    async with demo_service("outbox", root=root) as service:
        load = Writers(service, 16)
        await load.start()
        await asyncio.sleep(2)  # warm up
        before = len(load.answered)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        done = len(load.answered) - before
        elapsed = time.monotonic() - started
        await load.stop()
    return done / elapsed


async def outbox_cost(before: str, seconds: float, rounds: int) -> dict[str, Any]:
    worktree = Path(tempfile.mkdtemp(prefix="samverkan_before_outbox"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(worktree), before],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    now: list[float] = []
    then: list[float] = []
    try:
        for _ in range(rounds):
            then.append(await _writes_per_second(worktree, seconds))
            now.append(await _writes_per_second(ROOT, seconds))
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False
        )
    ratio = statistics.median(now) / statistics.median(then)
    return {
        "before": before,
        "writes_per_second_before": [round(x, 1) for x in then],
        "writes_per_second_now": [round(x, 1) for x in now],
        "median_ratio_now_to_before": round(ratio, 3),
        "cost_percent": round((1 - ratio) * 100, 1),
        "target_percent": 10,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    # the receiver is on loopback (the demo services inherit this environment)
    os.environ["SAMVERKAN_WEBHOOK_ALLOW_PRIVATE"] = "true"
    return {
        "delivery": await delivery_rate(args.events),
        "outbox": await outbox_cost(args.before, args.seconds, args.rounds),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default=BEFORE_OUTBOX)
    result = asyncio.run(main(parser.parse_args()))
    out = ROOT / "bench" / "results" / "integration.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
