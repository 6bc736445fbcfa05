"""Idempotency keys: every creating POST, swept from the app; a retry with the same key and
request gets the first answer without the work being done again; another request under
the key is a 422; two at once on PostgreSQL never both do the work."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.agencies.models import AgencyKind
from app.audit.models import AuditEvent
from app.entries import service as entry_service
from app.entries.models import Entry
from app.events.models import Event
from app.idempotency import service as idempotency_service
from app.idempotency.deps import is_idempotent
from app.idempotency.models import IdempotencyKey
from app.main import create_app
from app.users.models import Role
from tests.conftest import make_settings, migrated_database
from tests.factories import audit_events_after, audit_head, bearer, make_agency, make_user
from tests.scenarios import Scenario, World, call
from tests.test_authorization_matrix import ACTORS, ROWS, _build, _template_route
from tests.test_routes import operations

KEY = "Idempotency-Key"


def test_every_creating_post_takes_a_key() -> None:
    """A POST that answers 201 creates something: it claims keys and keeps its answer."""
    creating = [
        o
        for o in operations(create_app(make_settings("sqlite+aiosqlite://")))
        if "POST" in o.methods and o.status_code == 201
    ]
    assert len(creating) >= 13
    assert [o.path for o in creating if not is_idempotent(o)] == []
    assert {_template_route(row) for row in CREATING_ROWS} == _CREATING  # all swept below


_CREATING = {
    ("POST", o.path)
    for o in operations(create_app(make_settings("sqlite+aiosqlite://")))
    if "POST" in o.methods and o.status_code == 201
}
CREATING_ROWS = [row for row in ROWS if _template_route(row) in _CREATING]


@pytest.mark.parametrize(
    "row", CREATING_ROWS, ids=[f"{r.method} {r.template}" for r in CREATING_ROWS]
)
async def test_a_retry_gets_the_first_answer_and_the_work_is_done_once(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
    connection: AsyncConnection,
    row: Any,
) -> None:
    ctx = await _build(client, app, world, scenario, session, "none")
    actor = next((a for a in ACTORS if row.rule(a, ctx).status == 201), None)
    assert actor is not None, "the matrix names someone who creates through this route"
    user = getattr(world, actor)
    path = re.sub(r"\{(\w+)\}", lambda m: ctx.ids[m.group(1)], row.template)
    body = row.body(actor, ctx) if row.body else None
    send: dict[str, Any] = {"json": body} if body is not None else {}
    key = {KEY: f"retry-{row.template}"}

    before = await audit_head(connection)
    first = await call(client, app, user, "POST", path, headers=key, **send)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    between = await audit_head(connection)
    # the same request again, its JSON written differently: the same request
    again: dict[str, Any] = (
        {
            "content": json.dumps(body, indent=2),
            "headers": key | {"content-type": "application/json"},
        }
        if body is not None
        else {"headers": key}
    )
    second = await call(client, app, user, "POST", path, **again)
    assert second.status_code == 201, second.text
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    done = await audit_events_after(connection, before)
    replayed = await audit_events_after(connection, between)
    # the work's content records once; the retry leaves one record: the replay
    assert [e.action for e in replayed] == ["idempotency.replay"]
    assert replayed[0].decision == "permit"
    assert replayed[0].actor_user_id == user.id
    first_records = [e for e in done if e.seq <= between]
    resource_ids = {e.resource_id for e in first_records if e.resource_id}
    assert replayed[0].resource_id in resource_ids | {None}

    if body is not None:  # the key once more, with another request: 422, nothing done
        other = dict(body) | {"__other__": 1}
        head = await audit_head(connection)
        response = await call(client, app, user, "POST", path, headers=key, json=other)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == f"header.{KEY}"
        assert [e.decision for e in await audit_events_after(connection, head)] == ["deny"]


def _entry_request(scenario: Scenario) -> tuple[str, dict[str, str]]:
    return (
        f"/cases/{scenario.case['id']}/entries",
        {"category": "contact", "title": "Ny adress", "body": "Flyttat."},
    )


async def _entries(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(Entry))).scalar_one())


async def test_keys_are_each_callers_own_and_expire_after_a_day(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
) -> None:
    path, body = _entry_request(scenario)
    key = {KEY: "6b0e2c58-2f0b-4c43-9d2a-0d7a3c1b2f11"}
    mine = await call(client, app, world.soc_caseworker, "POST", path, headers=key, json=body)
    theirs = await call(client, app, world.pol_caseworker, "POST", path, headers=key, json=body)
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert await _entries(session) == 2
    # a day later the key is free again: the same request is a new one
    await session.execute(
        update(IdempotencyKey).values(created_at=datetime.now(UTC) - timedelta(hours=24, seconds=1))
    )
    later = await call(client, app, world.soc_caseworker, "POST", path, headers=key, json=body)
    assert later.status_code == 201
    assert "idempotent-replayed" not in later.headers
    assert later.json()["id"] != mine.json()["id"]
    assert await _entries(session) == 3


@pytest.mark.parametrize(
    "key", ["", "x" * 256, "has space", "tab\there", "å-utf8", "line\nbreak"], ids=repr
)
async def test_a_bad_key_is_a_422_and_nothing_is_done(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
    key: str,
) -> None:
    path, body = _entry_request(scenario)
    try:
        response = await call(
            client, app, world.soc_caseworker, "POST", path, headers={KEY: key}, json=body
        )
    except (httpx.LocalProtocolError, UnicodeEncodeError):
        return  # not even sendable as a header
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == f"header.{KEY}"
    assert await _entries(session) == 0
    assert (await session.execute(select(IdempotencyKey))).first() is None


async def test_a_failed_request_binds_no_key(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    """Only a success is kept: after a 422 the same key serves a corrected request."""
    path = f"/cases/{scenario.case['id']}/entries"
    key = {KEY: "k-1"}
    bad = await call(
        client, app, world.soc_caseworker, "POST", path, headers=key, json={"category": "nope"}
    )
    assert bad.status_code == 422
    good = await call(
        client,
        app,
        world.soc_caseworker,
        "POST",
        path,
        headers=key,
        json={"category": "contact", "title": "Ny adress", "body": "Flyttat."},
    )
    assert good.status_code == 201


@pytest.mark.only_backend("postgresql")
async def test_two_requests_with_one_key_at_once_do_the_work_once(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real concurrency: two connections, the first holding its claim while it works. The
    second waits on the claimed row and then answers with the first's answer."""
    async with migrated_database(backend, tmp_path, db_pool_size=6) as (url, database):
        async with database.sessionmaker() as session:
            soc = await make_agency(session, kind=AgencyKind.SOCIALTJANST.value)
            coordinator = await make_user(session, roles={Role.COORDINATOR}, agency=soc)
            await session.commit()
        app = create_app(make_settings(url), database=database)
        real = entry_service.create_entry
        started = asyncio.Event()

        async def slow(*args: Any, **kwargs: Any) -> Any:
            started.set()
            await asyncio.sleep(0.5)  # the claim is held, uncommitted, meanwhile
            return await real(*args, **kwargs)

        monkeypatch.setattr(entry_service, "create_entry", slow)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            auth = bearer(app, coordinator)
            individual = await client.post(
                "/api/v1/individuals",
                headers=auth,
                json={
                    "given_name": "Kim",
                    "family_name": "Testsson",
                    "birth_date": "2001-01-01",
                    "protected_identity": False,
                    "guardians": [],
                },
            )
            case = await client.post(
                "/api/v1/cases",
                headers=auth,
                json={"individual_id": individual.json()["id"], "programme": "sig"},
            )
            path = f"/api/v1/cases/{case.json()['id']}/entries"
            body = {"category": "contact", "title": "Ny adress", "body": "Flyttat."}
            headers = auth | {KEY: "same-key"}

            async def second() -> httpx.Response:
                await started.wait()
                return await client.post(path, headers=headers, json=body)

            one, two = await asyncio.gather(client.post(path, headers=headers, json=body), second())
        assert one.status_code == 201, one.text
        assert two.status_code in {201, 409}, two.text
        if two.status_code == 201:
            assert two.json() == one.json()
            assert two.headers["idempotent-replayed"] == "true"
        async with database.sessionmaker() as session:
            assert await _entries(session) == 1
            recorded = (
                await session.execute(
                    select(func.count()).select_from(Event).where(Event.type == "entry.recorded")
                )
            ).scalar_one()
            assert recorded == 1
            creates = (
                await session.execute(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(AuditEvent.action == "entry.create", AuditEvent.decision == "permit")
                )
            ).scalar_one()
            assert creates == 1


async def test_the_worker_forgets_keys_after_a_day(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
) -> None:
    """A stored answer can hold names: kept 24 hours, no longer."""
    path, body = _entry_request(scenario)
    for key in ("old", "new"):
        response = await call(
            client, app, world.soc_caseworker, "POST", path, headers={KEY: key}, json=body
        )
        assert response.status_code == 201
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.key == "old")
        .values(created_at=datetime.now(UTC) - timedelta(hours=24, seconds=1))
    )
    assert await idempotency_service.forget_expired(session) == 1
    left = (await session.execute(select(IdempotencyKey.key))).scalars().all()
    assert left == ["new"]
