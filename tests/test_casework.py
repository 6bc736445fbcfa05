"""Casework rules the story test does not reach: bad input refused with the field named and
nothing written, links and their history, protected identity switched on, staff names to
participants only, and what the work list holds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.actions.models import CaseAction
from app.audit.models import AuditEvent
from app.cases.models import CaseLink, CustodyStatus, ExitStatus, LinkKind, ThreatLevel
from app.goals.models import Goal, GoalArea, GoalStatus
from app.individuals.models import IndividualVersion
from app.meetings.models import Meeting, MeetingKind
from app.users.models import User
from tests.scenarios import CHILD_NUMBER, Scenario, World, call, register_consent

TODAY = datetime.now(UTC).date()


async def _ok(
    client: httpx.AsyncClient,
    app: FastAPI,
    user: User,
    method: str,
    path: str,
    status: int = 200,
    **kw: Any,
) -> Any:
    response = await call(client, app, user, method, path, **kw)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def _count(session: AsyncSession, model: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def _field(problem: dict[str, Any]) -> set[str]:
    return {e["field"] for e in problem.get("errors", [])}


def _fill(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with the placeholders (SOC, SKOLA, POL_USER) replaced by the world's ids."""
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return ids.get(value, value) if isinstance(value, str) else value


def _goal(**overrides: Any) -> dict[str, Any]:
    return {
        "area": "education",
        "description": "Godkänt i svenska",
        "target_date": (TODAY + timedelta(days=60)).isoformat(),
    } | overrides


def _meeting(**overrides: Any) -> dict[str, Any]:
    return {
        "held_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "kind": "planning",
        "individual_present": False,
    } | overrides


@pytest.mark.parametrize(
    ("path", "body", "field", "model"),
    [
        (
            "goals",
            _goal(follow_up_on=(TODAY - timedelta(days=1)).isoformat()),
            "body.follow_up_on",
            Goal,
        ),
        (
            "goals",
            _goal(target_date=(TODAY - timedelta(days=1)).isoformat()),
            "body.target_date",
            Goal,
        ),
        ("goals", _goal(area="school"), "body.area", Goal),
        (
            "meetings",
            _meeting(held_at=(datetime.now(UTC) + timedelta(hours=2)).isoformat()),
            "body.held_at",
            Meeting,
        ),
        ("meetings", _meeting(kind="dinner"), "body.kind", Meeting),
        (
            "meetings",
            _meeting(attendees=[{"agency_id": "SKOLA"}]),
            "body.attendees.0.agency_id",
            Meeting,
        ),
        (
            "meetings",
            _meeting(decisions=[{"title": "Ringa", "responsible_agency_id": "SKOLA"}]),
            "body.decisions.0.responsible_agency_id",
            Meeting,
        ),
        (
            "meetings",
            _meeting(attendees=[{"agency_id": "SOC", "user_id": "POL_USER"}]),
            "body.attendees.0.user_id",
            Meeting,
        ),
    ],
    ids=[
        "follow-up before set",
        "target before set",
        "unknown area",
        "held in the future",
        "unknown kind",
        "attendee agency not in case",
        "decision for agency not in case",
        "attendee of another agency",
    ],
)
async def test_bad_plan_input_names_the_field_and_writes_nothing(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
    path: str,
    body: dict[str, Any],
    field: str,
    model: Any,
) -> None:
    body = _fill(
        body,
        {
            "SKOLA": str(world.skola.id),
            "SOC": str(world.soc.id),
            "POL_USER": str(world.pol_caseworker.id),
        },
    )
    before = (await _count(session, model), await _count(session, CaseAction))
    problem = await _ok(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/cases/{scenario.case['id']}/{path}",
        422,
        json=body,
    )
    assert field in _field(problem)
    assert (await _count(session, model), await _count(session, CaseAction)) == before


async def test_a_goal_leaving_open_needs_an_outcome_and_a_follow_up_keeps_history(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    soc = world.soc_coordinator
    goal = await _ok(
        client, app, soc, "POST", f"/cases/{scenario.case['id']}/goals", 201, json=_goal()
    )
    problem = await _ok(
        client, app, soc, "PATCH", f"/goals/{goal['id']}", 422, json={"status": "achieved"}
    )
    assert _field(problem) == {"body.outcome"}
    early = (TODAY - timedelta(days=3)).isoformat()
    problem = await _ok(
        client, app, soc, "PATCH", f"/goals/{goal['id']}", 422, json={"follow_up_on": early}
    )
    assert _field(problem) == {"body.follow_up_on"}
    assert (await _ok(client, app, soc, "GET", f"/goals/{goal['id']}"))["follow_ups"] == []
    await _ok(client, app, soc, "PATCH", f"/goals/{goal['id']}", json={"note": "Första"})
    done = await _ok(
        client,
        app,
        soc,
        "PATCH",
        f"/goals/{goal['id']}",
        json={"status": "achieved", "outcome": "Godkänd"},
    )
    assert [f["status"] for f in done["follow_ups"]] == ["open", "achieved"]
    assert [f["note"] for f in done["follow_ups"]] == ["Första", None]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"threat_level": "high"}, "body.threat_reviewed_on"),
        ({"threat_reviewed_on": TODAY.isoformat()}, "body.threat_level"),
        (
            # two days on: still the future if the run goes past midnight
            {"threat_level": "low", "threat_reviewed_on": (TODAY + timedelta(days=2)).isoformat()},
            "body.threat_reviewed_on",
        ),
        (
            {
                "threat_level": "low",
                "threat_reviewed_on": TODAY.isoformat(),
                "threat_review_due_on": (TODAY - timedelta(days=1)).isoformat(),
            },
            "body.threat_review_due_on",
        ),
        ({"threat_level": "extreme", "threat_reviewed_on": TODAY.isoformat()}, "body.threat_level"),
        ({"status": "closed", "closure_reason": "vanished"}, "body.closure_reason"),
        ({"custody": {"status": "jailed"}}, "body.custody.status"),
    ],
)
async def test_bad_case_fields_name_the_field_and_change_nothing(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    body: dict[str, Any],
    field: str,
) -> None:
    case = scenario.case["id"]
    before = await _ok(client, app, world.soc_coordinator, "GET", f"/cases/{case}")
    problem = await _ok(
        client, app, world.soc_coordinator, "PATCH", f"/cases/{case}", 422, json=body
    )
    assert field in _field(problem)
    after = await _ok(client, app, world.soc_coordinator, "GET", f"/cases/{case}")
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


@pytest.mark.parametrize("reason", ["exited", "relocated", "in_custody", "deceased", "declined"])
async def test_the_new_closure_reasons_close_a_case(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario, reason: str
) -> None:
    closed = await _ok(
        client,
        app,
        world.soc_coordinator,
        "PATCH",
        f"/cases/{scenario.case['id']}",
        json={"status": "closed", "closure_reason": reason},
    )
    assert closed["closure_reason"] == reason


async def test_a_lowered_or_same_level_is_not_flagged_and_a_review_clears_the_flag(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    case = f"/cases/{scenario.case['id']}"
    soc = world.soc_coordinator

    async def assess(level: str) -> dict[str, Any]:
        return dict(
            await _ok(
                client,
                app,
                soc,
                "PATCH",
                case,
                json={"threat_level": level, "threat_reviewed_on": TODAY.isoformat()},
            )
        )

    assert (await assess("elevated"))["threat_flagged"] is False
    raised = await assess("critical")
    assert raised["threat_flagged"] is True
    assert raised["threat_review_due_on"] == (TODAY + timedelta(days=7)).isoformat()
    assert (await assess("critical"))["threat_flagged"] is False  # reviewed, not raised


async def test_links_continue_a_case_of_the_same_individual_without_cycles(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
) -> None:
    soc = world.soc_coordinator
    individual = scenario.individual["id"]
    trefas = await _ok(
        client,
        app,
        soc,
        "POST",
        "/cases",
        201,
        json={"individual_id": individual, "programme": "trefas"},
    )
    sig = scenario.case["id"]
    # another individual's case: continues is refused, related is fine
    stranger = await _ok(
        client,
        app,
        soc,
        "POST",
        "/individuals",
        201,
        json={"given_name": "A", "family_name": "B", "birth_date": "2009-02-02"},
    )
    theirs = await _ok(
        client,
        app,
        soc,
        "POST",
        "/cases",
        201,
        json={"individual_id": stranger["id"], "programme": "sig"},
    )
    refused = [
        ({"case_id": theirs["id"], "kind": "continues"}, 422),
        ({"case_id": sig, "kind": "continues"}, 422),  # itself
        ({"case_id": str(world.soc.id), "kind": "continues"}, 422),  # no such case
        ({"case_id": trefas["id"], "kind": "follows"}, 422),
    ]
    for body, status in refused:
        problem = await _ok(client, app, soc, "POST", f"/cases/{sig}/links", status, json=body)
        assert _field(problem) & {"body.case_id", "body.kind"}
    assert await _count(session, CaseLink) == 0
    made = await _ok(
        client,
        app,
        soc,
        "POST",
        f"/cases/{sig}/links",
        201,
        json={"case_id": trefas["id"], "kind": "continues"},
    )
    # the police take part in the SIG case and no consent names them yet
    assert made["consent_needed_for"] == [str(world.pol.id)]
    await _ok(
        client,
        app,
        soc,
        "POST",
        f"/cases/{sig}/links",
        409,
        json={"case_id": trefas["id"], "kind": "related"},
    )
    # a cycle: the Trefas case cannot continue the SIG case that continues it (via a third)
    third = await _ok(
        client,
        app,
        soc,
        "POST",
        "/cases",
        201,
        json={"individual_id": individual, "programme": "other"},
    )
    await _ok(
        client,
        app,
        soc,
        "POST",
        f"/cases/{third['id']}/links",
        201,
        json={"case_id": sig, "kind": "continues"},
    )
    problem = await _ok(
        client,
        app,
        soc,
        "POST",
        f"/cases/{trefas['id']}/links",
        422,
        json={"case_id": third["id"], "kind": "continues"},
    )
    assert _field(problem) == {"body.case_id"}
    await _ok(
        client,
        app,
        soc,
        "POST",
        f"/cases/{sig}/links",
        201,
        json={"case_id": theirs["id"], "kind": "related"},
    )
    # history from either side; the police, in the SIG case only, see no link at all
    from_old = await _ok(client, app, soc, "GET", f"/cases/{trefas['id']}/links")
    assert {(x["case_id"], x["linked_case_id"]) for x in from_old["items"]} == {(sig, trefas["id"])}
    assert (await _ok(client, app, world.pol_caseworker, "GET", f"/cases/{sig}/links"))[
        "items"
    ] == []
    # with a consent naming the police, nothing is needed any more
    await register_consent(client, app, world, scenario)
    again = await _ok(
        client,
        app,
        soc,
        "POST",
        f"/cases/{third['id']}/links",
        201,
        json={"case_id": trefas["id"], "kind": "related"},
    )
    assert again["consent_needed_for"] == []


async def test_protected_identity_switched_on_hides_the_identity_at_the_next_request(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
) -> None:
    await register_consent(client, app, world, scenario)
    case = f"/cases/{scenario.case['id']}"
    pol = world.pol_caseworker
    assert (await _ok(client, app, pol, "GET", case))["individual"]["identity_visible"] is True
    await _ok(
        client,
        app,
        world.soc_coordinator,
        "PATCH",
        f"/individuals/{scenario.individual['id']}",
        json={"protected_identity": True},
    )
    seen = await _ok(client, app, pol, "GET", case)
    assert seen["individual"]["identity_visible"] is False
    assert CHILD_NUMBER not in str(seen)
    assert "Testsson" not in str(seen)
    await _ok(client, app, pol, "GET", f"/individuals/{scenario.individual['id']}/versions", 404)
    # versioned and audited, without the values in the log
    versions = await _ok(
        client,
        app,
        world.soc_coordinator,
        "GET",
        f"/individuals/{scenario.individual['id']}/versions",
    )
    assert versions["items"][-1]["before"] == {"protected_identity": False}
    record = await session.scalar(
        select(AuditEvent)
        .where(AuditEvent.action == "individual.update")
        .order_by(AuditEvent.seq.desc())
    )
    assert record is not None
    assert record.reason == "changed protected_identity"
    assert "protected_identity" in record.flags


async def test_a_personnummer_taken_in_the_agency_is_refused_and_nothing_changes(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
) -> None:
    other = await _ok(
        client,
        app,
        world.soc_coordinator,
        "POST",
        "/individuals",
        201,
        json={"given_name": "R", "family_name": "S", "birth_date": "2012-05-05"},
    )
    versions = await _count(session, IndividualVersion)
    problem = await _ok(
        client,
        app,
        world.soc_coordinator,
        "PATCH",
        f"/individuals/{other['id']}",
        409,
        json={"personal_number": CHILD_NUMBER, "given_name": "Ny"},
    )
    assert CHILD_NUMBER not in str(problem)
    after = await _ok(client, app, world.soc_coordinator, "GET", f"/individuals/{other['id']}")
    assert (after["given_name"], after["personal_number"], after["version"]) == ("R", None, 1)
    assert await _count(session, IndividualVersion) == versions
    bad = await _ok(
        client,
        app,
        world.soc_coordinator,
        "PATCH",
        f"/individuals/{other['id']}",
        422,
        json={"personal_number": "20100303-2389"},
    )
    assert _field(bad) == {"body.personal_number"}
    assert "2389" not in str(bad)


async def test_staff_names_of_a_meeting_are_for_participating_agencies_only(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario, session: AsyncSession
) -> None:
    """POL records a meeting naming its officer, then leaves the case: it still reads its own
    meeting (own agency), but no longer the staff names of a case it is not part of."""
    world.pol_caseworker.display_name = "Polis Polissson"
    await session.flush()
    made = await _ok(
        client,
        app,
        world.pol_caseworker,
        "POST",
        f"/cases/{scenario.case['id']}/meetings",
        201,
        json=_meeting(
            attendees=[{"agency_id": str(world.pol.id), "user_id": str(world.pol_caseworker.id)}]
        ),
    )
    assert made["attendees"][0]["display_name"] == "Polis Polissson"
    await _ok(
        client,
        app,
        world.soc_coordinator,
        "DELETE",
        f"/cases/{scenario.case['id']}/participants/{world.pol.id}",
        204,
    )
    seen = await _ok(client, app, world.pol_coordinator, "GET", f"/meetings/{made['id']}")
    assert seen["attendees"][0]["display_name"] is None


async def test_the_work_list_holds_what_is_due_and_only_what_the_caller_may_see(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario, session: AsyncSession
) -> None:
    case = scenario.case["id"]
    soc, pol = world.soc_caseworker, world.pol_caseworker
    late = (TODAY - timedelta(days=2)).isoformat()
    mine = await _ok(
        client,
        app,
        soc,
        "POST",
        f"/cases/{case}/actions",
        201,
        json={
            "type": "samtal",
            "title": "T",
            "responsible_agency_id": str(world.soc.id),
            "due_date": late,
        },
    )
    await _ok(
        client,
        app,
        pol,
        "POST",
        f"/cases/{case}/actions",
        201,
        json={
            "type": "samtal",
            "title": "T",
            "responsible_agency_id": str(world.pol.id),
            "due_date": late,
        },
    )
    consent = await register_consent(
        client,
        app,
        world,
        scenario,
        valid_until=(datetime.now(UTC) + timedelta(days=10)).isoformat(),
    )
    assert consent.status_code == 201
    work = await _ok(client, app, soc, "GET", "/me/work")
    assert [(i["id"], i["kind"], i["due_on"]) for i in work["overdue_actions"]] == [
        (mine["id"], "action", late)
    ]
    assert [i["id"] for i in work["consents_expiring"]] == [consent.json()["id"]]
    # the police take part but do not lead: no consent to renew; their own action only
    police = await _ok(client, app, pol, "GET", "/me/work")
    assert police["consents_expiring"] == []
    assert [i["id"] for i in police["overdue_actions"]] != [mine["id"]]
    # done actions and closed cases drop out
    await _ok(
        client,
        app,
        world.soc_coordinator,
        "PATCH",
        f"/cases/{case}",
        json={"status": "closed", "closure_reason": "completed"},
    )
    assert (await _ok(client, app, soc, "GET", "/me/work"))["overdue_actions"] == []
    records = (
        await session.execute(select(AuditEvent).where(AuditEvent.reason.like("work list: %")))
    ).scalars()
    read = {(r.action, r.resource_id) for r in records}
    assert read >= {("action.read", mine["id"]), ("consent.read", consent.json()["id"])}
    assert date.fromisoformat(late) < TODAY


async def test_every_value_of_every_casework_enum_is_taken_and_shown(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    """Enumerated from the enums, so that a new value is tried without anyone adding it:
    goal areas and statuses, meeting kinds, custody, exit and threat levels, link kinds."""
    soc = world.soc_coordinator
    case = scenario.case["id"]
    for area in GoalArea:
        goal = await _ok(
            client, app, soc, "POST", f"/cases/{case}/goals", 201, json=_goal(area=area)
        )
        assert goal["area"] == area.value
    for status in GoalStatus:
        body: dict[str, Any] = {"status": status.value}
        if status is not GoalStatus.OPEN:
            body["outcome"] = "Utfall"
        assert (await _ok(client, app, soc, "PATCH", f"/goals/{goal['id']}", json=body))[
            "status"
        ] == status.value
    for kind in MeetingKind:
        meeting = await _ok(
            client, app, soc, "POST", f"/cases/{case}/meetings", 201, json=_meeting(kind=kind)
        )
        assert meeting["kind"] == kind.value
    for custody in CustodyStatus:
        for exit_status in ExitStatus:
            shown = await _ok(
                client,
                app,
                soc,
                "PATCH",
                f"/cases/{case}",
                json={"custody": {"status": custody}, "exit": {"status": exit_status}},
            )
            assert (shown["custody"]["status"], shown["exit"]["status"]) == (custody, exit_status)
    for level in ThreatLevel:
        shown = await _ok(
            client,
            app,
            soc,
            "PATCH",
            f"/cases/{case}",
            json={"threat_level": level, "threat_reviewed_on": TODAY.isoformat()},
        )
        assert shown["threat_level"] == level.value
        assert (shown["threat_review_due_on"] is None) == (level is ThreatLevel.NONE)
    for kind in LinkKind:
        other = await _ok(
            client,
            app,
            soc,
            "POST",
            "/cases",
            201,
            json={"individual_id": scenario.individual["id"], "programme": "other"},
        )
        link = await _ok(
            client,
            app,
            soc,
            "POST",
            f"/cases/{case}/links",
            201,
            json={"case_id": other["id"], "kind": kind},
        )
        assert link["kind"] == kind.value
