"""docs/integration.md, end to end, as a municipal system does it: an administrator registers
the client; it signs in with client credentials, subscribes to webhooks, receives a signed
event at a real receiver and verifies it, reads what it points to, finds the individual by
its own reference, writes idempotently, and is held to a caseworker's rights by its scopes.
Every read is on record under its client id."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from app.audit.models import AuditEvent
from app.config import Settings
from app.webhooks import delivery
from tests.scenarios import Scenario, World, call, open_case

API = "/api/v1"


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else {}


async def _client_token(
    client: httpx.AsyncClient, app: FastAPI, world: World, scopes: list[str]
) -> tuple[dict[str, str], str]:
    made = await _ok(
        await call(
            client,
            app,
            world.soc_admin,
            "POST",
            "/clients",
            json={"name": "Treserva Solna", "agency_id": str(world.soc.id), "scopes": scopes},
        ),
        201,
    )
    token = await _ok(
        await client.post(
            f"{API}/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": made["client_id"],
                "client_secret": made["client_secret"],
            },
        )
    )
    return {"Authorization": f"Bearer {token['access_token']}"}, made["id"]


async def test_an_integrator_follows_the_integration_guide(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    world: World,
    scenario: Scenario,
    httpserver: HTTPServer,
    session: AsyncSession,
) -> None:
    auth, client_id = await _client_token(
        client,
        app,
        world,
        ["read:cases", "read:individuals", "read:entries", "write:entries", "events", "webhooks"],
    )
    httpserver.expect_request("/samverkan", method="POST").respond_with_data("", status=204)
    hook = await _ok(
        await client.post(
            f"{API}/webhooks",
            headers=auth,
            json={"url": httpserver.url_for("/samverkan"), "types": ["entry.recorded"]},
        ),
        201,
    )
    # a coordinator registers a person with the system's own id, and opens a case
    opened = await open_case(
        client,
        app,
        world,
        personal_number="19900101-0017",
        external_refs=[{"system": "treserva", "id": "2026-0412"}],
    )
    person, case = opened.individual, opened.case
    # the system finds the person by its own reference, identity and all
    found = await _ok(
        await client.get(
            f"{API}/individuals", headers=auth, params={"external_ref": "treserva:2026-0412"}
        )
    )
    assert [i["id"] for i in found["items"]] == [person["id"]]
    assert found["items"][0]["identity_visible"] is True
    # it writes an entry, and its retry does nothing twice
    key = {"Idempotency-Key": "treserva-journal-88121"}
    body = {"category": "social_services", "title": "Från Treserva", "body": "Beslut om insats."}
    first = await client.post(f"{API}/cases/{case['id']}/entries", headers=auth | key, json=body)
    again = await client.post(f"{API}/cases/{case['id']}/entries", headers=auth | key, json=body)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    # a colleague's entry reaches the receiver, signed
    colleague = await _ok(
        await call(
            client,
            app,
            world.soc_caseworker,
            "POST",
            f"/cases/{case['id']}/entries",
            json={"category": "contact", "title": "Ny adress", "body": "Flyttat."},
        ),
        201,
    )
    fast = settings.model_copy(update={"webhook_retry_base_seconds": 0.01})
    await delivery.fan_out(app.state.database)
    while await delivery.deliver_one(app.state.database, fast):
        pass
    received = [
        Webhook(hook["secret"]).verify(request.get_data(), dict(request.headers))
        for request, _ in httpserver.log
    ]
    assert {r["data"]["resource_id"] for r in received} == {first.json()["id"], colleague["id"]}
    # it reads what the event points to, with its own rights
    read = await _ok(await client.get(f"{API}/entries/{colleague['id']}", headers=auth))
    assert read["id"] == colleague["id"]
    # the feed says the same, after the case's own events
    feed = await _ok(await client.get(f"{API}/events", headers=auth))
    mine = [e for e in feed["items"] if e["individual_id"] == person["id"]]
    assert [e["type"] for e in mine] == [
        "individual.registered",
        "case.opened",
        "entry.recorded",
        "entry.recorded",
    ]
    # a caseworker's rights, never more: no case changes, no break-the-glass
    assert (
        await client.patch(f"{API}/cases/{case['id']}", headers=auth, json={"status": "active"})
    ).status_code == 403
    assert (
        await client.post(
            f"{API}/cases/{case['id']}/emergency-access",
            headers=auth,
            json={"legal_basis": "osl_10_2", "reason": "Akut hot mot den unge"},
        )
    ).status_code == 403
    # every read on record under the client's id
    reads = list(
        (
            await session.execute(
                select(AuditEvent).where(
                    AuditEvent.action == "entry.read", AuditEvent.decision == "permit"
                )
            )
        ).scalars()
    )
    assert [str(r.actor_client_id) for r in reads] == [client_id]
    assert reads[0].actor_user_id is None


async def test_scopes_narrow_a_client(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    """A client with read:cases only sees the case but not who it is about, reads no entry,
    writes none, and has no feed."""
    auth, _ = await _client_token(client, app, world, ["read:cases"])
    case = await _ok(await client.get(f"{API}/cases/{scenario.case['id']}", headers=auth))
    assert case["individual"]["identity_visible"] is False
    assert case["individual"]["personal_number"] is None
    entry = await _ok(
        await call(
            client,
            app,
            world.soc_caseworker,
            "POST",
            f"/cases/{scenario.case['id']}/entries",
            json={"category": "contact", "title": "Ny adress", "body": "Flyttat."},
        ),
        201,
    )
    assert (await client.get(f"{API}/entries/{entry['id']}", headers=auth)).status_code == 404
    assert (
        await client.post(
            f"{API}/cases/{scenario.case['id']}/entries",
            headers=auth,
            json={"category": "contact", "title": "x", "body": "y"},
        )
    ).status_code == 403
    assert (await client.get(f"{API}/events", headers=auth)).status_code == 403
    assert (await client.get(f"{API}/webhooks", headers=auth)).status_code == 403
