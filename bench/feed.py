"""How the event feed's filter scales: ``GET /events``'s query over a large event log.

    python bench/feed.py [--events 100000] [--share 0.01]

On a throwaway PostgreSQL database: two agencies, 1,000 cases of which the reader's agency
takes part in ``--share``; ``--events`` case events spread over all cases. Times the feed's
query (a page of 200, the SQL filter of app/policy) for a caseworker of the reader's agency,
from the start of the log and from a cursor near its end, five times each (median), and
prints one JSON object. Not part of the suite: a measurement for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import PG

from app.audit.records import Origin
from app.auth.actor import Actor, ActorKind
from app.config import Settings
from app.db import Database
from app.events.models import Event
from app.migrate import upgrade
from app.policy import filters
from app.users.models import Role


async def _seed(url: str, events: int, share: float) -> uuid.UUID:
    connection = await asyncpg.connect(url)
    try:
        reader, other = uuid.uuid4(), uuid.uuid4()
        now = datetime.now(UTC)
        for agency, number in ((reader, "2120000142"), (other, "2021006255")):
            await connection.execute(
                "INSERT INTO agency (id, name, kind, organisation_number, municipality, "
                "created_at, updated_at) VALUES ($1, 'A', 'polis', $2, 'X', $3, $3)",
                agency,
                number,
                now,
            )
        cases = []
        for n in range(1000):
            individual, case = uuid.uuid4(), uuid.uuid4()
            await connection.execute(
                "INSERT INTO individual (id, registering_agency_id, reserve_id, given_name, "
                "family_name, birth_date, protected_identity, created_by, created_at) "
                "VALUES ($1, $2, $3, 'G', 'F', $4, false, $5, $6)",
                individual,
                other,
                f"R-{n}",
                date(2010, 1, 1),
                other,
                now,
            )
            await connection.execute(
                "INSERT INTO case_file (id, individual_id, programme, lead_agency_id, status, "
                "created_by, created_at, updated_at) VALUES ($1, $2, 'sig', $3, 'open', $3, "
                "$4, $4)",
                case,
                individual,
                other,
                now,
            )
            participants = [other] + ([reader] if n < 1000 * share else [])
            for agency in participants:
                await connection.execute(
                    "INSERT INTO case_participant (case_id, agency_id, added_at, added_by) "
                    "VALUES ($1, $2, $3, $2)",
                    case,
                    agency,
                    now,
                )
            cases.append((case, individual))
        await connection.executemany(
            "INSERT INTO event (id, type, occurred_at, case_id, individual_id, resource_type, "
            "resource_id) VALUES ($1, 'case.updated', $2, $3, $4, 'case', $3)",
            [(uuid.uuid4(), now, *cases[n % len(cases)]) for n in range(events)],
        )
        await connection.execute("ANALYZE")
        return reader
    finally:
        await connection.close()


async def run(events: int, share: float) -> dict[str, object]:
    name = f"samverkan_feed_{int(time.time())}"
    admin = await asyncpg.connect(f"postgresql://{PG}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://{PG}/{name}"
    try:
        await asyncio.to_thread(upgrade, url)
        reader = await _seed(f"postgresql://{PG}/{name}", events, share)
        actor = Actor(
            kind=ActorKind.USER,
            id=uuid.uuid4(),
            agency_id=reader,
            roles=frozenset({Role.CASEWORKER}),
            scopes=frozenset(),
            username="b",
            name="b",
            origin=Origin(),
        )
        database = Database.from_settings(Settings(database_url=url))
        timings: dict[str, list[float]] = {"from_start": [], "near_end": []}
        shown = {}
        try:
            async with database.sessionmaker() as session:
                for label, after in (("from_start", 0), ("near_end", events - 1000)):
                    for _ in range(5):
                        started = time.perf_counter()
                        rows = (
                            await session.execute(
                                select(Event.seq)
                                .where(
                                    Event.seq > after,
                                    filters.events_visible_to(actor, datetime.now(UTC)),
                                )
                                .order_by(Event.seq)
                                .limit(200)
                            )
                        ).all()
                        timings[label].append((time.perf_counter() - started) * 1000)
                        shown[label] = len(rows)
        finally:
            await database.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return {
        "events": events,
        "share_of_cases_visible": share,
        "page_ms_median": {k: round(statistics.median(v), 1) for k, v in timings.items()},
        "items_on_page": shown,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--share", type=float, default=0.01)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.events, args.share))))
