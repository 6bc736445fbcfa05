"""Agencies, users and clients: the actor matrix, validation and the audit trail.

Per endpoint: anonymous 401; a non-admin 403 with an audited denial; an admin 2xx with
exactly the audit record of the action. Bad input is a 422/409 that changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.agencies.models import Agency
from app.clients.models import IntegrationClient
from app.users.models import Role, User
from tests.factories import (
    access_token_for,
    audit_events_after,
    audit_head,
    bearer,
    fresh_sign_in,
    make_agency,
    make_user,
)

API = "/api/v1"


@dataclass
class World:
    agency: Agency
    admin: User
    caseworker: User
    coordinator: User
    auditor: User
    target_user: User
    target_client: IntegrationClient


@pytest.fixture
async def world(session: AsyncSession) -> World:
    agency = await make_agency(session, name="Socialtjänsten Test")
    client = IntegrationClient(
        id=uuid.uuid4(),
        client_id="cli_" + uuid.uuid4().hex[:24],
        name="Sync",
        agency_id=agency.id,
        scopes="",
        secret_hash="x",
        created_at=agency.created_at,
    )
    session.add(client)
    world = World(
        agency=agency,
        admin=await make_user(session, roles={Role.ADMIN}, agency=agency),
        caseworker=await make_user(session, roles={Role.CASEWORKER}, agency=agency),
        coordinator=await make_user(session, roles={Role.COORDINATOR}, agency=agency),
        auditor=await make_user(session, roles={Role.AUDITOR}, agency=agency),
        target_user=await make_user(session, roles={Role.CASEWORKER}, agency=agency),
        target_client=client,
    )
    await session.flush()
    return world


def _new_user(w: World) -> dict[str, Any]:
    return {
        "username": f"new.{uuid.uuid4().hex[:8]}",
        "display_name": "Ny Användare",
        "agency_id": str(w.agency.id),
        "roles": ["caseworker"],
        "password": "a long enough password",
    }


AGENCY = {
    "name": "Lokalpolisområde Test",
    "kind": "polis",
    "organisation_number": "202100-0076",
    "municipality": "Stockholm",
}

# (method, path template, body factory, admin status, audit action of a success)
ADMIN_ENDPOINTS: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/agencies", lambda w: AGENCY, 201, "agency.create"),
    ("PATCH", "/agencies/{agency}", lambda w: {"municipality": "Solna"}, 200, "agency.update"),
    ("POST", "/users", _new_user, 201, "user.create"),
    ("GET", "/users", None, 200, "user.list"),
    ("GET", "/users/{user}", None, 200, "user.read"),
    ("PATCH", "/users/{user}", lambda w: {"display_name": "Nytt Namn"}, 200, "user.update"),
    (
        "POST",
        "/clients",
        lambda w: {"name": "Treserva", "agency_id": str(w.agency.id)},
        201,
        "client.create",
    ),
    ("GET", "/clients", None, 200, "client.list"),
    ("GET", "/clients/{client}", None, 200, "client.read"),
    ("DELETE", "/clients/{client}", None, 204, "client.revoke"),
]


def _path(template: str, w: World) -> str:
    return API + template.format(
        agency=w.agency.id, user=w.target_user.id, client=w.target_client.id
    )


async def _call(
    client: httpx.AsyncClient, method: str, path: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "template", "body", "status", "action"), ADMIN_ENDPOINTS)
async def test_anonymous_is_401(
    client: httpx.AsyncClient,
    world: World,
    method: str,
    template: str,
    body: Any,
    status: int,
    action: str,
) -> None:
    response = await _call(client, method, _path(template, world), body and body(world), {})
    assert response.status_code == 401


@pytest.mark.parametrize("role", ["caseworker", "coordinator", "auditor"])
@pytest.mark.parametrize(("method", "template", "body", "status", "action"), ADMIN_ENDPOINTS)
async def test_non_admins_get_403_and_the_denial_is_audited(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    connection: AsyncConnection,
    role: str,
    method: str,
    template: str,
    body: Any,
    status: int,
    action: str,
) -> None:
    actor = getattr(world, role)
    before = await audit_head(connection)
    response = await _call(
        client, method, _path(template, world), body and body(world), bearer(app, actor)
    )
    assert response.status_code == 403
    [event] = await audit_events_after(connection, before)
    assert (event.action, event.decision, event.actor_user_id) == (action, "deny", actor.id)
    assert event.request_id == response.headers["x-request-id"]


@pytest.mark.parametrize(("method", "template", "body", "status", "action"), ADMIN_ENDPOINTS)
async def test_admin_succeeds_and_exactly_one_record_is_written(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    connection: AsyncConnection,
    method: str,
    template: str,
    body: Any,
    status: int,
    action: str,
) -> None:
    before = await audit_head(connection)
    response = await _call(
        client, method, _path(template, world), body and body(world), bearer(app, world.admin)
    )
    assert response.status_code == status, response.text
    [event] = await audit_events_after(connection, before)
    assert (event.action, event.decision) == (action, "permit")
    assert event.actor_user_id == world.admin.id
    assert event.actor_agency_id == world.agency.id
    assert event.actor_roles == "admin"


@pytest.mark.parametrize("role", ["caseworker", "auditor", "admin"])
async def test_every_signed_in_user_reads_the_agency_directory(
    client: httpx.AsyncClient, app: FastAPI, world: World, role: str
) -> None:
    headers = bearer(app, getattr(world, role))
    listed = await client.get(f"{API}/agencies", headers=headers)
    assert listed.status_code == 200
    assert world.agency.id in {uuid.UUID(a["id"]) for a in listed.json()["items"]}
    one = await client.get(f"{API}/agencies/{world.agency.id}", headers=headers)
    assert one.json()["organisation_number"] == "212000-0142"
    assert (await client.get(f"{API}/agencies/{uuid.uuid4()}", headers=headers)).status_code == 404


async def test_agency_directory_pages_without_gaps(
    client: httpx.AsyncClient, app: FastAPI, world: World, session: AsyncSession
) -> None:
    for i in range(5):
        await make_agency(session, name=f"Page agency {i}")
    headers = bearer(app, world.caseworker)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"{API}/agencies", params=params, headers=headers)).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    total = (await session.execute(select(func.count()).select_from(Agency))).scalar_one()
    assert len(seen) == len(set(seen)) == total


@pytest.mark.parametrize("cursor", ["garbage", "W10", "WyJhIiwgIm5vdC1hLXV1aWQiXQ"])
async def test_a_forged_cursor_is_422(
    client: httpx.AsyncClient, app: FastAPI, world: World, cursor: str
) -> None:
    response = await client.get(
        f"{API}/agencies", params={"cursor": cursor}, headers=bearer(app, world.caseworker)
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    "change",
    [
        {"organisation_number": "212000-0143"},  # wrong check digit
        {"organisation_number": "abc"},
        {"kind": "bank"},
        {"name": ""},
        {"unknown_field": 1},
    ],
)
async def test_invalid_agency_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    session: AsyncSession,
    change: dict[str, Any],
) -> None:
    count = (await session.execute(select(func.count()).select_from(Agency))).scalar_one()
    response = await client.post(
        f"{API}/agencies", json=AGENCY | change, headers=bearer(app, world.admin)
    )
    assert response.status_code == 422
    for value in change.values():
        if isinstance(value, str) and len(value) > 2:
            assert value not in response.text
    after = (await session.execute(select(func.count()).select_from(Agency))).scalar_one()
    assert after == count


async def test_organisation_number_is_stored_normalised(
    client: httpx.AsyncClient, app: FastAPI, world: World, session: AsyncSession
) -> None:
    response = await client.post(
        f"{API}/agencies",
        json=AGENCY | {"organisation_number": "2021000076"},
        headers=bearer(app, world.admin),
    )
    stored = await session.get(Agency, uuid.UUID(response.json()["id"]))
    assert stored is not None
    assert stored.organisation_number == "2021000076"
    assert response.json()["organisation_number"] == "202100-0076"


async def test_usernames_are_unique_whatever_the_case(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    body = _new_user(world) | {"username": world.target_user.username.upper()}
    response = await client.post(f"{API}/users", json=body, headers=bearer(app, world.admin))
    assert response.status_code == 409


@pytest.mark.parametrize(
    "change",
    [
        {"roles": ["superuser"]},
        {"roles": []},
        {"password": "Tiny-pw9"},
        {"username": "has space"},
        {"agency_id": str(uuid.uuid4())},
    ],
)
async def test_invalid_user_is_422_and_the_password_is_not_echoed(
    client: httpx.AsyncClient, app: FastAPI, world: World, change: dict[str, Any]
) -> None:
    body = _new_user(world) | change
    response = await client.post(f"{API}/users", json=body, headers=bearer(app, world.admin))
    assert response.status_code == 422, response.text
    assert body["password"] not in response.text


async def test_deactivation_stops_the_users_tokens_at_the_next_request(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    target = bearer(app, world.target_user)
    assert (await client.get(f"{API}/auth/me", headers=target)).status_code == 200
    response = await client.patch(
        f"{API}/users/{world.target_user.id}",
        json={"active": False},
        headers=bearer(app, world.admin),
    )
    assert response.json()["active"] is False
    assert (await client.get(f"{API}/auth/me", headers=target)).status_code == 401


async def test_an_agency_move_ends_the_sign_in_and_the_next_one_is_in_the_new_agency(
    client: httpx.AsyncClient, app: FastAPI, world: World, session: AsyncSession
) -> None:
    other = await make_agency(session, name="Annan myndighet")
    target = bearer(app, world.target_user)
    await client.patch(
        f"{API}/users/{world.target_user.id}",
        json={"agency_id": str(other.id)},
        headers=bearer(app, world.admin),
    )
    assert (await client.get(f"{API}/auth/me", headers=target)).status_code == 401
    again = await fresh_sign_in(session, app, world.target_user)
    me = await client.get(f"{API}/auth/me", headers=again)
    assert me.json()["agency_id"] == str(other.id)


@pytest.mark.parametrize("change", [{"active": False}, {"roles": ["caseworker"]}])
async def test_admins_cannot_lock_themselves_out(
    client: httpx.AsyncClient, app: FastAPI, world: World, change: dict[str, Any]
) -> None:
    response = await client.patch(
        f"{API}/users/{world.admin.id}", json=change, headers=bearer(app, world.admin)
    )
    assert response.status_code == 409


async def test_client_secret_is_shown_once_and_stored_hashed(
    client: httpx.AsyncClient, app: FastAPI, world: World, session: AsyncSession
) -> None:
    created = await client.post(
        f"{API}/clients",
        json={"name": "Treserva", "agency_id": str(world.agency.id), "scopes": ["read:cases"]},
        headers=bearer(app, world.admin),
    )
    body = created.json()
    secret = body["client_secret"]
    stored = await session.get(IntegrationClient, uuid.UUID(body["id"]))
    assert stored is not None
    assert secret not in stored.secret_hash
    assert stored.secret_hash.startswith("$argon2id$")
    read = await client.get(f"{API}/clients/{body['id']}", headers=bearer(app, world.admin))
    assert "client_secret" not in read.json()


async def test_revoked_client_tokens_stop_working(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    client_token = access_token_for(app, f"client:{world.target_client.id}")
    token = {"Authorization": f"Bearer {client_token}"}
    assert (await client.get(f"{API}/auth/me", headers=token)).status_code == 200
    await client.delete(f"{API}/clients/{world.target_client.id}", headers=bearer(app, world.admin))
    assert (await client.get(f"{API}/auth/me", headers=token)).status_code == 401
