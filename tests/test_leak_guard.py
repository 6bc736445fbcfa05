"""The suite-wide protected-identity guard (tests/leak_guard.py) can fail: fed a response
that shows a protected identity to another agency, it raises."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import bearer
from tests.leak_guard import ProtectedIdentityGuard, ProtectedIdentityLeak
from tests.scenarios import World, call, individual_body

NUMBER = "20100303-2370"


def _response(app: FastAPI, user: object, body: object) -> httpx.Response:
    request = httpx.Request("GET", "http://testserver/api/v1/x", headers=bearer(app, user))  # type: ignore[arg-type]
    return httpx.Response(200, json=body, request=request)


@pytest.mark.parametrize(
    "shown",
    [
        {"given_name": "Hemlig"},
        {"items": [{"personal_number": NUMBER}]},
        {"detail": "no match for 201003032370"},
        {"nested": {"deeper": ["100303-2370"]}},
    ],
    ids=["name", "number", "digits-in-text", "short-form"],
)
async def test_the_guard_catches_a_protected_identity_shown_to_another_agency(
    client: httpx.AsyncClient, app: FastAPI, world: World, shown: object
) -> None:
    created = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        "/individuals",
        json=individual_body(personal_number=NUMBER, given_name="Hemlig", protected_identity=True),
    )
    assert created.status_code == 201  # and the guard let the registering agency see it
    guard = ProtectedIdentityGuard(app)
    with pytest.raises(ProtectedIdentityLeak):
        await guard(_response(app, world.pol_caseworker, shown))
    await guard(_response(app, world.soc_caseworker, shown))  # its own: no leak
    await guard(_response(app, world.pol_caseworker, {"given_name": "Kim"}))  # someone else
