"""Broken object-level authorization: another agency's ids slipped into bodies, query strings,
cursors and lists of the caller's own resources.

SKOLA runs its own case for its own pupil; SOC leads a case with POL (tests/scenarios.py)
with an entry, an action and a consent. Every attempt by SKOLA to reach SOC's objects
through its own requests is refused without confirming that they exist, and changes
nothing. (Other agencies' ids in paths: tests/test_authorization_matrix.py.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.actions.models import CaseAction
from app.cases.models import Case, CaseParticipant
from app.consents.models import Consent
from app.pagination import encode_cursor
from tests.factories import audit_events_after, audit_head
from tests.scenarios import CHILD_NUMBER, Scenario, World, call, individual_body, register_consent

PUPIL_NUMBER = "20100303-2370"


async def _skola_case(client: httpx.AsyncClient, app: FastAPI, world: World) -> dict[str, Any]:
    pupil = await call(
        client,
        app,
        world.skola_coordinator,
        "POST",
        "/individuals",
        json=individual_body(personal_number=PUPIL_NUMBER, given_name="Elev"),
    )
    assert pupil.status_code == 201, pupil.text
    case = await call(
        client,
        app,
        world.skola_coordinator,
        "POST",
        "/cases",
        json={"individual_id": pupil.json()["id"], "programme": "sspf"},
    )
    assert case.status_code == 201, case.text
    return dict(case.json())


async def _soc_objects(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> dict[str, str]:
    case = scenario.case["id"]
    entry = await call(
        client,
        app,
        world.soc_caseworker,
        "POST",
        f"/cases/{case}/entries",
        json={"category": "social_services", "title": "Hembesök", "body": "Text."},
    )
    action = await call(
        client,
        app,
        world.soc_caseworker,
        "POST",
        f"/cases/{case}/actions",
        json={"type": "samtal", "title": "Samtal", "responsible_agency_id": str(world.soc.id)},
    )
    consent = await register_consent(client, app, world, scenario)
    assert {entry.status_code, action.status_code, consent.status_code} == {201}
    return {
        "entry": entry.json()["id"],
        "action": action.json()["id"],
        "consent": consent.json()["id"],
    }


async def _counts(connection: AsyncConnection) -> tuple[int, ...]:
    counts = []
    for model in (Case, CaseParticipant, CaseAction, Consent):
        counts.append(
            int((await connection.execute(select(func.count()).select_from(model))).scalar_one())
        )
    return tuple(counts)


async def test_another_agencys_ids_in_bodies_are_refused_and_change_nothing(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    await _soc_objects(client, app, world, scenario)
    own = await _skola_case(client, app, world)
    soc_guardian = scenario.individual["guardians"][0]["id"]
    signed = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    attempts: list[tuple[str, str, dict[str, Any], int]] = [
        # a case for SOC's individual: SKOLA must not learn that the individual exists
        (
            "POST",
            "/cases",
            {"individual_id": scenario.individual["id"], "programme": "sspf"},
            404,
        ),
        # an action carried out by an agency outside SKOLA's case
        (
            "POST",
            f"/cases/{own['id']}/actions",
            {"type": "t", "title": "t", "responsible_agency_id": str(world.soc.id)},
            422,
        ),
        # assigned to a user of another agency
        (
            "POST",
            f"/cases/{own['id']}/actions",
            {
                "type": "t",
                "title": "t",
                "responsible_agency_id": str(world.skola.id),
                "assignee_id": str(world.soc_caseworker.id),
            },
            422,
        ),
        # a participant with users of a third agency
        (
            "POST",
            f"/cases/{own['id']}/participants",
            {"agency_id": str(world.pol.id), "user_ids": [str(world.soc_caseworker.id)]},
            422,
        ),
        # a consent signed by a guardian of SOC's individual
        (
            "POST",
            f"/cases/{own['id']}/consents",
            {
                "signatories": [
                    {
                        "role": "guardian",
                        "guardian_id": soc_guardian,
                        "name": "G",
                        "signed_at": signed,
                    }
                ],
                "agency_ids": [str(world.skola.id), str(world.soc.id)],
                "categories": ["school"],
                "purpose": "p",
                "valid_from": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
                "valid_until": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
                "method": "paper",
            },
            422,
        ),
    ]
    before = await _counts(connection)
    for method, path, body, status in attempts:
        head = await audit_head(connection)
        response = await call(client, app, world.skola_coordinator, method, path, json=body)
        assert response.status_code == status, (path, response.text)
        assert scenario.individual["id"] not in response.text
        if status == 404:
            [denied] = await audit_events_after(connection, head)
            assert denied.decision == "deny"
            assert str(denied.individual_id) == scenario.individual["id"]
    assert await _counts(connection) == before


async def test_query_strings_and_cursors_reach_nothing_of_another_agency(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    soc = await _soc_objects(client, app, world, scenario)
    own = await _skola_case(client, app, world)
    for path in ("/cases", "/individuals"):
        head = await audit_head(connection)
        found = await call(
            client,
            app,
            world.skola_coordinator,
            "GET",
            path,
            params={"personal_number": CHILD_NUMBER},
        )
        assert found.status_code == 200
        items = found.json() if isinstance(found.json(), list) else found.json()["items"]
        assert items == []
        assert CHILD_NUMBER not in found.text
        events = await audit_events_after(connection, head)
        assert events, "a search is audited, hits or not"
        assert all(CHILD_NUMBER not in (e.reason or "") for e in events)
    listed = await call(client, app, world.skola_coordinator, "GET", "/cases")
    assert [c["id"] for c in listed.json()["items"]] == [own["id"]]
    # A cursor is a position, not a permission: one forged from SOC's entry and action
    # still pages only through what SKOLA may see in its own case.
    for kind, key in (("entries", "entry"), ("actions", "action")):
        forged = encode_cursor([datetime.now(UTC).isoformat(), soc[key]])
        paged = await call(
            client,
            app,
            world.skola_coordinator,
            "GET",
            f"/cases/{own['id']}/{kind}",
            params={"cursor": forged},
        )
        assert paged.status_code == 200, paged.text
        assert soc[key] not in paged.text
        # and SOC's case does not open for SKOLA whatever the cursor says
        other = await call(
            client,
            app,
            world.skola_coordinator,
            "GET",
            f"/cases/{scenario.case['id']}/{kind}",
            params={"cursor": forged},
        )
        assert other.status_code == 404
    consents = await call(
        client, app, world.skola_coordinator, "GET", f"/cases/{own['id']}/consents"
    )
    assert soc["consent"] not in consents.text


@pytest.mark.parametrize(
    "key",
    [["not-a-date", "00000000-0000-0000-0000-000000000000"], ["2026-01-01T00:00:00", "x"], ["a"]],
    ids=["bad-date", "bad-id", "short"],
)
async def test_a_crafted_cursor_is_a_422_on_every_list(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario, key: list[str]
) -> None:
    cursor = encode_cursor(key)
    for path in (
        "/cases",
        f"/cases/{scenario.case['id']}/entries",
        f"/cases/{scenario.case['id']}/actions",
    ):
        response = await call(
            client, app, world.soc_coordinator, "GET", path, params={"cursor": cursor}
        )
        assert response.status_code == 422, (path, response.text)
        assert "not-a-date" not in response.text
