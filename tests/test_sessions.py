"""Sign-ins as state: every way a sign-in ends is seen by the very next request of any of
its tokens (ASVS 3.3.1, 8.3.2). Before, an access token kept working for up to 15 minutes
after sign-out, refresh-token reuse or a password change.

Each test signs in through /auth/token, as a user does, twice: the sign-in that ends and
another that must not (except where every sign-in of the user ends).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.users.models import Role, User
from tests.factories import PASSWORD, audit_events_after, audit_head, bearer, make_user

API = "/api/v1"


@dataclass
class SignedIn:
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


async def _sign_in(client: httpx.AsyncClient, user: User) -> SignedIn:
    response = await client.post(
        f"{API}/auth/token",
        data={"grant_type": "password", "username": user.username, "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return SignedIn(body["access_token"], body["refresh_token"])


async def _me(client: httpx.AsyncClient, signed_in: SignedIn) -> int:
    return (await client.get(f"{API}/auth/me", headers=signed_in.headers)).status_code


@pytest.fixture
async def people(session: AsyncSession) -> tuple[User, User]:
    admin = await make_user(session, roles={Role.ADMIN})
    user = await make_user(session, roles={Role.CASEWORKER}, password=PASSWORD)
    return admin, user


Ending = Callable[[httpx.AsyncClient, FastAPI, User, User, SignedIn], Awaitable[Any]]


async def _revoke_refresh(
    client: httpx.AsyncClient, app: FastAPI, admin: User, user: User, s: SignedIn
) -> None:
    response = await client.post(f"{API}/auth/revoke", data={"token": s.refresh})
    assert response.status_code == 200


async def _revoke_access(
    client: httpx.AsyncClient, app: FastAPI, admin: User, user: User, s: SignedIn
) -> None:
    response = await client.post(f"{API}/auth/revoke", data={"token": s.access})
    assert response.status_code == 200


async def _reuse(
    client: httpx.AsyncClient, app: FastAPI, admin: User, user: User, s: SignedIn
) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": s.refresh}
    assert (await client.post(f"{API}/auth/token", data=form)).status_code == 200
    assert (await client.post(f"{API}/auth/token", data=form)).status_code == 401  # reuse


def _admin_changes(change: dict[str, Any]) -> Ending:
    async def ending(
        client: httpx.AsyncClient, app: FastAPI, admin: User, user: User, s: SignedIn
    ) -> None:
        response = await client.patch(
            f"{API}/users/{user.id}", json=change, headers=bearer(app, admin)
        )
        assert response.status_code == 200, response.text

    return ending


ONE_SIGN_IN = {"revoke-refresh": _revoke_refresh, "revoke-access": _revoke_access, "reuse": _reuse}
EVERY_SIGN_IN = {
    "password": _admin_changes({"password": "another long enough password"}),
    "deactivation": _admin_changes({"active": False}),
    "roles": _admin_changes({"roles": ["coordinator"]}),
}


@pytest.mark.parametrize("way", list(ONE_SIGN_IN))
async def test_ending_a_sign_in_ends_its_access_token_at_the_next_request(
    client: httpx.AsyncClient, app: FastAPI, people: tuple[User, User], way: str
) -> None:
    admin, user = people
    ended, other = await _sign_in(client, user), await _sign_in(client, user)
    assert await _me(client, ended) == 200
    await ONE_SIGN_IN[way](client, app, admin, user, ended)
    assert await _me(client, ended) == 401
    refresh = {"grant_type": "refresh_token", "refresh_token": ended.refresh}
    assert (await client.post(f"{API}/auth/token", data=refresh)).status_code == 401
    assert await _me(client, other) == 200  # another sign-in of the same user goes on


@pytest.mark.parametrize("way", list(EVERY_SIGN_IN))
async def test_an_account_change_ends_every_sign_in_of_the_user(
    client: httpx.AsyncClient, app: FastAPI, people: tuple[User, User], way: str
) -> None:
    admin, user = people
    first, second = await _sign_in(client, user), await _sign_in(client, user)
    await EVERY_SIGN_IN[way](client, app, admin, user, first)
    assert await _me(client, first) == 401
    assert await _me(client, second) == 401


async def test_a_display_name_change_ends_nothing(
    client: httpx.AsyncClient, app: FastAPI, people: tuple[User, User]
) -> None:
    admin, user = people
    signed_in = await _sign_in(client, user)
    await _admin_changes({"display_name": "Nytt Namn"})(client, app, admin, user, signed_in)
    assert await _me(client, signed_in) == 200


async def test_signing_out_is_recorded_and_a_foreign_token_changes_nothing(
    client: httpx.AsyncClient,
    app: FastAPI,
    people: tuple[User, User],
    connection: AsyncConnection,
) -> None:
    _, user = people
    signed_in = await _sign_in(client, user)
    before = await audit_head(connection)
    response = await client.post(f"{API}/auth/revoke", data={"token": "not.a.token"})
    assert response.status_code == 200  # RFC 7009: no telling
    assert await audit_events_after(connection, before) == []
    assert await _me(client, signed_in) == 200
    await client.post(f"{API}/auth/revoke", data={"token": signed_in.access})
    [event] = await audit_events_after(connection, before)
    assert (event.action, event.actor_user_id) == ("auth.logout", user.id)
