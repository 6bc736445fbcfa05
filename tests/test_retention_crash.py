"""``samverkan retention run`` killed with SIGKILL 20 times, then let finish: after every
kill nothing is half culled (an entry with its version or gone with its tombstone, a
consent with its signed form, nothing left of a culled case, an individual with both
guardians or gone), and the chain verifies; in the end everything due is gone. Each kill
comes right after the run's progress bar (on a pseudo-terminal) moved, so every one falls
in the middle of a run. bench/crash.py does the same to the API's writes."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import random
import select as io_select
import signal
import struct
import subprocess
import sys
import termios
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, update

from app.audit.checkpoints import CheckpointSigner
from app.audit.service import verify_all
from app.cases.models import Case
from app.consents.models import Consent, ConsentDocument
from app.db import Database
from app.entries.models import Entry, EntryVersion
from app.individuals.models import Guardian, Individual
from app.main import create_app
from app.retention.models import Tombstone
from app.users.models import Role
from tests.conftest import make_settings, migrated_database
from tests.factories import bearer, make_agency, make_user
from tests.scenarios import individual_body

KILLS = 20
PEOPLE = 40
ENTRIES = 2
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


async def _populate(database: Database, url: str, tmp_path: Path) -> None:
    """Through the API: people, each with a closed case, entries, a consent and its form;
    then the cases' closing moved six years back (the clock of this test)."""
    async with database.sessionmaker() as session:
        soc = await make_agency(session, kind="socialtjanst")
        pol = await make_agency(session, kind="polis")
        coordinator = await make_user(session, roles={Role.COORDINATOR}, agency=soc)
        await session.commit()
    app = create_app(make_settings(url, data_dir=tmp_path), database=database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as client:
        client.headers.update(bearer(app, coordinator))

        async def made(method: str, path: str, **kw: Any) -> dict[str, Any]:
            response = await client.request(method, path, **kw)
            assert response.status_code in {200, 201}, response.text
            return dict(response.json())

        for i in range(PEOPLE):
            person = await made(
                "POST",
                "/individuals",
                json=individual_body(
                    personal_number=None,
                    birth_date="2010-03-03",
                    given_name=f"Kim{i}",
                ),
            )
            case = await made(
                "POST", "/cases", json={"individual_id": person["id"], "programme": "sig"}
            )
            await made("POST", f"/cases/{case['id']}/participants", json={"agency_id": str(pol.id)})
            for _ in range(ENTRIES):
                await made(
                    "POST",
                    f"/cases/{case['id']}/entries",
                    json={"category": "social_services", "title": "T", "body": "B"},
                )
            now = datetime.now(UTC)
            consent = await made(
                "POST",
                f"/cases/{case['id']}/consents",
                json={
                    "signatories": [
                        {
                            "role": "guardian",
                            "guardian_id": g["id"],
                            "name": g["given_name"],
                            "signed_at": (now - timedelta(days=1)).isoformat(),
                        }
                        for g in person["guardians"]
                    ],
                    "agency_ids": [str(soc.id), str(pol.id)],
                    "categories": ["identity", "plan"],
                    "purpose": "SIG",
                    "valid_from": (now - timedelta(hours=1)).isoformat(),
                    "valid_until": (now + timedelta(days=30)).isoformat(),
                    "method": "paper",
                },
            )
            await made(
                "PUT",
                f"/consents/{consent['id']}/document",
                content=PDF,
                headers={"content-type": "application/pdf"},
            )
            await made(
                "PATCH",
                f"/cases/{case['id']}",
                json={"status": "closed", "closure_reason": "completed"},
            )
    long_ago = datetime.now(UTC) - timedelta(days=6 * 366)
    async with database.sessionmaker() as session:
        await session.execute(update(Case).values(closed_at=long_ago))
        await session.execute(update(Individual).values(created_at=long_ago, updated_at=None))
        await session.commit()


def _kill_after_progress(command: list[str], env: dict[str, str], rng: random.Random) -> int:
    """Run the command with its progress bar on a terminal, and SIGKILL it right after the
    bar moved a random 1-3 times (each move is a committed batch): a kill by the clock alone
    may fall before the run started or after it ended. 1 if killed, 0 if it ended first."""
    leader, follower = pty.openpty()
    # a terminal 100 columns wide (a new one is 0 wide, and the bar fits nothing in that)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    moves, wanted, seen = 0, rng.randint(1, 3), b""
    try:
        while process.poll() is None:
            ready, _, _ = io_select.select([leader], [], [], 0.05)
            if not ready:
                continue
            try:
                seen = os.read(leader, 4096)
            except OSError:  # the process closed its end
                break
            moves += seen.count(b"\r")
            if moves > wanted:  # the first \r draws the empty bar
                process.send_signal(signal.SIGKILL)
                process.wait()
                return 1
        process.wait()
        return 0
    finally:
        os.close(leader)


async def _nothing_half_culled(database: Database) -> tuple[int, int]:
    """(cases left, individuals left), once every invariant holds."""
    async with database.sessionmaker() as session:
        cases = (await session.execute(select(Case.id, Case.individual_id))).all()
        buried = set(
            (
                await session.execute(
                    select(Tombstone.resource_id).where(Tombstone.resource_type == "case")
                )
            ).scalars()
        )
        for case_id, _ in cases:
            assert str(case_id) not in buried

        async def count(query: Any) -> int:
            return int(await session.scalar(select(func.count()).select_from(query.subquery())))

        async def stones(kind: str) -> set[str]:
            found = await session.execute(
                select(Tombstone.resource_id).where(Tombstone.resource_type == kind)
            )
            return set(found.scalars())

        # An entry is here with its version, or gone with its tombstone; likewise a consent
        # with its signed form (the form's own rule is not due: the consent has not ended).
        entries = {str(e) for e in (await session.execute(select(Entry.id))).scalars()}
        assert not entries & await stones("entry")
        assert len(entries) + len(await stones("entry")) == PEOPLE * ENTRIES
        assert await count(select(EntryVersion.entry_id)) == len(entries)
        consents = {str(c) for c in (await session.execute(select(Consent.id))).scalars()}
        assert not consents & await stones("consent")
        assert len(consents) + len(await stones("consent")) == PEOPLE
        assert await count(select(ConsentDocument.consent_id)) == len(consents)
        # nothing is left of a culled case
        for case_id in buried:
            assert await count(select(Entry.id).where(Entry.case_id == uuid.UUID(case_id))) == 0
        left = set((await session.execute(select(Individual.id))).scalars())
        gone_people = set(
            (
                await session.execute(
                    select(Tombstone.resource_id).where(Tombstone.resource_type == "individual")
                )
            ).scalars()
        )
        assert not {str(i) for i in left} & gone_people
        # an individual is gone with all their guardians, or here with all of them
        for individual_id in left:
            guardians = await session.scalar(
                select(func.count())
                .select_from(Guardian)
                .where(Guardian.individual_id == individual_id)
            )
            assert guardians == 2
        assert len(left) + len(gone_people) == PEOPLE
        assert len(cases) + len(buried) == PEOPLE
        for stone in gone_people:
            assert (
                await session.scalar(
                    select(func.count())
                    .select_from(Guardian)
                    .where(Guardian.individual_id == uuid.UUID(stone))
                )
                == 0
            )
    return len(cases), len(left)


async def test_a_run_killed_twenty_times_finishes_with_nothing_half_culled(
    backend: str, tmp_path: Path
) -> None:
    async with migrated_database(backend, tmp_path) as (url, database):
        await _populate(database, url, tmp_path)
        signer = CheckpointSigner(make_settings(url, data_dir=tmp_path))
        env = os.environ | {"SAMVERKAN_DATABASE_URL": url, "SAMVERKAN_DATA_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "app.cli", "retention", "run", "--batch-size", "1"]
        rng = random.Random(20)
        progress = []
        killed = 0
        for _ in range(KILLS):
            killed += await asyncio.to_thread(_kill_after_progress, command, env, rng)
            progress.append(await _nothing_half_culled(database))
            async with database.engine.connect() as connection:
                verified = await verify_all(connection, signer)
            assert verified.ok, verified
        assert killed == KILLS, (
            progress
        )  # every kill fell in the middle of a run  # every kill fell in the middle of a run
        finished = await asyncio.to_thread(
            subprocess.run,
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert finished.returncode == 0, finished.stderr
        assert await _nothing_half_culled(database) == (0, 0)
        async with database.engine.connect() as connection:
            assert (await verify_all(connection, signer)).ok
