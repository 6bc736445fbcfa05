"""External references on individuals and cases: registered per agency, shown and found only
with the individual's identity. (Every actor against every route: tests/test_leak_crawler.py
plants a canary reference on each individual and case and crawls the lookups too.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.external_refs.models import ExternalRef
from tests.scenarios import Scenario, World, call, individual_body, register_consent

TRESERVA = {"system": "treserva", "id": "2026-0412"}


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def _with_refs(client: httpx.AsyncClient, app: FastAPI, world: World) -> dict[str, Any]:
    """SOC registers an adult with a Treserva id and opens a case with a Lifecare id; POL
    takes part."""
    person = await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "POST",
            "/individuals",
            json=individual_body(personal_number="19900101-0017", external_refs=[TRESERVA]),
        ),
        201,
    )
    case = await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "POST",
            "/cases",
            json={
                "individual_id": person["id"],
                "programme": "sig",
                "external_refs": [{"system": "lifecare", "id": "A-77"}],
            },
        ),
        201,
    )
    await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "POST",
            f"/cases/{case['id']}/participants",
            json={"agency_id": str(world.pol.id)},
        ),
        201,
    )
    return {"individual": person, "case": case}


def _refs(body: dict[str, Any]) -> set[tuple[str, str]]:
    return {(r["system"], r["id"]) for r in body["external_refs"]}


async def _found(
    client: httpx.AsyncClient, app: FastAPI, user: Any, path: str, ref: str
) -> list[str]:
    page = await _ok(await call(client, app, user, "GET", f"{path}?external_ref={ref}"))
    return [item["id"] for item in page["items"]]


async def test_references_are_identity_data(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    made = await _with_refs(client, app, world)
    person, case = made["individual"], made["case"]
    assert _refs(person) == {("treserva", "2026-0412")}
    assert person["external_refs"][0]["agency_id"] == str(world.soc.id)
    assert _refs(case) == {("lifecare", "A-77")}
    # SOC finds both; POL takes part in the case but may not see who it is about: nothing
    assert await _found(
        client, app, world.soc_caseworker, "/individuals", "treserva:2026-0412"
    ) == [person["id"]]
    assert await _found(client, app, world.soc_caseworker, "/cases", "lifecare:A-77") == [
        case["id"]
    ]
    police_view = await _ok(
        await call(client, app, world.pol_caseworker, "GET", f"/cases/{case['id']}")
    )
    assert police_view["external_refs"] == []
    assert police_view["individual"]["external_refs"] == []
    assert "2026-0412" not in str(police_view)
    assert "A-77" not in str(police_view)
    for user in (world.pol_caseworker, world.skola_coordinator):
        assert await _found(client, app, user, "/individuals", "treserva:2026-0412") == []
        assert await _found(client, app, user, "/cases", "lifecare:A-77") == []


async def test_a_consent_covering_identity_shows_them(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    made = await _with_refs(client, app, world)
    case = made["case"]
    consent = await register_consent(
        client,
        app,
        world,
        Scenario(individual=made["individual"], case=case),
        signatories=[
            {"role": "individual", "name": "Kim Testsson", "signed_at": "2026-11-30T10:00:00Z"}
        ],
    )
    assert consent.status_code == 201, consent.text
    police_view = await _ok(
        await call(client, app, world.pol_caseworker, "GET", f"/cases/{case['id']}")
    )
    assert _refs(police_view) == {("lifecare", "A-77")}
    assert _refs(police_view["individual"]) == {("treserva", "2026-0412")}
    assert await _found(client, app, world.pol_caseworker, "/cases", "lifecare:A-77") == [
        case["id"]
    ]


async def test_a_reference_is_unique_within_the_agency(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario, session: AsyncSession
) -> None:
    await _with_refs(client, app, world)
    again = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        "/individuals",
        json=individual_body(personal_number="19900102-0016", external_refs=[TRESERVA]),
    )
    assert again.status_code == 409, again.text
    assert "2026-0412" not in again.text
    # another agency's Treserva is another namespace
    police = await call(
        client,
        app,
        world.pol_coordinator,
        "POST",
        "/individuals",
        json=individual_body(personal_number="19900102-0016", external_refs=[TRESERVA]),
    )
    assert police.status_code == 201, police.text
    count = (await session.execute(select(func.count()).select_from(ExternalRef))).scalar_one()
    assert count == 3


@pytest.mark.parametrize(
    "refs",
    [
        [TRESERVA, TRESERVA],
        [{"system": "tre serva", "id": "1"}],
        [{"system": "treserva", "id": "has space"}],
        [{"system": "treserva", "id": "x" * 129}],
        [{"system": "", "id": "1"}],
        [{"system": "treserva"}],
        [{"system": "treserva", "id": "1", "extra": True}],
        [{"system": "treserva", "id": str(n)} for n in range(11)],
    ],
    ids=["twice", "system", "id", "long", "empty", "missing", "extra", "too-many"],
)
async def test_bad_references_are_a_422_and_nothing_is_stored(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
    refs: list[dict[str, Any]],
) -> None:
    response = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        "/individuals",
        json=individual_body(personal_number="19900101-0017", external_refs=refs),
    )
    assert response.status_code == 422, response.text
    assert (await session.execute(select(ExternalRef))).first() is None


@pytest.mark.parametrize("query", ["treserva", ":1", "tre serva:1", "treserva:", "a:b c"])
async def test_a_malformed_lookup_is_a_422(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario, query: str
) -> None:
    for path in ("/individuals", "/cases"):
        response = await call(
            client, app, world.soc_caseworker, "GET", path, params={"external_ref": query}
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "query.external_ref"


async def test_the_lead_agency_replaces_its_case_references(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    case = (await _with_refs(client, app, world))["case"]
    path = f"/cases/{case['id']}"
    changed = await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "PATCH",
            path,
            json={"external_refs": [{"system": "lifecare", "id": "A-78"}]},
        )
    )
    assert _refs(changed) == {("lifecare", "A-78")}
    assert changed["status"] == "open"  # only the references changed
    assert (
        await call(client, app, world.pol_caseworker, "PATCH", path, json={"external_refs": []})
    ).status_code == 403
    assert (
        await call(client, app, world.soc_coordinator, "PATCH", path, json={})
    ).status_code == 422
    await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "PATCH",
            path,
            json={"status": "closed", "closure_reason": "completed"},
        )
    )
    closed = await call(
        client, app, world.soc_coordinator, "PATCH", path, json={"external_refs": [TRESERVA]}
    )
    assert closed.status_code == 409, closed.text
