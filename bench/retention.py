"""Retention over the bench population: how long ``samverkan retention run`` takes.

    python bench/retention.py [--individuals 10000] [--audit-records 1000000]
                              [--batch-size 200] [--audit-batch-size 50000]

On a throwaway PostgreSQL database: the bench population of ``bench/seed.py`` (10k
individuals with a case each, 24 entries a case, consents in every state, 1M chained audit
records over 90 days), every case then closed; then the run, with its clock ten years and
a quarter on (so every rule is due, the audit log's ten years too), exactly as the command
runs it (same function, same batches, one transaction each). Prints and writes
``bench/results/retention.json``: rows culled per kind, seconds per phase, rows per second,
and the verify of what is left, from its anchor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import PG, _admin
from seed import seed_accounts, seed_audit, seed_volume

from app.audit.checkpoints import CheckpointSigner
from app.audit.service import verify_all
from app.config import Settings
from app.db import Database
from app.migrate import upgrade
from app.policy.engine import PolicyEngine
from app.retention import service as retention

RESULTS = Path(__file__).resolve().parent / "results" / "retention.json"


async def _seed(url: str, individuals: int, audit_records: int) -> dict[str, Any]:
    started = time.perf_counter()
    await seed_accounts(url)
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with connection.transaction():
            await seed_volume(connection, individuals=individuals, entries_per_case=24)
        async with connection.transaction():
            await seed_audit(connection, audit_records)
        await connection.execute(
            "UPDATE case_file SET status = 'closed', closure_reason = 'completed', "
            "closed_at = now()"
        )
        await connection.execute("VACUUM ANALYZE")
        counts = {
            table: await connection.fetchval(f"SELECT count(*) FROM {table}")
            for table in (
                "individual",
                "guardian",
                "case_file",
                "consent",
                "consent_document",
                "entry",
                "entry_version",
                "case_action",
                "audit_event",
            )
        }
    finally:
        await connection.close()
    return {"counts": counts, "seconds": round(time.perf_counter() - started, 1)}


async def _run(url: str, batch_size: int, audit_batch_size: int) -> dict[str, Any]:
    rules = PolicyEngine().reference.retention
    assert rules is not None
    settings = Settings(database_url=url, data_dir=Path(tempfile.mkdtemp(prefix="retention-")))
    signer = CheckpointSigner(settings)
    database = Database.from_settings(settings)
    now = datetime.now(UTC) + timedelta(days=3653 + 92)
    phases: dict[str, float] = {}
    marks = {"kind": "", "at": time.perf_counter()}

    def tell(kind: str, done: int) -> None:
        moment = time.perf_counter()
        if kind != marks["kind"]:
            marks["kind"] = kind
        phases[kind] = phases.get(kind, 0.0) + moment - float(marks["at"])
        marks["at"] = moment

    try:
        async with database.engine.connect() as connection:
            started = time.perf_counter()
            planned = await retention.plan(connection, rules, now)
            plan_seconds = time.perf_counter() - started
        marks["at"] = time.perf_counter()
        started = time.perf_counter()
        result = await retention.run(
            database.sessionmaker,
            rules,
            signer,
            now,
            batch_size=batch_size,
            audit_batch_size=audit_batch_size,
            tell=tell,
        )
        seconds = time.perf_counter() - started
        async with database.engine.connect() as connection:
            started = time.perf_counter()
            verified = await verify_all(connection, signer)
            verify_seconds = time.perf_counter() - started
    finally:
        await database.dispose()
    rows = sum(result.counts.values())
    audit = result.counts.get("audit_record", 0)
    return {
        "plan_seconds": round(plan_seconds, 2),
        "planned_due": {k: v["due"] for k, v in planned["kinds"].items()},
        "run_seconds": round(seconds, 1),
        "batches": result.batches,
        "culled": dict(sorted(result.counts.items())),
        "rows_per_s": round(rows / seconds),
        "seconds_per_phase": {k: round(v, 1) for k, v in phases.items()},
        "personal_rows_per_s": round(
            (rows - audit) / max(sum(v for k, v in phases.items() if k != "audit_record"), 1e-9)
        ),
        "audit_records_per_s": round(audit / max(phases.get("audit_record", 0.0), 1e-9)),
        "verify_ok": verified.ok,
        "verify_from_anchor_seq": verified.anchor.seq if verified.anchor else None,
        "verify_checked": verified.checked,
        "verify_seconds": round(verify_seconds, 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--individuals", type=int, default=10_000)
    parser.add_argument("--audit-records", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--audit-batch-size", type=int, default=50_000)
    args = parser.parse_args()
    name = f"samverkan_retention_{int(time.time())}_{os.getpid()}"
    await _admin(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://{PG}/{name}"
    try:
        await asyncio.to_thread(upgrade, url)
        seeded = await _seed(url, args.individuals, args.audit_records)
        print(json.dumps({"seeded": seeded}), flush=True)
        measured = await _run(url, args.batch_size, args.audit_batch_size)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    out = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "batch_size": args.batch_size,
        "audit_batch_size": args.audit_batch_size,
        "population": seeded["counts"],
        **measured,
    }
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
