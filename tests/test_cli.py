"""The samverkan command, run as a newcomer would: migrate, version, serve."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app import __version__, bootstrap
from app.actions.models import CaseAction
from app.agencies.models import Agency
from app.audit.chain import verify_chain
from app.cases.models import Case, CaseParticipant
from app.consents import service as consent_service
from app.consents.models import Consent
from app.db import create_engine
from app.entries.models import Entry
from app.goals.models import Goal
from app.migrate import current_revisions, head_revisions, reset
from app.security import verify_secret
from app.users.models import User
from tests.conftest import make_settings, migrated_database, throwaway_database
from tests.factories import fresh_sign_in
from tests.scenarios import call

DEMO_NUMBER = bootstrap.DEMO_PERSONAL_NUMBER
SAMVERKAN = [sys.executable, "-m", "app.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMVERKAN_")}
    env.update(extra)
    return env


def test_version() -> None:
    result = subprocess.run(
        [*SAMVERKAN, "version"], capture_output=True, text=True, check=True, env=_env()
    )
    assert result.stdout.strip() == f"samverkan {__version__}"


async def test_migrate_brings_an_empty_database_to_head(backend: str, tmp_path: Path) -> None:
    async with throwaway_database(backend, tmp_path) as url:
        result = await asyncio.to_thread(
            subprocess.run,
            [*SAMVERKAN, "migrate"],
            capture_output=True,
            text=True,
            env=_env(SAMVERKAN_DATABASE_URL=url, SAMVERKAN_LOG_FORMAT="json"),
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        # off a terminal: one JSON line of the result, nothing else
        assert json.loads(result.stdout) == {"ok": True, "head": sorted(head_revisions())}
        assert result.stderr == ""
        engine = create_engine(make_settings(url))
        try:
            async with engine.connect() as conn:
                assert await current_revisions(conn) == head_revisions()
                assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
        finally:
            await engine.dispose()


def test_invalid_configuration_exits_2_without_echoing_secrets() -> None:
    result = subprocess.run(
        [*SAMVERKAN, "migrate"],
        capture_output=True,
        text=True,
        env=_env(
            SAMVERKAN_ENV="prod",
            SAMVERKAN_DATABASE_URL="postgresql+asyncpg://app:changeme@db/samverkan",
        ),
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr
    assert "changeme" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_on_a_fresh_directory_answers_healthz_and_readyz(
    tmp_path: Path, workers: int
) -> None:
    """README command (a): nothing but the default SQLite settings, in an empty directory."""
    port = _free_port()
    process = subprocess.Popen(
        [*SAMVERKAN, "serve", "--port", str(port), "--workers", str(workers)],
        cwd=tmp_path,
        env=_env(PYTHONPATH=str(Path(__file__).resolve().parent.parent)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert health.status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert 'route="/healthz"' in metrics.text
        assert (tmp_path / "samverkan.db").is_file()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so a supervisor sees why.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "Traceback" not in output


def _create_admin(
    url: str, *args: str, password: str = "a sufficiently long password"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SAMVERKAN, "create-admin", *args],
        capture_output=True,
        text=True,
        env=_env(SAMVERKAN_DATABASE_URL=url, SAMVERKAN_ADMIN_PASSWORD=password),
        timeout=120,
        check=False,
    )


async def test_create_admin_creates_once_and_then_refuses(backend: str, tmp_path: Path) -> None:
    async with throwaway_database(backend, tmp_path) as url:
        if backend == "postgresql":
            await asyncio.to_thread(
                subprocess.run,
                [*SAMVERKAN, "migrate"],
                env=_env(SAMVERKAN_DATABASE_URL=url),
                check=True,
                capture_output=True,
            )
        without_agency = await asyncio.to_thread(_create_admin, url, "--username", "root.admin")
        assert without_agency.returncode == 1
        assert "--organisation-number" in without_agency.stderr
        first = await asyncio.to_thread(
            _create_admin, url, "--username", "Root.Admin", "--organisation-number", "212000-0142"
        )
        assert first.returncode == 0, first.stderr
        assert "created administrator root.admin" in first.stdout
        again = await asyncio.to_thread(_create_admin, url, "--username", "root.admin")
        assert again.returncode == 1
        assert "exists already" in again.stderr
        weak = await asyncio.to_thread(
            _create_admin, url, "--username", "other.admin", password="short"
        )
        assert weak.returncode == 2
        assert "short" not in weak.stderr.replace("too_short", "")
        # the organisation number is needed the first time only (README)
        second = await asyncio.to_thread(_create_admin, url, "--username", "second.admin")
        assert second.returncode == 0, second.stderr

        engine = create_engine(make_settings(url))
        try:
            async with engine.connect() as conn:
                users = (await conn.execute(text("SELECT username, roles FROM app_user"))).all()
                assert sorted(tuple(u) for u in users) == [
                    ("root.admin", "admin"),
                    ("second.admin", "admin"),
                ]
                assert (await verify_chain(conn)).ok
        finally:
            await engine.dispose()


async def test_demo_data_is_idempotent_and_signs_in(session: AsyncSession) -> None:
    first_seed = await bootstrap.seed_demo(session)
    second_seed = await bootstrap.seed_demo(session)
    assert second_seed.case_id == first_seed.case_id
    first, second = first_seed.logins, second_seed.logins
    assert [login.username for login in first] == [login.username for login in second]
    assert {login.roles for login in first} >= {"admin", "auditor", "caseworker"}
    agencies = (await session.execute(select(func.count()).select_from(Agency))).scalar_one()
    assert agencies >= 4
    user = (
        await session.execute(select(User).where(User.username == second[0].username))
    ).scalar_one()
    assert await verify_secret(second[0].password, user.password_hash)
    assert not await verify_secret(first[0].password, user.password_hash)
    cases = dict((await session.execute(select(Case.programme, Case.id))).all())
    assert set(cases) == {"sig", "trefas"}  # the SIG case continues the Trefas case
    case_id = cases["sig"]
    assert second_seed.case_id == case_id
    [consent] = (await session.execute(select(Consent))).scalars()
    assert consent.case_id == case_id
    assert consent_service.status_of(consent, datetime.now(UTC)) == "active"
    participants = await session.execute(
        select(func.count()).select_from(CaseParticipant).where(CaseParticipant.case_id == case_id)
    )
    assert participants.scalar_one() == 4
    entries = await session.execute(select(Entry.category).where(Entry.case_id == case_id))
    assert sorted(entries.scalars()) == ["police", "probation", "school", "social_services"]
    # the casework: the intake meeting's decisions are the plan; goals, one followed up
    decisions = await session.execute(
        select(func.count()).select_from(CaseAction).where(CaseAction.meeting_id.is_not(None))
    )
    assert decisions.scalar_one() == 4
    goals = (await session.execute(select(Goal).where(Goal.case_id == case_id))).scalars()
    assert sorted(g.version for g in goals) == [1, 1, 2]


async def test_the_demo_shows_a_newcomer_what_the_consent_allows(
    client: httpx.AsyncClient, app: FastAPI, session: AsyncSession
) -> None:
    """README: log in as demo.polis and see what the consent lets the police see."""
    await bootstrap.seed_demo(session)

    async def as_user(username: str, path: str) -> Any:
        user = (await session.execute(select(User).where(User.username == username))).scalar_one()
        headers = await fresh_sign_in(session, app, user)
        response = await call(client, app, None, "GET", path, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    [case] = (await as_user("demo.polis", "/cases"))["items"]
    assert case["individual"]["identity_visible"] is True  # the consent covers identity
    assert case["individual"]["given_name"] == "Tolvan"
    # the police find him by number
    found = await as_user("demo.polis", f"/individuals?personal_number={DEMO_NUMBER}")
    assert [i["id"] for i in found["items"]] == [case["individual"]["id"]]
    police_sees = await as_user("demo.polis", f"/cases/{case['id']}/entries")
    assert sorted(e["category"] for e in police_sees["items"]) == [
        "police",
        "probation",
        "school",
        "social_services",
    ]
    social_sees = await as_user("demo.socialsekreterare", f"/cases/{case['id']}/entries")
    # the consent does not cover the police's own category
    assert sorted(e["category"] for e in social_sees["items"]) == [
        "probation",
        "school",
        "social_services",
    ]
    # Kriminalvården's frivård takes part and sees the case and the plan
    frivard_sees = await as_user("demo.frivard", f"/cases/{case['id']}")
    assert frivard_sees["individual"]["identity_visible"] is True
    plan = await as_user("demo.polis", f"/cases/{case['id']}/actions")
    assert len({a["responsible_agency_id"] for a in plan["items"]}) == 4
    assert all(a["status"] == "planned" for a in plan["items"])


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    result = subprocess.run(
        [*SAMVERKAN, "migrate"],
        capture_output=True,
        text=True,
        env=_env(
            SAMVERKAN_DATABASE_URL="postgresql+asyncpg://samverkan:hemligt-lösen@127.0.0.1:9/x",
            SAMVERKAN_DB_CONNECT_TIMEOUT_SECONDS="2",
        ),
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "127.0.0.1:9/x" in result.stderr
    assert "Traceback" not in result.stderr
    assert "hemligt" not in result.stderr + result.stdout


def test_the_help_is_plain_text() -> None:
    result = subprocess.run(
        [*SAMVERKAN, "--help"], capture_output=True, text=True, env=_env(), check=True
    )
    assert "``" not in result.stdout
    assert "create-admin" in result.stdout


def test_demo_reset_asks_first() -> None:
    """Not at a terminal and without --yes, nothing is deleted."""
    result = subprocess.run(
        [*SAMVERKAN, "demo", "--reset"],
        capture_output=True,
        text=True,
        env=_env(SAMVERKAN_DATABASE_URL="sqlite+aiosqlite:///./never-made.db"),
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "--yes" in result.stderr


async def test_demo_reset_starts_the_story_over(backend: str, tmp_path: Path) -> None:
    """After a withdrawal the README's story no longer holds: --reset brings it back."""
    async with migrated_database(backend, tmp_path) as (url, database):
        async with database.sessionmaker() as session:
            first = await bootstrap.seed_demo(session)
            [consent] = (await session.execute(select(Consent))).scalars()
            consent.withdrawn_at = datetime.now(UTC)
            await session.commit()
        await database.dispose()
        await asyncio.to_thread(reset, url)
        async with database.sessionmaker() as session:
            again = await bootstrap.seed_demo(session)
            await session.commit()
            [consent] = (await session.execute(select(Consent))).scalars()
            assert consent_service.status_of(consent, datetime.now(UTC)) == "active"
        assert again.case_id != first.case_id
