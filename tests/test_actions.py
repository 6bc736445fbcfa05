"""Actions (insatser) through the API: who plans for whom, who sees them, who moves them on.

Uses the world of tests/test_cases.py: SOC registers a minor and leads a SIG case, POL takes
part, SKOLA does not (until a test adds it).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.actions.models import CaseAction
from app.users.models import Role, User
from tests.factories import audit_events_after, audit_head, make_user
from tests.scenarios import Scenario, World, call, register_consent


async def _plan(
    client: httpx.AsyncClient,
    app: FastAPI,
    user: User,
    scenario: Scenario,
    responsible: Any,
    **overrides: Any,
) -> httpx.Response:
    body: dict[str, Any] = {
        "type": "samtal",
        "title": "Motiverande samtal varannan vecka",
        "description": "Familjebehandlare håller i samtalen.",
        "responsible_agency_id": str(responsible.id),
        "due_date": "2027-01-31",
    }
    body.update(overrides)
    return await call(client, app, user, "POST", f"/cases/{scenario.case['id']}/actions", json=body)


async def _planned(
    client: httpx.AsyncClient,
    app: FastAPI,
    user: User,
    scenario: Scenario,
    responsible: Any,
    **overrides: Any,
) -> dict[str, Any]:
    response = await _plan(client, app, user, scenario, responsible, **overrides)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _listed(
    client: httpx.AsyncClient, app: FastAPI, user: User, scenario: Scenario
) -> list[str]:
    response = await call(client, app, user, "GET", f"/cases/{scenario.case['id']}/actions")
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()["items"]]


async def _patch(
    client: httpx.AsyncClient, app: FastAPI, user: User, action: dict[str, Any], **body: Any
) -> httpx.Response:
    return await call(client, app, user, "PATCH", f"/actions/{action['id']}", json=body)


async def _count(connection: AsyncConnection) -> int:
    return int(
        (await connection.execute(select(func.count()).select_from(CaseAction))).scalar_one()
    )


async def test_an_agency_plans_its_own_actions_and_others_see_them_only_under_consent(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    before = await audit_head(connection)
    action = await _planned(client, app, world.soc_caseworker, scenario, world.soc)
    assert (action["status"], action["source_agency_id"]) == ("planned", str(world.soc.id))
    [created] = await audit_events_after(connection, before)
    assert (created.action, created.basis, created.policy_id) == (
        "action.create",
        "own_agency",
        "action.create.own_agency",
    )
    assert str(created.resource_id) == action["id"]

    before = await audit_head(connection)
    hidden = await call(client, app, world.pol_caseworker, "GET", f"/actions/{action['id']}")
    assert hidden.status_code == 404
    [denied] = await audit_events_after(connection, before)
    assert (denied.action, denied.decision, denied.policy_id) == (
        "action.read",
        "deny",
        "default-deny",
    )
    assert str(denied.case_id) == scenario.case["id"]
    assert str(denied.individual_id) == scenario.individual["id"]
    assert await _listed(client, app, world.pol_caseworker, scenario) == []

    consent = (await register_consent(client, app, world, scenario)).json()
    before = await audit_head(connection)
    shown = await call(client, app, world.pol_caseworker, "GET", f"/actions/{action['id']}")
    assert shown.status_code == 200
    assert shown.json() == action
    [read] = await audit_events_after(connection, before)
    assert (read.basis, str(read.consent_id), read.policy_id) == (
        "consent",
        consent["id"],
        "action.read.consent",
    )
    assert await _listed(client, app, world.pol_caseworker, scenario) == [action["id"]]

    withdrawn = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/consents/{consent['id']}/withdrawal",
        json={"reason": "Återkallat"},
    )
    assert withdrawn.status_code == 200
    again = await call(client, app, world.pol_caseworker, "GET", f"/actions/{action['id']}")
    assert again.status_code == 404
    assert await _listed(client, app, world.pol_caseworker, scenario) == []


async def test_planning_for_another_agency_needs_a_consent_that_covers_the_plan(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    before = await audit_head(connection)
    refused = await _plan(client, app, world.soc_coordinator, scenario, world.pol)
    assert refused.status_code == 403
    assert "consent" in refused.json()["detail"]
    [denied] = await audit_events_after(connection, before)
    assert (denied.action, denied.decision, denied.resource_type) == (
        "action.create",
        "deny",
        "action",
    )
    assert await _count(connection) == 0

    not_the_plan = await register_consent(
        client, app, world, scenario, categories=["identity", "social_services"]
    )
    assert not_the_plan.status_code == 201
    refused = await _plan(client, app, world.soc_coordinator, scenario, world.pol)
    assert refused.status_code == 403
    assert await _count(connection) == 0

    consent = (await register_consent(client, app, world, scenario)).json()
    before = await audit_head(connection)
    action = await _planned(
        client,
        app,
        world.soc_coordinator,
        scenario,
        world.pol,
        assignee_id=str(world.pol_caseworker.id),
    )
    [created] = await audit_events_after(connection, before)
    assert (created.basis, str(created.consent_id), created.policy_id) == (
        "consent",
        consent["id"],
        "action.create.consent",
    )
    assert action["responsible_agency_id"] == str(world.pol.id)
    assert action["assignee_id"] == str(world.pol_caseworker.id)


async def test_the_responsible_agency_sees_and_moves_its_action_whatever_the_consent(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    consent = (await register_consent(client, app, world, scenario)).json()
    action = await _planned(client, app, world.soc_coordinator, scenario, world.pol)
    await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/consents/{consent['id']}/withdrawal",
        json={"reason": "Återkallat"},
    )
    # Its own work: the responsible agency keeps seeing it, as its own agency.
    before = await audit_head(connection)
    assert await _listed(client, app, world.pol_caseworker, scenario) == [action["id"]]
    read, _ = await audit_events_after(connection, before)
    assert (read.action, read.basis, read.policy_id) == (
        "action.read",
        "own_agency",
        "action.read.own_agency",
    )

    started = await _patch(client, app, world.pol_caseworker, action, status="in_progress")
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "in_progress"

    before = await audit_head(connection)
    by_planner = await _patch(client, app, world.soc_coordinator, action, status="done")
    assert by_planner.status_code == 403
    [denied] = await audit_events_after(connection, before)
    assert (denied.action, denied.decision) == ("action.update", "deny")
    by_outsider = await _patch(client, app, world.skola_coordinator, action, status="done")
    assert by_outsider.status_code == 404

    before = await audit_head(connection)
    done = await _patch(
        client, app, world.pol_caseworker, action, status="done", outcome="Genomfört enligt plan."
    )
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["outcome"]) == ("done", "Genomfört enligt plan.")
    [changed] = await audit_events_after(connection, before)
    assert (changed.action, changed.basis, changed.policy_id) == (
        "action.update",
        "own_agency",
        "action.update.responsible_agency",
    )
    assert changed.reason == "changed outcome, status; status in_progress -> done"
    assert "Genomfört" not in (changed.reason or "")


@pytest.mark.parametrize(
    ("steps", "status", "problem"),
    [
        ([], {"status": "done", "outcome": "x"}, 409),  # planned -> done skips a step
        ([{"status": "in_progress"}], {"status": "planned"}, 409),  # no way back
        ([{"status": "in_progress"}], {"status": "done"}, 422),  # done needs an outcome
        ([{"status": "cancelled", "outcome": "Flyttat"}], {"title": "Nytt"}, 409),  # final
        (
            [{"status": "in_progress"}, {"status": "done", "outcome": "Klart"}],
            {"status": "cancelled", "outcome": "x"},
            409,
        ),
        ([], {}, 422),  # nothing to change
        ([], {"status": None}, 422),
        ([], {"title": None}, 422),
        ([], {"status": "finished"}, 422),
        ([], {"responsible_agency_id": "00000000-0000-0000-0000-000000000000"}, 422),
        ([], {"due_date": "2027-02-30"}, 422),
    ],
    ids=[
        "skip",
        "back",
        "no-outcome",
        "cancelled-final",
        "done-final",
        "empty",
        "null-status",
        "null-title",
        "unknown-status",
        "cannot-reassign-agency",
        "bad-date",
    ],
)
async def test_status_moves_only_along_the_diagram_and_a_refusal_changes_nothing(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    steps: list[dict[str, Any]],
    status: dict[str, Any],
    problem: int,
) -> None:
    action = await _planned(client, app, world.pol_caseworker, scenario, world.pol)
    for step in steps:
        assert (await _patch(client, app, world.pol_caseworker, action, **step)).status_code == 200
    current = await call(client, app, world.pol_caseworker, "GET", f"/actions/{action['id']}")
    refused = await _patch(client, app, world.pol_caseworker, action, **status)
    assert refused.status_code == problem, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    after = await call(client, app, world.pol_caseworker, "GET", f"/actions/{action['id']}")
    assert after.json() == current.json()


async def test_cancelling_a_planned_action_and_clearing_fields(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    action = await _planned(
        client,
        app,
        world.soc_caseworker,
        scenario,
        world.soc,
        assignee_id=str(world.soc_caseworker.id),
    )
    cleared = await _patch(
        client, app, world.soc_caseworker, action, assignee_id=None, due_date=None, description=None
    )
    assert cleared.status_code == 200, cleared.text
    body = cleared.json()
    assert (body["assignee_id"], body["due_date"], body["description"]) == (None, None, None)
    cancelled = await _patch(
        client, app, world.soc_caseworker, action, status="cancelled", outcome="Familjen flyttade."
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"


async def test_bad_plans_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: Any,
    connection: AsyncConnection,
) -> None:
    consent = await register_consent(
        client, app, world, scenario, agency_ids=[str(world.soc.id), str(world.pol.id)]
    )
    assert consent.status_code == 201
    other_soc = await make_user(session, roles={Role.CASEWORKER}, agency=world.soc)
    pol_admin = await make_user(session, roles={Role.ADMIN}, agency=world.pol)
    cases: list[tuple[Any, dict[str, Any], str]] = [
        (world.skola, {}, "responsible_agency_id"),  # not in the case
        (world.pol, {"assignee_id": str(other_soc.id)}, "assignee_id"),  # wrong agency
        (world.pol, {"assignee_id": str(pol_admin.id)}, "assignee_id"),  # cannot read it
        (world.pol, {"assignee_id": "00000000-0000-0000-0000-000000000001"}, "assignee_id"),
        (world.pol, {"type": ""}, "type"),
        (world.pol, {"title": "x" * 201}, "title"),
        (world.pol, {"status": "done"}, "status"),  # set by PATCH only
        (world.pol, {"due_date": "tomorrow"}, "due_date"),
    ]
    for responsible, overrides, field in cases:
        refused = await _plan(
            client, app, world.soc_coordinator, scenario, responsible, **overrides
        )
        assert refused.status_code == 422, (field, refused.text)
        assert field in refused.text
        assert "tomorrow" not in refused.text  # the value is never echoed
    unknown = await _plan(
        client,
        app,
        world.soc_coordinator,
        scenario,
        world.pol,
        responsible_agency_id="00000000-0000-0000-0000-000000000002",
    )
    assert unknown.status_code == 422
    assert await _count(connection) == 0


async def test_outsiders_admins_and_auditors_neither_plan_nor_see_actions(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    action = await _planned(client, app, world.soc_caseworker, scenario, world.soc)
    for user in (world.skola_coordinator, world.soc_admin, world.soc_auditor):
        assert (await _plan(client, app, user, scenario, world.skola)).status_code == 404
        for method, path in (
            ("GET", f"/actions/{action['id']}"),
            ("GET", f"/cases/{scenario.case['id']}/actions"),
            ("PATCH", f"/actions/{action['id']}"),
        ):
            body = {"json": {"status": "in_progress"}} if method == "PATCH" else {}
            response = await call(client, app, user, method, path, **body)
            assert response.status_code == 404, (user.username, method, path)
    assert await _count(connection) == 1


async def test_no_new_actions_on_a_closed_case(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    closed = await call(
        client,
        app,
        world.soc_coordinator,
        "PATCH",
        f"/cases/{scenario.case['id']}",
        json={"status": "closed", "closure_reason": "completed"},
    )
    assert closed.status_code == 200, closed.text
    refused = await _plan(client, app, world.soc_caseworker, scenario, world.soc)
    assert refused.status_code == 409


async def test_an_emergency_grant_shows_the_plan_flagged_for_review(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    action = await _planned(client, app, world.soc_caseworker, scenario, world.soc)
    granted = await call(
        client,
        app,
        world.pol_caseworker,
        "POST",
        f"/cases/{scenario.case['id']}/emergency-access",
        json={
            "legal_basis": "osl_10_18a",
            "reason": "Akut hot mot den unge",
            "categories": ["plan"],
        },
    )
    assert granted.status_code == 201, granted.text
    before = await audit_head(connection)
    shown = await call(client, app, world.pol_caseworker, "GET", f"/actions/{action['id']}")
    assert shown.status_code == 200
    [read] = await audit_events_after(connection, before)
    assert (read.basis, read.legal_basis, read.policy_id) == (
        "emergency_access",
        "osl_10_18a",
        "action.read.emergency_access",
    )
    assert "emergency_access" in read.flags
    # the grant is the user's, not the agency's
    assert (
        await call(client, app, world.pol_coordinator, "GET", f"/actions/{action['id']}")
    ).status_code == 404


async def test_pages_hold_only_visible_actions_oldest_first(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
) -> None:
    consent = (await register_consent(client, app, world, scenario)).json()
    own = [await _planned(client, app, world.pol_caseworker, scenario, world.pol) for _ in range(3)]
    shared = await _planned(client, app, world.soc_caseworker, scenario, world.soc)
    await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/consents/{consent['id']}/withdrawal",
        json={"reason": "Återkallat"},
    )
    hidden_from_pol = shared["id"]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await call(
            client,
            app,
            world.pol_caseworker,
            "GET",
            f"/cases/{scenario.case['id']}/actions",
            params=params,
        )
        assert page.status_code == 200
        seen += [a["id"] for a in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [a["id"] for a in own]
    assert hidden_from_pol not in seen
    soc_sees = await _listed(client, app, world.soc_caseworker, scenario)
    assert soc_sees == [shared["id"]]
