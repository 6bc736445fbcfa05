"""Soak: mixed load for a while, then count.

    python bench/soak.py [--minutes 10] [--clients 12]

On the demo service (throwaway PostgreSQL database, two workers), a third of the clients
write entries, a third read single entries and a third search the audit log as the
auditor, for ``--minutes``. Each of those requests writes exactly one audit record, so:

- no 5xx and no transport error;
- the workers' memory (RSS, sampled every 30 s) is flat: the last sample within 20 % of
  the one after the first minute;
- the audit log grew by exactly the number of answered requests;
- rows and records agree and the chain verifies (``harness.consistency``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from harness import PG, Service, consistency, demo_service


def _rss_mb(supervisor: int) -> float:
    out = subprocess.run(
        ["pgrep", "-P", str(supervisor)], capture_output=True, text=True, check=False
    )
    total = 0
    for pid in out.stdout.split():
        status = Path(f"/proc/{pid}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return round(total / 1024, 1)


async def _audit_count(service: Service) -> int:
    connection = await asyncpg.connect(f"postgresql://{PG}/{service.name}")
    try:
        return int(await connection.fetchval("SELECT count(*) FROM audit_event"))
    finally:
        await connection.close()


async def run(minutes: float, clients: int) -> dict[str, Any]:
    async with demo_service("soak") as service:
        writer = await service.token("demo.socialsekreterare")
        auditor = await service.token("demo.granskare")
        statuses: Counter[str] = Counter()
        written: list[str] = []
        stop = asyncio.Event()
        async with httpx.AsyncClient(base_url=service.base, timeout=30) as client:
            as_writer = {"Authorization": f"Bearer {writer}"}
            as_auditor = {"Authorization": f"Bearer {auditor}"}
            cases = await client.get("/api/v1/cases", headers=as_writer)
            case = cases.json()["items"][0]
            first = await client.post(
                f"/api/v1/cases/{case['id']}/entries",
                json={"category": "contact", "title": "Start", "body": "Start."},
                headers=as_writer,
            )
            written.append(first.json()["id"])
            before = await _audit_count(service)

            async def one(method: str, path: str, headers: dict[str, str], **kw: Any) -> None:
                try:
                    response = await client.request(method, path, headers=headers, **kw)
                except httpx.TransportError as exc:
                    statuses[type(exc).__name__] += 1
                    return
                statuses[str(response.status_code)] += 1
                if method == "POST" and response.status_code == 201:
                    written.append(response.json()["id"])

            async def loop(kind: int) -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    if kind == 0:
                        body = {"category": "social_services", "title": f"s{i}", "body": "Soak."}
                        await one(
                            "POST", f"/api/v1/cases/{case['id']}/entries", as_writer, json=body
                        )
                    elif kind == 1:
                        await one("GET", f"/api/v1/entries/{written[i % len(written)]}", as_writer)
                    else:
                        path = f"/api/v1/audit/events?individual_id={case['individual']['id']}"
                        await one("GET", path + "&limit=20", as_auditor)

            tasks = [asyncio.create_task(loop(n % 3)) for n in range(clients)]
            samples = []
            started = time.monotonic()
            while time.monotonic() - started < minutes * 60:
                await asyncio.sleep(min(30, minutes * 60))
                samples.append(_rss_mb(service.pid))
            stop.set()
            await asyncio.gather(*tasks)
            after = await _audit_count(service)
        answered = sum(v for k, v in statuses.items() if k.isdigit())
        result: dict[str, Any] = {
            "minutes": minutes,
            "statuses": dict(statuses),
            "rss_mb_samples": samples,
            "audit_records_added": after - before,
            "answered_requests": answered,
        }
        result |= await consistency(service, written)
    baseline = samples[1] if len(samples) > 2 else samples[0]
    result["ok"] = (
        result["consistent"]
        and all(k.isdigit() and k[0] in "24" for k in statuses)
        and result["audit_records_added"] == answered
        and samples[-1] <= baseline * 1.2
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=12)
    args = parser.parse_args()
    result = asyncio.run(run(args.minutes, args.clients))
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
