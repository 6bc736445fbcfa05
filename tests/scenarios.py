"""The shared world of the API tests, loaded as a pytest plugin (tests/conftest.py).

Social services (SOC) registers a minor and leads a SIG case; the police (POL) takes part;
a school (SKOLA) does not. ``world`` holds the agencies and one user per role;
``scenario`` registers the individual and opens the case; the helpers call the API as a
given user and register the standard consent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.agencies.models import Agency, AgencyKind
from app.users.models import Role, User
from tests.factories import bearer, make_agency, make_user
from tests.oidc_provider import signs_in_through_providers

API = "/api/v1"
CHILD_NUMBER = "20100303-2388"  # a valid personnummer: born 2010-03-03, a minor in 2026


@dataclass
class World:
    soc: Agency
    pol: Agency
    skola: Agency
    soc_coordinator: User
    soc_caseworker: User
    pol_caseworker: User
    pol_coordinator: User
    skola_coordinator: User
    soc_admin: User
    soc_auditor: User


@pytest.fixture
async def world(session: AsyncSession, request: pytest.FixtureRequest) -> World:
    soc = await make_agency(session, name="Socialtjänsten", kind=AgencyKind.SOCIALTJANST.value)
    pol = await make_agency(session, name="Polisen", kind=AgencyKind.POLIS.value)
    skola = await make_agency(session, name="Skolan", kind=AgencyKind.SKOLA.value)
    world = World(
        soc=soc,
        pol=pol,
        skola=skola,
        soc_coordinator=await make_user(session, roles={Role.COORDINATOR}, agency=soc),
        soc_caseworker=await make_user(session, roles={Role.CASEWORKER}, agency=soc),
        pol_caseworker=await make_user(session, roles={Role.CASEWORKER}, agency=pol),
        pol_coordinator=await make_user(session, roles={Role.COORDINATOR}, agency=pol),
        skola_coordinator=await make_user(session, roles={Role.COORDINATOR}, agency=skola),
        soc_admin=await make_user(session, roles={Role.ADMIN}, agency=soc),
        soc_auditor=await make_user(session, roles={Role.AUDITOR}, agency=soc),
    )
    providers = signs_in_through_providers(request)
    if providers is not None:
        # The oidc variant: every user signs in through their agency's provider.
        for user in vars(world).values():
            if isinstance(user, User):
                agency = {soc.id: soc, pol.id: pol, skola.id: skola}[user.agency_id]
                providers.link(user, agency.kind)
        await session.flush()
    return world


def individual_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "personal_number": CHILD_NUMBER,
        "given_name": "Kim",
        "family_name": "Testsson",
        "protected_identity": False,
        "guardians": [
            {"given_name": "Mamma", "family_name": "Testsson", "has_custody": True},
            {"given_name": "Pappa", "family_name": "Testsson", "has_custody": True},
        ],
    }
    body.update(overrides)
    return body


@dataclass
class Scenario:
    individual: dict[str, Any]
    case: dict[str, Any]


async def call(
    client: httpx.AsyncClient,
    app: FastAPI,
    user: User | None,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> httpx.Response:
    merged = (bearer(app, user) if user else {}) | (headers or {})
    return await client.request(method, API + path, headers=merged, **kw)


async def open_case(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    *,
    police: bool = False,
    police_users: Sequence[User] = (),
    **individual: Any,
) -> Scenario:
    """As SOC's coordinator: register an individual (``individual_body(**individual)``),
    open a SIG case for them and, with ``police``, let POL take part (``police_users``
    named on the case)."""
    created = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        "/individuals",
        json=individual_body(**individual),
    )
    assert created.status_code == 201, created.text
    case = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        "/cases",
        json={"individual_id": created.json()["id"], "programme": "sig"},
    )
    assert case.status_code == 201, case.text
    if police:
        participant: dict[str, Any] = {"agency_id": str(world.pol.id)}
        if police_users:
            participant["user_ids"] = [str(user.id) for user in police_users]
        joined = await call(
            client,
            app,
            world.soc_coordinator,
            "POST",
            f"/cases/{case.json()['id']}/participants",
            json=participant,
        )
        assert joined.status_code == 201, joined.text
    return Scenario(individual=created.json(), case=case.json())


@pytest.fixture
async def scenario(client: httpx.AsyncClient, app: FastAPI, world: World) -> Scenario:
    """A SIG case led by SOC for a registered minor, with POL taking part."""
    return await open_case(client, app, world, police=True, police_users=[world.pol_caseworker])


def consent_body(scenario: Scenario, world: World, **overrides: Any) -> dict[str, Any]:
    guardians = scenario.individual["guardians"]
    signed = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    body: dict[str, Any] = {
        "signatories": [
            {
                "role": "guardian",
                "guardian_id": g["id"],
                "name": g["given_name"],
                "signed_at": signed,
            }
            for g in guardians
        ],
        "agency_ids": [str(world.soc.id), str(world.pol.id)],
        "categories": ["identity", "social_services", "police", "plan"],
        "purpose": "Samordnade insatser inom SIG",
        "valid_from": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "valid_until": (datetime.now(UTC) + timedelta(days=180)).isoformat(),
        "method": "paper",
    }
    body.update(overrides)
    return body


async def register_consent(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario, **overrides: Any
) -> httpx.Response:
    return await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/cases/{scenario.case['id']}/consents",
        json=consent_body(scenario, world, **overrides),
    )
