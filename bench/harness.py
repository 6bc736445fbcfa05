"""What the fault scripts share: a demo service on a throwaway PostgreSQL database, a load
of entry writers, and the consistency check that follows every fault.

- :func:`demo_service` creates the database, runs ``samverkan demo`` with two workers on it,
  yields a :class:`Service` (base URL, logins, the supervisor's pid) and drops it all after.
- :class:`Writers` posts entries to the demo case from ``n`` concurrent clients and keeps
  every answer's status, and the ids of the entries answered with 201.
- :func:`consistency` checks, on the database: every entry has its ``entry.create`` record
  and every permitted, completed ``entry.create`` record its entry; every entry a client was
  told was written exists; every entry has its `entry.recorded` event and every such event
  its entry (the outbox); the audit chain verifies.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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


@dataclass
class Service:
    base: str
    url: str
    name: str
    pid: int
    logins: dict[str, str]

    async def token(self, username: str) -> str:
        async with httpx.AsyncClient(base_url=self.base, timeout=30) as client:
            response = await client.post(
                "/api/v1/auth/token",
                data={
                    "grant_type": "password",
                    "username": username,
                    "password": self.logins[username],
                },
            )
            return str(response.json()["access_token"])


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


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(f"postgresql://{PG}/postgres")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@asynccontextmanager
async def demo_service(prefix: str, root: Path = ROOT) -> AsyncIterator[Service]:
    """``root``: the checkout whose code serves (another commit's worktree, for an A/B)."""
    name = f"samverkan_{prefix}_{int(time.time())}_{os.getpid()}"
    await _admin(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://{PG}/{name}"
    env = {**os.environ, "SAMVERKAN_DATABASE_URL": url, "SAMVERKAN_LOG_LEVEL": "WARNING"}
    env["SAMVERKAN_DATA_DIR"] = tempfile.mkdtemp(prefix=name)
    port = 8900 + os.getpid() % 90
    process = None
    try:
        subprocess.run([sys.executable, "-m", "app.cli", "migrate"], env=env, check=True, cwd=root)
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "demo", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=root,
        )
        assert process.stdout is not None
        logins = {}
        for line in process.stdout:
            parts = line.split()
            if parts and parts[0].startswith("demo."):
                logins[parts[0]] = parts[1]
            if "auth/token" in line:
                break
        base = f"http://127.0.0.1:{port}"
        await _wait_ready(base)
        yield Service(base=base, url=url, name=name, pid=process.pid, logins=logins)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=60)
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Writers:
    """Entry writers against the demo case, as the demo social worker."""

    service: Service
    count: int
    answered: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        token = await self.service.token("demo.socialsekreterare")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._client = httpx.AsyncClient(base_url=self.service.base, timeout=30)
        cases = await self._client.get("/api/v1/cases", headers=self._headers)
        self._case = cases.json()["items"][0]["id"]
        self._tasks = [asyncio.create_task(self._write(n)) for n in range(self.count)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        await self._client.aclose()

    async def _write(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            body = {"category": "social_services", "title": f"fault-{n}-{i}", "body": "Test."}
            try:
                response = await self._client.post(
                    f"/api/v1/cases/{self._case}/entries", json=body, headers=self._headers
                )
            except httpx.TransportError as exc:
                self.statuses[type(exc).__name__] += 1
                await asyncio.sleep(0.05)
                continue
            self.statuses[str(response.status_code)] += 1
            if response.status_code == 201:
                self.answered.append(response.json()["id"])


async def consistency(service: Service, answered: list[str]) -> dict[str, Any]:
    connection = await asyncpg.connect(f"postgresql://{PG}/{service.name}")
    try:
        entries = {str(r["id"]) for r in await connection.fetch("SELECT id FROM entry")}
        recorded = {
            r["resource_id"]
            for r in await connection.fetch(
                "SELECT resource_id FROM audit_event WHERE action = 'entry.create'"
                " AND decision = 'permit' AND coalesce(reason, '') NOT LIKE '%not completed%'"
            )
        }
        # the outbox: every committed entry has its event, and no event is without its entry
        announced = {
            str(r["resource_id"])
            for r in await connection.fetch(
                "SELECT resource_id FROM event WHERE type = 'entry.recorded'"
            )
        }
    finally:
        await connection.close()
    database = Database.from_settings(Settings(database_url=service.url))
    try:
        async with database.engine.connect() as conn:
            chain = await verify_chain(conn, jobs=2)
    finally:
        await database.dispose()
    result: dict[str, Any] = {
        "answered_201": len(answered),
        "entries": len(entries),
        "entries_without_record": len(entries - recorded),
        "records_without_entry": len(recorded - entries),
        "answered_but_missing": len(set(answered) - entries),
        "entries_without_event": len(entries - announced),
        "events_without_entry": len(announced - entries),
        "chain_ok": chain.ok,
        "chain_checked": chain.checked,
    }
    result["consistent"] = (
        chain.ok
        and not result["entries_without_record"]
        and not result["records_without_entry"]
        and not result["answered_but_missing"]
        and not result["entries_without_event"]
        and not result["events_without_entry"]
    )
    return result
