"""Individuals, cases, participants and consents through the API, per actor.

The world: social services (SOC) registers a minor and leads a SIG case; the police
(POL) takes part; a school (SKOLA) does not. Each test checks the status *and* the audit
record; hidden things answer exactly like things that do not exist.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.individuals.models import Individual
from app.users.models import User
from tests.factories import audit_events_after, audit_head
from tests.scenarios import (
    API,
    CHILD_NUMBER,
    Scenario,
    World,
    call,
    consent_body,
    individual_body,
    register_consent,
)

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _without_request_id(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    body.pop("request_id", None)
    return body


# --- individuals ---------------------------------------------------------------------


async def test_a_coordinator_registers_an_individual_and_it_is_audited(
    client: httpx.AsyncClient, app: FastAPI, world: World, connection: AsyncConnection
) -> None:
    before = await audit_head(connection)
    response = await call(
        client, app, world.soc_coordinator, "POST", "/individuals", json=individual_body()
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["personal_number"] == CHILD_NUMBER
    assert body["birth_date"] == "2010-03-03"
    assert body["number_kind"] == "personnummer"
    assert body["identity_visible"] is True
    assert len(body["guardians"]) == 2
    [event] = await audit_events_after(connection, before)
    assert (event.action, event.decision, str(event.individual_id)) == (
        "individual.create",
        "permit",
        body["id"],
    )
    assert event.policy_id == "individual.create.coordinator_in_own_agency"
    assert "Kim" not in str(vars(event))
    assert "2010" not in (event.reason or "")


@pytest.mark.parametrize("role", ["soc_caseworker", "soc_admin", "soc_auditor"])
async def test_only_coordinators_register_individuals(
    client: httpx.AsyncClient, app: FastAPI, world: World, connection: AsyncConnection, role: str
) -> None:
    before = await audit_head(connection)
    response = await call(
        client, app, getattr(world, role), "POST", "/individuals", json=individual_body()
    )
    assert response.status_code == 403
    [event] = await audit_events_after(connection, before)
    assert (event.action, event.decision) == ("individual.create", "deny")
    assert await _count_individuals(connection) == 0


async def _count_individuals(connection: AsyncConnection) -> int:
    return int(
        (await connection.execute(select(func.count()).select_from(Individual))).scalar_one()
    )


async def test_anonymous_is_401_everywhere(client: httpx.AsyncClient) -> None:
    some = uuid.uuid4()
    for method, path in [
        ("POST", "/individuals"),
        ("GET", f"/individuals/{some}"),
        ("GET", "/cases"),
        ("POST", "/cases"),
        ("GET", f"/cases/{some}"),
        ("PATCH", f"/cases/{some}"),
        ("GET", f"/cases/{some}/participants"),
        ("GET", f"/cases/{some}/consents"),
        ("GET", f"/consents/{some}"),
        ("POST", f"/consents/{some}/withdrawal"),
        ("PUT", f"/consents/{some}/document"),
        ("GET", f"/consents/{some}/document"),
        ("GET", "/categories"),
        ("GET", "/legal-bases"),
    ]:
        assert (await client.request(method, API + path, json={})).status_code == 401, path


async def test_the_same_person_twice_in_one_agency_is_409_but_another_agency_is_not_told(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    first = await call(
        client, app, world.soc_coordinator, "POST", "/individuals", json=individual_body()
    )
    assert first.status_code == 201
    again = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        "/individuals",
        json=individual_body(personal_number="201003032388"),
    )
    assert again.status_code == 409
    elsewhere = await call(
        client, app, world.skola_coordinator, "POST", "/individuals", json=individual_body()
    )
    assert elsewhere.status_code == 201
    assert elsewhere.json()["id"] != first.json()["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"personal_number": "20100303-2387"}, "body.personal_number"),
        ({"personal_number": None}, "body.birth_date"),
        ({"personal_number": None, "birth_date": "2099-01-01"}, "body.birth_date"),
        ({"birth_date": "2010-03-04"}, "body.birth_date"),
        (
            {
                "guardians": [
                    {
                        "given_name": "A",
                        "family_name": "B",
                        "has_custody": True,
                        "personal_number": "123",
                    }
                ]
            },
            "body.guardians.0.personal_number",
        ),
    ],
)
async def test_invalid_individuals_are_422_without_echo(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    connection: AsyncConnection,
    change: dict[str, Any],
    field: str,
) -> None:
    response = await call(
        client, app, world.soc_coordinator, "POST", "/individuals", json=individual_body(**change)
    )
    assert response.status_code == 422, response.text
    assert field in {e["field"] for e in response.json()["errors"]}
    assert "2387" not in re.sub(r"[0-9a-f-]{32,36}", "", response.text)
    assert await _count_individuals(connection) == 0


async def test_without_a_number_a_reserve_id_is_assigned(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    response = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        "/individuals",
        json=individual_body(personal_number=None, birth_date="2009-07-01"),
    )
    assert response.status_code == 201
    assert response.json()["reserve_id"].startswith("R-")
    assert response.json()["personal_number"] is None


async def test_identity_is_shown_to_the_registering_agency_only(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    path = f"/individuals/{scenario.individual['id']}"
    own = (await call(client, app, world.soc_caseworker, "GET", path)).json()
    assert own["given_name"] == "Kim"
    assert own["identity_visible"] is True
    police = await call(client, app, world.pol_caseworker, "GET", path)
    assert police.status_code == 200
    body = police.json()
    assert body["identity_visible"] is False
    assert body["given_name"] is body["personal_number"] is body["birth_date"] is None
    assert body["guardians"] == []
    assert body["pseudonym"] == own["pseudonym"]
    assert "Kim" not in police.text
    assert "2388" not in re.sub(r"[0-9a-f-]{32,36}", "", police.text)


@pytest.mark.parametrize("role", ["skola_coordinator", "soc_admin", "soc_auditor"])
async def test_outsiders_get_the_same_404_as_for_nothing(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    role: str,
) -> None:
    user = getattr(world, role)
    for kind, real in [("individuals", scenario.individual["id"]), ("cases", scenario.case["id"])]:
        before = await audit_head(connection)
        hidden = await call(client, app, user, "GET", f"/{kind}/{real}")
        missing = await call(client, app, user, "GET", f"/{kind}/{uuid.uuid4()}")
        assert hidden.status_code == missing.status_code == 404
        assert _without_request_id(hidden) == _without_request_id(missing)
        events = await audit_events_after(connection, before)
        assert [e.decision for e in events] == ["deny", "deny"]


async def test_search_finds_only_what_the_caller_may_identify(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    own = await call(
        client,
        app,
        world.soc_caseworker,
        "GET",
        "/individuals",
        params={"personal_number": "201003032388"},
    )
    assert [i["id"] for i in own.json()["items"]] == [scenario.individual["id"]]
    before = await audit_head(connection)
    police = await call(
        client,
        app,
        world.pol_caseworker,
        "GET",
        "/individuals",
        params={"personal_number": CHILD_NUMBER},
    )
    assert police.status_code == 200
    assert police.json() == {"items": [], "next_cursor": None}
    [event] = await audit_events_after(connection, before)
    assert event.action == "individual.search"
    assert "201003032388" not in str(vars(event))
    assert "20100303-2388" not in str(vars(event))


async def test_protected_identity_stays_with_the_registering_agency(
    client: httpx.AsyncClient, app: FastAPI, world: World, connection: AsyncConnection
) -> None:
    created = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        "/individuals",
        json=individual_body(protected_identity=True),
    )
    case = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        "/cases",
        json={"individual_id": created.json()["id"], "programme": "trefas"},
    )
    await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/cases/{case.json()['id']}/participants",
        json={"agency_id": str(world.pol.id)},
    )
    police = await call(client, app, world.pol_caseworker, "GET", f"/cases/{case.json()['id']}")
    assert police.status_code == 200
    assert police.json()["individual"]["identity_visible"] is False
    assert "Kim" not in police.text


# --- cases ---------------------------------------------------------------------------


async def test_case_is_led_by_the_creator_and_read_by_participants(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    case = scenario.case
    assert case["lead_agency_id"] == str(world.soc.id)
    assert case["status"] == "open"
    for user in (world.soc_caseworker, world.pol_caseworker, world.pol_coordinator):
        assert (await call(client, app, user, "GET", f"/cases/{case['id']}")).status_code == 200


@pytest.mark.parametrize(
    ("role", "status"),
    [("soc_caseworker", 403), ("pol_coordinator", 404), ("skola_coordinator", 404)],
)
async def test_only_the_registering_agencys_coordinator_opens_a_case(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    role: str,
    status: int,
) -> None:
    response = await call(
        client,
        app,
        getattr(world, role),
        "POST",
        "/cases",
        json={"individual_id": scenario.individual["id"], "programme": "sspf"},
    )
    # POL takes part in a case of this individual, so it knows of them: 403, not 404.
    expected = 403 if role == "pol_coordinator" else status
    assert response.status_code == expected


async def test_case_list_is_filtered_by_participation(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    for user, expected in [
        (world.soc_caseworker, [scenario.case["id"]]),
        (world.pol_caseworker, [scenario.case["id"]]),
        (world.skola_coordinator, []),
        (world.soc_admin, []),
    ]:
        listed = await call(client, app, user, "GET", "/cases")
        assert [c["id"] for c in listed.json()["items"]] == expected
    by_number = {"personal_number": CHILD_NUMBER}
    own = await call(client, app, world.soc_caseworker, "GET", "/cases", params=by_number)
    assert len(own.json()["items"]) == 1
    police = await call(client, app, world.pol_caseworker, "GET", "/cases", params=by_number)
    assert police.json()["items"] == []


async def test_status_transitions(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    path = f"/cases/{scenario.case['id']}"
    lead = world.soc_coordinator

    async def patch(body: dict[str, Any], user: User = lead) -> httpx.Response:
        return await call(client, app, user, "PATCH", path, json=body)

    assert (await patch({"status": "active"}, world.pol_caseworker)).status_code == 403
    assert (await patch({"status": "active"}, world.skola_coordinator)).status_code == 404
    assert (await patch({"status": "paused"})).status_code == 409
    assert (await patch({"status": "active"})).status_code == 200
    assert (await patch({"status": "active", "closure_reason": "moved"})).status_code == 422
    assert (await patch({"status": "closed"})).status_code == 422
    closed = await patch({"status": "closed", "closure_reason": "completed"})
    assert closed.status_code == 200
    assert closed.json()["closed_at"]
    assert (await patch({"status": "paused"})).status_code == 409
    reopened = await patch({"status": "active"})  # the lead coordinator reopens it
    assert reopened.status_code == 200
    assert reopened.json()["closure_reason"] is None
    assert reopened.json()["closed_at"] is None


async def test_removing_an_agency_ends_its_access_at_once(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    case_path = f"/cases/{scenario.case['id']}"
    assert (await call(client, app, world.pol_caseworker, "GET", case_path)).status_code == 200
    removed = await call(
        client, app, world.soc_coordinator, "DELETE", f"{case_path}/participants/{world.pol.id}"
    )
    assert removed.status_code == 204
    assert (await call(client, app, world.pol_caseworker, "GET", case_path)).status_code == 404
    lead = await call(
        client, app, world.soc_coordinator, "DELETE", f"{case_path}/participants/{world.soc.id}"
    )
    assert lead.status_code == 409


async def test_participants_must_exist_and_bring_their_own_users(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    path = f"/cases/{scenario.case['id']}/participants"
    again = await call(
        client, app, world.soc_coordinator, "POST", path, json={"agency_id": str(world.pol.id)}
    )
    assert again.status_code == 409
    wrong_user = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        path,
        json={"agency_id": str(world.skola.id), "user_ids": [str(world.pol_caseworker.id)]},
    )
    assert wrong_user.status_code == 422
    unknown = await call(
        client, app, world.soc_coordinator, "POST", path, json={"agency_id": str(uuid.uuid4())}
    )
    assert unknown.status_code == 422
    listed = await call(client, app, world.pol_caseworker, "GET", path)
    assert {p["agency_id"] for p in listed.json()["items"]} == {
        str(world.soc.id),
        str(world.pol.id),
    }


# --- consents ------------------------------------------------------------------------


async def test_a_consent_signed_by_both_custodial_guardians_is_active(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    before = await audit_head(connection)
    response = await register_consent(client, app, world, scenario)
    assert response.status_code == 201, response.text
    consent = response.json()
    assert consent["status"] == "active"
    assert set(consent["agency_ids"]) == {str(world.soc.id), str(world.pol.id)}
    [event] = await audit_events_after(connection, before)
    assert (event.action, str(event.consent_id)) == ("consent.register", consent["id"])
    police = await call(client, app, world.pol_caseworker, "GET", f"/consents/{consent['id']}")
    assert police.status_code == 200
    school = await call(client, app, world.skola_coordinator, "GET", f"/consents/{consent['id']}")
    assert school.status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"categories": ["identity", "gossip"]}, "body.categories"),
        ({"agency_ids": []}, "body.agency_ids"),
        ({"valid_until": (datetime.now(UTC) - timedelta(days=2)).isoformat()}, "body.valid_until"),
        (
            {"valid_until": (datetime.now(UTC) + timedelta(days=400)).isoformat()},
            "body.valid_until",
        ),
        ({"supersedes_id": str(uuid.uuid4())}, "body.supersedes_id"),
    ],
)
async def test_invalid_consents_are_422(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    change: dict[str, Any],
    field: str,
) -> None:
    response = await register_consent(client, app, world, scenario, **change)
    assert response.status_code == 422, response.text
    assert field in {e["field"] for e in response.json()["errors"]}


async def test_a_consent_naming_one_agency_twice_is_422(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    response = await register_consent(
        client, app, world, scenario, agency_ids=[str(world.soc.id)] * 2
    )
    assert response.status_code == 422


async def test_one_guardian_of_two_is_refused_naming_the_rule(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    body = consent_body(scenario, world)
    body["signatories"] = body["signatories"][:1]
    response = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/cases/{scenario.case['id']}/consents",
        json=body,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "signatory_rule"


@pytest.mark.parametrize("role", ["soc_caseworker", "pol_coordinator"])
async def test_only_the_lead_coordinator_registers_consents(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario, role: str
) -> None:
    response = await call(
        client,
        app,
        getattr(world, role),
        "POST",
        f"/cases/{scenario.case['id']}/consents",
        json=consent_body(scenario, world),
    )
    assert response.status_code == 403


async def test_withdrawal_is_immediate_and_once(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    consent = (await register_consent(client, app, world, scenario)).json()
    path = f"/consents/{consent['id']}/withdrawal"
    by_police = await call(client, app, world.pol_caseworker, "POST", path, json={"reason": "x"})
    assert by_police.status_code == 403
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (
        await call(
            client,
            app,
            world.soc_coordinator,
            "POST",
            path,
            json={"reason": "x", "withdrawn_at": future},
        )
    ).status_code == 422
    withdrawn = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        path,
        json={"reason": "Vårdnadshavare återkallade"},
    )
    assert withdrawn.status_code == 200
    assert withdrawn.json()["status"] == "withdrawn"
    read = await call(client, app, world.pol_caseworker, "GET", f"/consents/{consent['id']}")
    assert read.json()["status"] == "withdrawn"
    assert (
        await call(client, app, world.soc_coordinator, "POST", path, json={"reason": "again"})
    ).status_code == 409


async def test_a_consent_starting_later_is_pending(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    response = await register_consent(
        client,
        app,
        world,
        scenario,
        valid_from=(datetime.now(UTC) + timedelta(days=3)).isoformat(),
    )
    assert response.json()["status"] == "pending"
    listed = await call(
        client, app, world.pol_caseworker, "GET", f"/cases/{scenario.case['id']}/consents"
    )
    assert [c["status"] for c in listed.json()["items"]] == ["pending"]


async def test_the_signed_form_is_stored_once_by_content(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    consent = (await register_consent(client, app, world, scenario)).json()
    path = f"/consents/{consent['id']}/document"
    exe = b"MZ\x90\x00" + b"\x00" * 200
    disguised = await call(
        client,
        app,
        world.soc_coordinator,
        "PUT",
        path,
        content=exe,
        headers={"content-type": "application/pdf"},
    )
    assert disguised.status_code == 422
    stored = await call(
        client,
        app,
        world.soc_coordinator,
        "PUT",
        path,
        content=PDF,
        headers={"content-type": "application/octet-stream"},
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert stored.json()["media_type"] == "application/pdf"
    replaced = await call(client, app, world.soc_coordinator, "PUT", path, content=PDF + b" ")
    assert replaced.status_code == 409
    fetched = await call(client, app, world.pol_caseworker, "GET", path)
    assert fetched.status_code == 200
    assert fetched.content == PDF
    assert fetched.headers["x-content-sha256"] == hashlib.sha256(PDF).hexdigest()
    assert fetched.headers["content-disposition"].startswith("attachment")
    assert (await call(client, app, world.skola_coordinator, "GET", path)).status_code == 404


async def test_an_oversized_form_is_413_and_a_large_one_passes_the_body_limit(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    consent = (await register_consent(client, app, world, scenario)).json()
    path = f"/consents/{consent['id']}/document"
    big_png = b"\x89PNG\r\n\x1a\n" + b"\x00" * (2 * 1024 * 1024)  # over the 1 MiB API limit
    assert (
        await call(client, app, world.soc_coordinator, "PUT", path, content=big_png)
    ).status_code == 200
    too_big = b"%PDF-" + b"\x00" * (10 * 1024 * 1024)
    other = (await register_consent(client, app, world, scenario)).json()
    response = await call(
        client,
        app,
        world.soc_coordinator,
        "PUT",
        f"/consents/{other['id']}/document",
        content=too_big,
    )
    assert response.status_code == 413


async def test_reference_data_is_served_in_swedish_and_english(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    categories = (await call(client, app, world.pol_caseworker, "GET", "/categories")).json()
    assert {"identity", "police", "threat_assessment"} <= {c["code"] for c in categories}
    assert all(c["label_sv"] and c["label_en"] for c in categories)
    bases = (await call(client, app, world.pol_caseworker, "GET", "/legal-bases")).json()
    assert bases
    assert all(b["example"] for b in bases)


# --- the matrix ----------------------------------------------------------------------

ACTORS = [
    "soc_coordinator",
    "soc_caseworker",
    "pol_caseworker",
    "skola_coordinator",
    "soc_admin",
    "soc_auditor",
]
# (method, path, body) -> expected status per actor, in ACTORS order.
MATRIX: list[tuple[str, str, Any, list[int]]] = [
    ("GET", "/individuals/{individual}", None, [200, 200, 200, 404, 404, 404]),
    ("POST", "/individuals", "individual", [201, 403, 403, 201, 403, 403]),
    ("POST", "/cases", "case", [201, 403, 403, 404, 404, 404]),
    ("GET", "/cases/{case}", None, [200, 200, 200, 404, 404, 404]),
    ("PATCH", "/cases/{case}", {"status": "active"}, [200, 403, 403, 404, 404, 404]),
    ("GET", "/cases/{case}/participants", None, [200, 200, 200, 404, 404, 404]),
    ("POST", "/cases/{case}/participants", "skola", [201, 403, 403, 404, 404, 404]),
    ("DELETE", "/cases/{case}/participants/{pol}", None, [204, 403, 403, 404, 404, 404]),
    ("GET", "/cases/{case}/consents", None, [200, 200, 200, 404, 404, 404]),
    ("POST", "/cases/{case}/consents", "consent", [201, 403, 403, 404, 404, 404]),
    ("GET", "/consents/{consent}", None, [200, 200, 200, 404, 404, 404]),
    ("POST", "/consents/{consent}/withdrawal", {"reason": "r"}, [200, 403, 403, 404, 404, 404]),
    ("PUT", "/consents/{consent}/document", "pdf", [200, 403, 403, 404, 404, 404]),
]


@pytest.mark.parametrize(
    ("method", "template", "body", "expected"), MATRIX, ids=[f"{m} {t}" for m, t, _, _ in MATRIX]
)
@pytest.mark.parametrize("actor_index", range(len(ACTORS)), ids=ACTORS)
async def test_endpoint_by_actor(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    method: str,
    template: str,
    body: Any,
    expected: list[int],
    actor_index: int,
) -> None:
    consent = await register_consent(client, app, world, scenario)
    assert consent.status_code == 201
    user = getattr(world, ACTORS[actor_index])
    path = template.format(
        individual=scenario.individual["id"],
        case=scenario.case["id"],
        consent=consent.json()["id"],
        pol=world.pol.id,
    )
    kwargs: dict[str, Any] = {}
    if body == "individual":
        kwargs["json"] = individual_body(personal_number=None, birth_date="2011-01-01")
    elif body == "case":
        kwargs["json"] = {"individual_id": scenario.individual["id"], "programme": "sspf"}
    elif body == "skola":
        kwargs["json"] = {"agency_id": str(world.skola.id)}
    elif body == "consent":
        kwargs["json"] = consent_body(scenario, world)
    elif body == "pdf":
        kwargs["content"] = PDF
    elif body is not None:
        kwargs["json"] = body
    before = await audit_head(connection)
    response = await call(client, app, user, method, path, **kwargs)
    status = expected[actor_index]
    assert response.status_code == status, response.text
    events = await audit_events_after(connection, before)
    assert events, "every call writes an audit record"
    assert all(e.actor_user_id == user.id for e in events)
    decisions = {e.decision for e in events}
    assert decisions == ({"permit"} if status < 400 else {"deny"})
