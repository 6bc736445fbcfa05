"""Requests that used to leave no audit record (finding 7 of the 2026-11 outside test), and
a review queue that is not buried in typos (finding 8)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import Database
from app.main import create_app
from tests.conftest import client_for, make_settings
from tests.factories import access_token_for, audit_events_after, audit_head, bearer
from tests.scenarios import Scenario, World, call

API = "/api/v1"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 422),
        (b'{"title": "\xff\xfe"}', 400),  # not UTF-8
        (b"[" * 100_000 + b"]" * 100_000, 400),  # nested past any parser's depth
    ],
    ids=["malformed", "not-utf8", "deeply-nested"],
)
async def test_a_body_refused_before_the_route_ran_is_recorded(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    body: bytes,
    status: int,
) -> None:
    before = await audit_head(connection)
    response = await call(
        client,
        app,
        world.pol_caseworker,
        "POST",
        f"/cases/{scenario.case['id']}/entries",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    [event] = await audit_events_after(connection, before)
    assert (event.action, event.decision, event.actor_user_id) == (
        "entry.create",
        "deny",
        world.pol_caseworker.id,
    )
    assert event.flags == "invalid"
    assert str(event.case_id) == scenario.case["id"]


async def test_a_refused_body_without_a_token_is_a_401_concern_not_a_record(
    client: httpx.AsyncClient, scenario: Scenario, connection: AsyncConnection
) -> None:
    before = await audit_head(connection)
    await client.post(
        f"{API}/cases/{scenario.case['id']}/entries",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert await audit_events_after(connection, before) == []


@pytest.fixture
async def strict_app(database_url: str, connection: AsyncConnection) -> FastAPI:
    """The app with at most three token failures recorded per address and window."""
    settings = make_settings(database_url, token_failures_recorded_per_address=3)
    return create_app(settings, database=Database.bound_to(connection))


@pytest.fixture
async def strict_client(strict_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(strict_app) as client:
        yield client


async def test_a_refused_token_is_recorded_and_a_flood_is_capped(
    strict_client: httpx.AsyncClient,
    strict_app: FastAPI,
    world: World,
    connection: AsyncConnection,
) -> None:
    before = await audit_head(connection)
    forged = ["not-a-jwt", "eyJhbGciOiJub25lIn0.e30.", "x" * 300]
    for token in forged * 3:
        response = await strict_client.get(
            f"{API}/auth/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401
    events = await audit_events_after(connection, before)
    assert [e.action for e in events] == ["auth.failure"] * 3  # nine tried, three recorded
    assert all(e.decision == "deny" and "denied" in e.flags for e in events)
    assert all(e.client_address == "127.0.0.1" for e in events)
    # a token of a user whose sign-in no longer exists: refused and (under the cap) recorded
    stale = access_token_for(strict_app, f"user:{world.pol_caseworker.id}", sid=None)
    response = await strict_client.get(
        f"{API}/auth/me", headers={"Authorization": f"Bearer {stale}"}
    )
    assert response.status_code == 401


async def test_an_access_token_offered_as_a_refresh_token_is_recorded(
    client: httpx.AsyncClient, app: FastAPI, world: World, connection: AsyncConnection
) -> None:
    access = bearer(app, world.pol_caseworker)["Authorization"].split()[1]
    before = await audit_head(connection)
    response = await client.post(
        f"{API}/auth/token", data={"grant_type": "refresh_token", "refresh_token": access}
    )
    assert response.status_code == 401
    [event] = await audit_events_after(connection, before)
    assert (event.action, event.decision) == ("auth.refresh_failed", "deny")


async def test_invalid_input_is_flagged_invalid_and_stays_out_of_the_work_queue(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    before = await audit_head(connection)
    typo = await call(
        client,
        app,
        world.pol_caseworker,
        "POST",
        f"/cases/{scenario.case['id']}/entries",
        json={"category": "polis", "title": "t", "body": "b"},
    )
    assert typo.status_code == 422
    denied = await call(
        client, app, world.skola_coordinator, "GET", f"/cases/{scenario.case['id']}"
    )
    assert denied.status_code == 404
    typo_event, denied_event = await audit_events_after(connection, before)
    assert typo_event.flags == "invalid"
    assert "denied" in denied_event.flags
    queue = await call(
        client, app, world.soc_auditor, "GET", "/audit/events", params={"flagged": "true"}
    )
    seqs = {e["seq"] for e in queue.json()["items"]}
    assert denied_event.seq in seqs
    assert typo_event.seq not in seqs
