"""Sign-in: the grants, their audit records, throttling and refresh-token rotation."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.clients.schemas import ClientCreate
from app.clients.service import create_client
from app.users.models import Role, User
from tests.factories import (
    PASSWORD,
    actor_for,
    audit_events_after,
    audit_head,
    bearer,
    make_user,
)

TOKEN = "/api/v1/auth/token"


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        TOKEN, data={"grant_type": "password", "username": username, "password": password}
    )


@pytest.fixture
async def alice(session: AsyncSession) -> User:
    return await make_user(
        session, roles={Role.CASEWORKER}, password=PASSWORD, username="Alice.Andersson"
    )


async def test_password_grant_issues_tokens_and_is_audited(
    client: httpx.AsyncClient, alice: User, connection: AsyncConnection
) -> None:
    before = await audit_head(connection)
    response = await _login(client, "ALICE.andersson", PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["refresh_token"]
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json()["username"] == "alice.andersson"
    [event] = await audit_events_after(connection, before)
    assert (event.action, event.decision, event.actor_user_id) == ("auth.login", "permit", alice.id)
    assert event.request_id == response.headers["x-request-id"]
    assert event.client_address == "127.0.0.1"


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        ("alice.andersson", "wrong password!", "wrong password"),
        ("nobody.here", PASSWORD, "unknown user"),
    ],
)
async def test_failed_sign_in_is_a_uniform_401_and_audited(
    client: httpx.AsyncClient,
    alice: User,
    connection: AsyncConnection,
    username: str,
    password: str,
    reason: str,
) -> None:
    before = await audit_head(connection)
    response = await _login(client, username, password)
    assert response.status_code == 401
    body = response.json()
    assert body["detail"] == "Invalid credentials."
    assert body["error"] == "invalid_grant"
    [event] = await audit_events_after(connection, before)
    assert (event.action, event.decision, event.reason) == ("auth.login_failed", "deny", reason)
    assert "denied" in event.flags
    assert username not in str(event.__dict__)


async def test_deactivated_user_cannot_sign_in(
    client: httpx.AsyncClient, alice: User, session: AsyncSession, connection: AsyncConnection
) -> None:
    alice.active = False
    await session.flush()
    before = await audit_head(connection)
    response = await _login(client, "alice.andersson", PASSWORD)
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid credentials."
    [event] = await audit_events_after(connection, before)
    assert event.reason == "inactive account"


@pytest.mark.parametrize(
    "password",
    ["a" * 73, "\u00e5" * 73, "pass\x00word-with-nul", "x" * 1025, "x" * 4096],
    ids=["73-bytes", "146-bytes-utf8", "nul", "over-cap", "form-max"],
)
async def test_odd_passwords_never_give_a_500(
    client: httpx.AsyncClient, alice: User, password: str
) -> None:
    response = await _login(client, "alice.andersson", password)
    assert response.status_code == 401


async def test_megabyte_password_is_refused_without_a_500(
    client: httpx.AsyncClient, alice: User
) -> None:
    response = await _login(client, "alice.andersson", "p" * 1_000_000)
    assert response.status_code in {413, 422}
    assert response.headers["content-type"] == "application/problem+json"


async def test_user_with_odd_password_can_be_created_and_sign_in(
    client: httpx.AsyncClient, app: FastAPI, session: AsyncSession
) -> None:
    """73 bytes defeats bcrypt (it truncates at 72); argon2id takes it whole."""
    admin = await make_user(session, roles={Role.ADMIN})
    password = "\u00e5" * 36 + "x"  # 73 bytes in UTF-8
    created = await client.post(
        "/api/v1/users",
        headers=bearer(app, admin),
        json={
            "username": "odd.password",
            "display_name": "Odd",
            "agency_id": str(admin.agency_id),
            "roles": ["caseworker"],
            "password": password,
        },
    )
    assert created.status_code == 201, created.text
    assert (await _login(client, "odd.password", password)).status_code == 200
    assert (await _login(client, "odd.password", password[:-1])).status_code == 401


async def test_repeated_failures_are_throttled_with_retry_after(
    client: httpx.AsyncClient, alice: User, connection: AsyncConnection
) -> None:
    for _ in range(5):
        assert (await _login(client, "alice.andersson", "wrong")).status_code == 401
    before = await audit_head(connection)
    response = await _login(client, "alice.andersson", PASSWORD)
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 901
    [event] = await audit_events_after(connection, before)
    assert (event.action, event.decision) == ("auth.login_throttled", "deny")


async def test_throttle_counts_per_username_not_globally(
    client: httpx.AsyncClient, alice: User, session: AsyncSession
) -> None:
    await make_user(session, password=PASSWORD, username="bob.berg")
    for _ in range(5):
        await _login(client, "alice.andersson", "wrong")
    assert (await _login(client, "bob.berg", PASSWORD)).status_code == 200


async def test_successful_sign_in_clears_the_username_count(
    client: httpx.AsyncClient, alice: User
) -> None:
    for _ in range(4):
        await _login(client, "alice.andersson", "wrong")
    assert (await _login(client, "alice.andersson", PASSWORD)).status_code == 200
    for _ in range(4):
        await _login(client, "alice.andersson", "wrong")
    assert (await _login(client, "alice.andersson", PASSWORD)).status_code == 200


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": token})


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient, alice: User, connection: AsyncConnection
) -> None:
    first = (await _login(client, "alice.andersson", PASSWORD)).json()["refresh_token"]
    second = await _refresh(client, first)
    assert second.status_code == 200
    second_refresh = second.json()["refresh_token"]
    assert second_refresh != first

    before = await audit_head(connection)
    reused = await _refresh(client, first)
    assert reused.status_code == 401
    [event] = await audit_events_after(connection, before)
    assert (event.action, event.decision) == ("auth.refresh_reuse", "deny")
    # The thief's (or the owner's) newer token dies with the family.
    assert (await _refresh(client, second_refresh)).status_code == 401


async def test_revoke_ends_the_sign_in(client: httpx.AsyncClient, alice: User) -> None:
    refresh = (await _login(client, "alice.andersson", PASSWORD)).json()["refresh_token"]
    assert (await client.post("/api/v1/auth/revoke", data={"token": refresh})).status_code == 200
    assert (await _refresh(client, refresh)).status_code == 401
    garbage = await client.post("/api/v1/auth/revoke", data={"token": "not-a-token"})
    assert garbage.status_code == 200


async def test_refresh_stops_for_a_deactivated_user(
    client: httpx.AsyncClient, alice: User, session: AsyncSession
) -> None:
    refresh = (await _login(client, "alice.andersson", PASSWORD)).json()["refresh_token"]
    alice.active = False
    await session.flush()
    assert (await _refresh(client, refresh)).status_code == 401


async def test_access_token_is_not_a_refresh_token(client: httpx.AsyncClient, alice: User) -> None:
    access = (await _login(client, "alice.andersson", PASSWORD)).json()["access_token"]
    assert (await _refresh(client, access)).status_code == 401


async def test_client_credentials(
    client: httpx.AsyncClient, session: AsyncSession, connection: AsyncConnection
) -> None:
    admin = await make_user(session, roles={Role.ADMIN})
    created = await create_client(
        session,
        actor_for(admin),
        data=ClientCreate(name="Treserva sync", agency_id=admin.agency_id),
    )
    form = {
        "grant_type": "client_credentials",
        "client_id": created.client_id,
        "client_secret": created.client_secret,
    }
    ok = await client.post(TOKEN, data=form)
    assert ok.status_code == 200
    assert "refresh_token" not in ok.json()
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {ok.json()['access_token']}"}
    )
    assert me.json()["kind"] == "client"
    assert me.json()["username"] == created.client_id

    wrong = await client.post(TOKEN, data={**form, "client_secret": "nope"})
    assert wrong.status_code == 401


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "password", "username": "x"},
        {"grant_type": "client_credentials", "client_id": "x"},
        {"grant_type": "refresh_token"},
        {"grant_type": "authorization_code"},
        {},
    ],
)
async def test_incomplete_grants_are_422(client: httpx.AsyncClient, form: dict[str, str]) -> None:
    response = await client.post(TOKEN, data=form)
    assert response.status_code == 422
    assert response.json()["errors"]
