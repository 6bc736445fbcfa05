"""The six disclosure holes of issue 13, each through the API as it was found.

Uses the shared world (tests/scenarios.py): SOC registers a minor with two guardians and
leads a SIG case, POL takes part, SKOLA does not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tests.factories import audit_events_after, audit_head, fresh_sign_in
from tests.scenarios import (
    CHILD_NUMBER,
    Scenario,
    World,
    call,
    individual_body,
    open_case,
    register_consent,
)

# Once with local accounts, once with every user signed in through their agency's identity
# provider (issue 17): the identity decision must not depend on how the caller signed in.
pytestmark = pytest.mark.usefixtures("sign_in")

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
REASON = {"legal_basis": "osl_10_18a", "reason": "Akut hot mot den unge i helgen"}


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else {}


async def _soc_entry(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> str:
    entry = await _ok(
        await call(
            client,
            app,
            world.soc_caseworker,
            "POST",
            f"/cases/{scenario.case['id']}/entries",
            json={"category": "social_services", "title": "Hembesök", "body": "Samtal."},
        ),
        201,
    )
    return str(entry["id"])


async def _status(
    client: httpx.AsyncClient, app: FastAPI, user: Any, method: str, path: str, **kw: Any
) -> int:
    return (await call(client, app, user, method, path, **kw)).status_code


# --- 1. consents disclose names ------------------------------------------------------------


@pytest.mark.parametrize("protected", [False, True], ids=["ordinary", "protected"])
async def test_a_consent_shows_its_scope_but_names_only_with_the_identity(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario, protected: bool
) -> None:
    """Without ``identity`` covered (or for a protected person, even with it) the police
    read the consent's scope, never the guardians' names, and the form is 404."""
    if protected:
        scenario = await open_case(
            client,
            app,
            world,
            police=True,
            personal_number="20100404-2386",
            given_name="Skyddad",
            protected_identity=True,
            guardians=[{"given_name": "Vårdnadshavare", "family_name": "X", "has_custody": True}],
        )
        categories = ["identity", "social_services"]  # identity covered: the spärr still wins
    else:
        categories = ["social_services"]
    consent = await _ok(
        await register_consent(client, app, world, scenario, categories=categories), 201
    )
    names = {s["name"] for s in consent["signatories"]}
    assert None not in names  # the registering agency sees who signed
    await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "PUT",
            f"/consents/{consent['id']}/document",
            content=PDF,
        )
    )
    for path in (f"/consents/{consent['id']}", f"/cases/{scenario.case['id']}/consents"):
        shown = await _ok(await call(client, app, world.pol_caseworker, "GET", path))
        [read] = shown.get("items", [shown])
        assert read["identity_visible"] is False
        assert [s["name"] for s in read["signatories"]] == [None] * len(names)
        assert read["categories"] == sorted(categories)  # the scope stays readable
        assert read["purpose"]
        for name in names:
            assert name not in str(shown)
    form = await call(
        client, app, world.pol_caseworker, "GET", f"/consents/{consent['id']}/document"
    )
    assert form.status_code == 404
    assert form.headers["content-type"] == "application/problem+json"
    # the registering agency still reads the form
    assert (
        await _status(
            client, app, world.soc_caseworker, "GET", f"/consents/{consent['id']}/document"
        )
        == 200
    )


async def test_a_consent_covering_identity_shows_the_names_and_says_on_what(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    consent = await _ok(await register_consent(client, app, world, scenario), 201)
    before = await audit_head(connection)
    read = await _ok(
        await call(client, app, world.pol_caseworker, "GET", f"/consents/{consent['id']}")
    )
    assert read["identity_visible"] is True
    assert None not in {s["name"] for s in read["signatories"]}
    [event] = await audit_events_after(connection, before)
    assert (event.basis, str(event.consent_id)) == ("consent", consent["id"])


# --- 2. superseding narrows ----------------------------------------------------------------


async def test_a_superseding_consent_ends_its_predecessor_once(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    entry = await _soc_entry(client, app, world, scenario)
    first = await _ok(await register_consent(client, app, world, scenario), 201)
    assert await _status(client, app, world.pol_caseworker, "GET", f"/entries/{entry}") == 200
    now = datetime.now(UTC)
    narrower = await _ok(
        await register_consent(
            client,
            app,
            world,
            scenario,
            categories=["contact"],
            supersedes_id=first["id"],
            valid_from=(now - timedelta(minutes=1)).isoformat(),
        ),
        201,
    )
    old = await _ok(
        await call(client, app, world.soc_coordinator, "GET", f"/consents/{first['id']}")
    )
    assert old["status"] == "superseded"
    assert old["superseded_at"] is not None
    assert narrower["status"] == "active"
    # what the old consent opened is closed: the entry and the identity
    assert await _status(client, app, world.pol_caseworker, "GET", f"/entries/{entry}") == 404
    individual = await _ok(
        await call(
            client, app, world.pol_caseworker, "GET", f"/individuals/{scenario.individual['id']}"
        )
    )
    assert individual["identity_visible"] is False

    # superseding it again: 409, nothing registered, one audit record
    before = await audit_head(connection)
    again = await register_consent(
        client, app, world, scenario, supersedes_id=first["id"], categories=["identity"]
    )
    assert again.status_code == 409, again.text
    assert len(await audit_events_after(connection, before)) == 1
    listed = await _ok(
        await call(
            client, app, world.soc_coordinator, "GET", f"/cases/{scenario.case['id']}/consents"
        )
    )
    assert len(listed["items"]) == 2


@pytest.mark.parametrize("state", ["withdrawn", "expired"])
async def test_only_an_active_or_pending_consent_can_be_superseded(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    state: str,
) -> None:
    now = datetime.now(UTC)
    overrides: dict[str, Any] = {}
    if state == "expired":
        overrides = {
            "valid_from": (now - timedelta(days=10)).isoformat(),
            "valid_until": (now - timedelta(days=1)).isoformat(),
        }
    first = await _ok(await register_consent(client, app, world, scenario, **overrides), 201)
    if state == "withdrawn":
        await _ok(
            await call(
                client,
                app,
                world.soc_coordinator,
                "POST",
                f"/consents/{first['id']}/withdrawal",
                json={"reason": "Återkallat muntligt"},
            )
        )
    before = await audit_head(connection)
    refused = await register_consent(client, app, world, scenario, supersedes_id=first["id"])
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert len(await audit_events_after(connection, before)) == 1
    old = await _ok(
        await call(client, app, world.soc_coordinator, "GET", f"/consents/{first['id']}")
    )
    assert old["status"] == state
    assert old["superseded_at"] is None


# --- 3. a closed case ----------------------------------------------------------------------


async def test_a_closed_case_takes_no_work_and_shares_nothing_until_reopened(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    case = scenario.case["id"]
    entry = await _soc_entry(client, app, world, scenario)
    await _ok(await register_consent(client, app, world, scenario), 201)
    assert await _status(client, app, world.pol_caseworker, "GET", f"/entries/{entry}") == 200
    await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "PATCH",
            f"/cases/{case}",
            json={"status": "closed", "closure_reason": "completed"},
        )
    )
    writes = [
        (
            world.pol_caseworker,
            f"/cases/{case}/entries",
            {"category": "police", "title": "t", "body": "b"},
        ),
        (world.pol_caseworker, f"/cases/{case}/emergency-access", REASON),
        (
            world.soc_caseworker,
            f"/cases/{case}/actions",
            {"type": "samtal", "title": "Samtal", "responsible_agency_id": str(world.soc.id)},
        ),
        (world.soc_coordinator, f"/cases/{case}/participants", {"agency_id": str(world.skola.id)}),
    ]
    for user, path, body in writes:
        before = await audit_head(connection)
        refused = await call(client, app, user, "POST", path, json=body)
        assert refused.status_code == 409, f"{path}: {refused.text}"
        assert len(await audit_events_after(connection, before)) == 1, path
    refused = await register_consent(client, app, world, scenario)
    assert refused.status_code == 409
    # other agencies read nothing through it; each keeps what it recorded
    assert await _status(client, app, world.pol_caseworker, "GET", f"/entries/{entry}") == 404
    assert await _status(client, app, world.soc_caseworker, "GET", f"/entries/{entry}") == 200
    shown = await _ok(await call(client, app, world.pol_caseworker, "GET", f"/cases/{case}"))
    assert shown["individual"]["identity_visible"] is False
    # the lead coordinator reopens it, audited
    before = await audit_head(connection)
    await _ok(
        await call(
            client, app, world.soc_coordinator, "PATCH", f"/cases/{case}", json={"status": "active"}
        )
    )
    events = await audit_events_after(connection, before)
    assert [(e.action, e.reason) for e in events if e.action == "case.update"] == [
        ("case.update", "status closed -> active")
    ]
    assert await _status(client, app, world.pol_caseworker, "GET", f"/entries/{entry}") == 200


# --- 4. a grant belongs to the agency ------------------------------------------------------


async def test_an_emergency_grant_stays_with_the_agency_when_its_user_moves(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
) -> None:
    """The move ends the user's sign-in; signed in again, at the school, the grant the
    police issued no longer applies."""
    entry = await _soc_entry(client, app, world, scenario)
    await _ok(
        await call(
            client,
            app,
            world.pol_caseworker,
            "POST",
            f"/cases/{scenario.case['id']}/emergency-access",
            json=REASON,
        ),
        201,
    )
    assert await _status(client, app, world.pol_caseworker, "GET", f"/entries/{entry}") == 200
    # SKOLA joins the case, and the police user moves to SKOLA
    await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "POST",
            f"/cases/{scenario.case['id']}/participants",
            json={"agency_id": str(world.skola.id)},
        ),
        201,
    )
    await _ok(
        await call(
            client,
            app,
            world.soc_admin,
            "PATCH",
            f"/users/{world.pol_caseworker.id}",
            # the Police's identity provider does not speak for the school: unlinked
            json={"agency_id": str(world.skola.id), "identity": None},
        )
    )
    assert await _status(client, app, world.pol_caseworker, "GET", f"/entries/{entry}") == 401
    again = await fresh_sign_in(session, app, world.pol_caseworker)
    read = await call(client, app, None, "GET", f"/entries/{entry}", headers=again)
    assert read.status_code == 404
    shown = await _ok(
        await call(
            client, app, None, "GET", f"/individuals/{scenario.individual['id']}", headers=again
        )
    )
    assert shown["identity_visible"] is False


async def test_grants_are_listed_to_their_agency_and_ended_by_grantee_or_lead(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    case = scenario.case["id"]
    entry = await _soc_entry(client, app, world, scenario)
    grant = await _ok(
        await call(
            client,
            app,
            world.pol_caseworker,
            "POST",
            f"/cases/{case}/emergency-access",
            json=REASON,
        ),
        201,
    )
    assert grant["status"] == "active"
    path = f"/cases/{case}/emergency-access"
    for user, seen in (
        (world.pol_coordinator, [grant["id"]]),
        (world.soc_coordinator, [grant["id"]]),  # the lead coordinator sees every grant
        (world.soc_caseworker, []),
    ):
        listed = await call(client, app, user, "GET", path)
        assert [g["id"] for g in listed.json()["items"]] == seen
    # a colleague of the grantee sees it but may not end it: 403, nothing changed, one record
    before = await audit_head(connection)
    refused = await call(
        client, app, world.pol_coordinator, "DELETE", f"/emergency-access/{grant['id']}"
    )
    assert refused.status_code == 403
    assert len(await audit_events_after(connection, before)) == 1
    assert (
        await _status(
            client, app, world.soc_caseworker, "DELETE", f"/emergency-access/{grant['id']}"
        )
        == 404
    )
    assert await _status(client, app, world.pol_caseworker, "GET", f"/entries/{entry}") == 200
    # the grantee ends it: reads under it stop at once; ending it again is 409
    assert (
        await _status(
            client, app, world.pol_caseworker, "DELETE", f"/emergency-access/{grant['id']}"
        )
        == 204
    )
    assert await _status(client, app, world.pol_caseworker, "GET", f"/entries/{entry}") == 404
    [ended] = (await call(client, app, world.pol_caseworker, "GET", path)).json()["items"]
    assert ended["status"] == "ended"
    assert (
        await _status(
            client, app, world.soc_coordinator, "DELETE", f"/emergency-access/{grant['id']}"
        )
        == 409
    )


# --- 5. case reads name the consent that disclosed the identity ----------------------------


@pytest.mark.parametrize("route", ["one", "list"])
async def test_a_case_read_names_the_consent_that_showed_the_identity(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    route: str,
) -> None:
    consent = await _ok(await register_consent(client, app, world, scenario), 201)
    before = await audit_head(connection)
    path = f"/cases/{scenario.case['id']}" if route == "one" else "/cases"
    await _ok(await call(client, app, world.pol_caseworker, "GET", path))
    [read] = [e for e in await audit_events_after(connection, before) if e.action == "case.read"]
    assert (read.basis, str(read.consent_id)) == ("consent", consent["id"])
    extract = await _ok(
        await call(
            client,
            app,
            world.soc_auditor,
            "GET",
            f"/individuals/{scenario.individual['id']}/access-log",
        )
    )
    assert any(
        e["action"] == "case.read" and e["consent_id"] == consent["id"] for e in extract["entries"]
    )


# --- 6. an access extract from a personnummer ----------------------------------------------


async def test_an_auditor_finds_every_registration_of_a_person(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    # the police register the same person themselves
    again = await _ok(
        await call(
            client, app, world.pol_coordinator, "POST", "/individuals", json=individual_body()
        ),
        201,
    )
    before = await audit_head(connection)
    found = await _ok(
        await call(
            client,
            app,
            world.soc_auditor,
            "GET",
            "/audit/subjects",
            params={"personal_number": CHILD_NUMBER},
        )
    )
    assert {(i["individual_id"], i["registering_agency_id"]) for i in found["items"]} == {
        (scenario.individual["id"], str(world.soc.id)),
        (again["id"], str(world.pol.id)),
    }
    assert found["next_cursor"] is None
    events = await audit_events_after(connection, before)
    assert {e.action for e in events} == {"audit.subject_lookup"}
    assert all("subject_lookup" in e.flags for e in events)
    assert {str(e.individual_id) for e in events if e.individual_id} == {
        scenario.individual["id"],
        again["id"],
    }
    assert not any(CHILD_NUMBER.replace("-", "") in (e.reason or "") for e in events)


@pytest.mark.parametrize(
    ("user", "number", "status"),
    [
        ("soc_auditor", "20100303-2389", 422),  # a wrong check digit
        ("soc_auditor", "not-a-number", 422),
        ("soc_admin", CHILD_NUMBER, 403),
        ("soc_coordinator", CHILD_NUMBER, 403),
    ],
    ids=["check-digit", "garbage", "admin", "caseworker"],
)
async def test_a_subject_lookup_refuses_bad_numbers_and_other_roles(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    connection: AsyncConnection,
    user: str,
    number: str,
    status: int,
) -> None:
    before = await audit_head(connection)
    response = await call(
        client,
        app,
        getattr(world, user),
        "GET",
        "/audit/subjects",
        params={"personal_number": number},
    )
    assert response.status_code == status, response.text
    assert number not in response.text
    assert len(await audit_events_after(connection, before)) == 1


async def test_a_consent_of_a_closed_case_opens_nothing_elsewhere(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    """The police take part in two cases of the person; the consent was registered on the
    one that is closed. It no longer opens the identity, nor the open case's entries."""
    entry = await _soc_entry(client, app, world, scenario)  # on the open case
    second = await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "POST",
            "/cases",
            json={"individual_id": scenario.individual["id"], "programme": "trefas"},
        ),
        201,
    )
    await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "POST",
            f"/cases/{second['id']}/participants",
            json={"agency_id": str(world.pol.id)},
        ),
        201,
    )
    await _ok(
        await register_consent(client, app, world, Scenario(scenario.individual, second)), 201
    )
    person = f"/individuals/{scenario.individual['id']}"
    assert (await _ok(await call(client, app, world.pol_caseworker, "GET", person)))[
        "identity_visible"
    ] is True
    assert await _status(client, app, world.pol_caseworker, "GET", f"/entries/{entry}") == 200
    await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "PATCH",
            f"/cases/{second['id']}",
            json={"status": "closed", "closure_reason": "completed"},
        )
    )
    assert (await _ok(await call(client, app, world.pol_caseworker, "GET", person)))[
        "identity_visible"
    ] is False
    assert await _status(client, app, world.pol_caseworker, "GET", f"/entries/{entry}") == 404
