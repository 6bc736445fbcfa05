"""Crash consistency: kill -9 a worker mid-write, again and again, under load.

    python bench/crash.py [--kills 100] [--writers 16]

On a throwaway PostgreSQL database with the demo data, two uvicorn workers take entry
writes from ``--writers`` concurrent clients while this process kills a random worker
with SIGKILL ``--kills`` times (uvicorn starts a new one). Afterwards:

- every entry written has its ``entry.create`` audit record, and every permitted
  ``entry.create`` record that was not marked "not completed" has its entry;
- every 201 a client received names an entry that exists (an answered write is durable);
- the audit chain verifies.

Exits non-zero if any check fails. Prints one JSON line with the counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.audit.chain import verify_chain
from app.config import Settings
from app.db import Database

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("BENCH_POSTGRES", "postgres@127.0.0.1:5432")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


async def _wait_ready(base: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                if (await client.get(f"{base}/healthz", timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not start")


async def run(kills: int, writers: int) -> dict[str, Any]:
    name = f"samverkan_crash_{int(time.time())}_{os.getpid()}"
    admin = await asyncpg.connect(f"postgresql://{PG}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = f"postgresql+asyncpg://{PG}/{name}"
    env = {**os.environ, "SAMVERKAN_DATABASE_URL": url, "SAMVERKAN_LOG_LEVEL": "WARNING"}
    env["SAMVERKAN_DATA_DIR"] = tempfile.mkdtemp(prefix=name)
    port = 8900 + os.getpid() % 90
    base = f"http://127.0.0.1:{port}"
    server = None
    try:
        subprocess.run([sys.executable, "-m", "app.cli", "migrate"], env=env, check=True)
        demo = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "demo", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        server = demo
        assert demo.stdout is not None
        logins = {}
        for line in demo.stdout:
            parts = line.split()
            if parts and parts[0].startswith("demo."):
                logins[parts[0]] = parts[1]
            if "auth/token" in line:
                break
        await _wait_ready(base)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            token = (
                await client.post(
                    "/api/v1/auth/token",
                    data={
                        "grant_type": "password",
                        "username": "demo.socialsekreterare",
                        "password": logins["demo.socialsekreterare"],
                    },
                )
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            case_id = (await client.get("/api/v1/cases", headers=headers)).json()["items"][0]["id"]
            answered: list[str] = []
            failures = {"http": 0, "transport": 0}
            stop = asyncio.Event()

            async def write(n: int) -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    body = {
                        "category": "social_services",
                        "title": f"crash-{n}-{i}",
                        "body": "Skrivet under krasch-test.",
                    }
                    try:
                        response = await client.post(
                            f"/api/v1/cases/{case_id}/entries", json=body, headers=headers
                        )
                    except httpx.TransportError:
                        failures["transport"] += 1
                        await asyncio.sleep(0.05)
                        continue
                    if response.status_code == 201:
                        answered.append(response.json()["id"])
                    else:
                        failures["http"] += 1

            tasks = [asyncio.create_task(write(n)) for n in range(writers)]
            rng = random.Random(1)
            killed = 0
            while killed < kills:
                await asyncio.sleep(rng.uniform(0.2, 0.6))
                workers = _children(demo.pid)
                if len(workers) < 2:
                    continue  # a new worker is still starting
                os.kill(rng.choice(workers), signal.SIGKILL)
                killed += 1
            await asyncio.sleep(2)
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    try:
        return await _check(url, name, answered, failures, kills)
    finally:
        admin = await asyncpg.connect(f"postgresql://{PG}/postgres")
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _check(
    url: str, name: str, answered: list[str], failures: dict[str, int], kills: int
) -> dict[str, Any]:
    connection = await asyncpg.connect(f"postgresql://{PG}/{name}")
    try:
        entries = {str(r["id"]) for r in await connection.fetch("SELECT id FROM entry")}
        recorded = {
            r["resource_id"]
            for r in await connection.fetch(
                "SELECT resource_id FROM audit_event WHERE action = 'entry.create'"
                " AND decision = 'permit' AND coalesce(reason, '') NOT LIKE '%not completed%'"
            )
        }
    finally:
        await connection.close()
    database = Database.from_settings(Settings(database_url=url))
    try:
        async with database.engine.connect() as conn:
            chain = await verify_chain(conn, jobs=2)
    finally:
        await database.dispose()
    result = {
        "kills": kills,
        "answered_201": len(answered),
        "entries": len(entries),
        "entries_without_record": len(entries - recorded),
        "records_without_entry": len(recorded - entries),
        "answered_but_missing": len(set(answered) - entries),
        "failed_requests": failures,
        "chain_ok": chain.ok,
        "chain_checked": chain.checked,
    }
    result["ok"] = (
        chain.ok
        and not result["entries_without_record"]
        and not result["records_without_entry"]
        and not result["answered_but_missing"]
        and len(answered) > 0
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--writers", type=int, default=16)
    args = parser.parse_args()
    result = asyncio.run(run(args.kills, args.writers))
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
