"""The event log: every change leaves its event in its own transaction, and the feed shows a
caller only events about what it may read when it asks.

Uses the shared world (tests/scenarios.py): SOC registers a minor and leads a SIG case, POL
takes part, SKOLA does not.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit import writer as audit_writer
from app.audit.deps import declared_action
from app.audit.models import AuditEvent
from app.db import before_commit
from app.entries.models import Entry
from app.events import service as event_service
from app.events.models import Event
from app.main import create_app
from tests.conftest import make_settings
from tests.scenarios import Scenario, World, call, consent_body, register_consent
from tests.test_routes import operations

# Which event each audited change leaves (a case update: updated, or closed).
# A link changes the case: it leaves a case.updated, one of the case's own events.
CASE_EVENTS = {"case.updated", "case.closed", "case.threat_raised"}
EVENT_OF = {
    "individual.create": {"individual.registered"},
    "case.create": {"case.opened"},
    "case.update": CASE_EVENTS,
    "case.link": CASE_EVENTS,
    "individual.update": {"individual.updated"},
    "guardian.add": {"individual.updated"},
    "guardian.update": {"individual.updated"},
    "goal.create": {"goal.updated"},
    "goal.update": {"goal.updated"},
    "meeting.create": {"meeting.recorded"},
    "participant.add": {"participant.added"},
    "participant.remove": {"participant.removed"},
    "consent.register": {"consent.registered"},
    "consent.supersede": {"consent.superseded"},
    "consent.withdraw": {"consent.withdrawn"},
    "entry.create": {"entry.recorded"},
    "entry.correct": {"entry.corrected"},
    "action.create": {"action.planned"},
    "action.update": {"action.updated"},
    "emergency.grant": {"emergency.granted"},
    "emergency.end": {"emergency.ended"},
}
# Changes that are not about a case or an individual's record, or that add nothing an
# integrator acts on: administration, the audit log itself, the consent form's bytes.
NO_EVENT = {
    "agency.create",
    "agency.update",
    "user.create",
    "user.update",
    "client.create",
    "client.revoke",
    "audit.review",
    "audit.checkpoint",
    "consent.document.store",
    "webhook.create",
    "webhook.delete",
    "webhook.retry",
    # the lägesbild: areas and their weekly levels, about no case and no one
    "area.create",
    "lagesbild.write",
    "lagesbild.import",
    # legal holds: retention's business, decided by auditors; no integration acts on them
    "legal_hold.request",
    "legal_hold.lift",
    "legal_hold.approve",
    "legal_hold.reject",
}
THIN = {"id", "type", "occurred_at", "case_id", "individual_id", "resource_type", "resource_id"}


def test_every_change_is_classified() -> None:
    """A new route that changes something must say which event it leaves (or why none)."""
    unclassified, changes = [], set()
    for operation in operations(create_app(make_settings("sqlite+aiosqlite://"))):
        action = declared_action(operation)
        if action and operation.methods & {"POST", "PUT", "PATCH", "DELETE"}:
            changes.add(action)
            if action not in EVENT_OF and action not in NO_EVENT:
                unclassified.append(f"{sorted(operation.methods)} {operation.path}: {action}")
    assert unclassified == []
    assert changes >= set(EVENT_OF) - {"consent.supersede"}  # recorded by consent.register


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else {}


async def _every_change(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    """Each kind of change through the API, once."""
    case = scenario.case["id"]
    consent = await _ok(await register_consent(client, app, world, scenario), 201)
    await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "POST",
            f"/cases/{case}/consents",
            json=consent_body(scenario, world, supersedes_id=consent["id"]),
        ),
        201,
    )
    entry = await _ok(
        await call(
            client,
            app,
            world.soc_caseworker,
            "POST",
            f"/cases/{case}/entries",
            json={"category": "social_services", "title": "Hembesök", "body": "Samtal."},
        ),
        201,
    )
    await _ok(
        await call(
            client,
            app,
            world.soc_caseworker,
            "POST",
            f"/entries/{entry['id']}/corrections",
            json={"body": "Rättat.", "reason": "Fel dag"},
        ),
        201,
    )
    action = await _ok(
        await call(
            client,
            app,
            world.soc_caseworker,
            "POST",
            f"/cases/{case}/actions",
            json={"type": "samtal", "title": "Samtal", "responsible_agency_id": str(world.soc.id)},
        ),
        201,
    )
    await _ok(
        await call(
            client,
            app,
            world.soc_caseworker,
            "PATCH",
            f"/actions/{action['id']}",
            json={"status": "in_progress"},
        )
    )
    grant = await _ok(
        await call(
            client,
            app,
            world.pol_caseworker,
            "POST",
            f"/cases/{case}/emergency-access",
            json={"legal_basis": "osl_10_18a", "reason": "Akut hot mot den unge"},
        ),
        201,
    )
    await _ok(
        await call(client, app, world.pol_caseworker, "DELETE", f"/emergency-access/{grant['id']}"),
        204,
    )
    await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "POST",
            f"/cases/{case}/participants",
            json={"agency_id": str(world.skola.id)},
        ),
        201,
    )
    await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "DELETE",
            f"/cases/{case}/participants/{world.skola.id}",
        ),
        204,
    )
    await _casework(client, app, world, scenario)
    withdrawn = await _ok(await register_consent(client, app, world, scenario), 201)
    await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "POST",
            f"/consents/{withdrawn['id']}/withdrawal",
            json={"reason": "Återkallat"},
        )
    )
    for status in ("active", "closed"):
        body: dict[str, Any] = {"status": status}
        if status == "closed":
            body["closure_reason"] = "completed"
        await _ok(
            await call(client, app, world.soc_coordinator, "PATCH", f"/cases/{case}", json=body)
        )


async def _casework(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    """Corrections, goals, a meeting, a link and a raised threat, once each."""
    case, individual = scenario.case["id"], scenario.individual["id"]
    soc, pol = world.soc_coordinator, world.pol_coordinator
    today = datetime.now(UTC).date()

    async def ok(user: Any, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        return await _ok(await call(client, app, user, method, path, **kw), status)

    await ok(soc, "PATCH", f"/individuals/{individual}", json={"given_name": "Kimmie"})
    guardian = await ok(
        soc,
        "POST",
        f"/individuals/{individual}/guardians",
        201,
        json={"given_name": "Moster", "family_name": "T", "has_custody": False},
    )
    await ok(soc, "PATCH", f"/guardians/{guardian['id']}", json={"contact": "070-1"})
    goal = await ok(
        soc,
        "POST",
        f"/cases/{case}/goals",
        201,
        json={"area": "housing", "description": "Eget boende", "target_date": today.isoformat()},
    )
    await ok(soc, "PATCH", f"/goals/{goal['id']}", json={"note": "Uppföljt"})
    await ok(
        soc,
        "POST",
        f"/cases/{case}/meetings",
        201,
        json={
            "held_at": datetime.now(UTC).isoformat(),
            "kind": "planning",
            "individual_present": True,
        },
    )
    old = await ok(
        soc, "POST", "/cases", 201, json={"individual_id": individual, "programme": "trefas"}
    )
    await ok(
        soc, "POST", f"/cases/{case}/links", 201, json={"case_id": old["id"], "kind": "continues"}
    )
    await ok(
        pol,
        "PATCH",
        f"/cases/{case}",
        json={"threat_level": "critical", "threat_reviewed_on": today.isoformat()},
    )


async def test_every_committed_change_has_its_event_and_no_more(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
) -> None:
    """Swept from the audit log: each permitted change of a kind in EVENT_OF left exactly one
    event of its type, about the same case and resource."""
    await _every_change(client, app, world, scenario)
    changes = list(
        (
            await session.execute(
                select(AuditEvent).where(
                    AuditEvent.decision == "permit", AuditEvent.action.in_(EVENT_OF)
                )
            )
        ).scalars()
    )
    assert {c.action for c in changes} == set(EVENT_OF)  # every kind was exercised
    events = list((await session.execute(select(Event).order_by(Event.seq))).scalars())
    expected = Counter(
        (frozenset(EVENT_OF[c.action]), str(c.case_id) if c.case_id else None) for c in changes
    )
    got: Counter[tuple[frozenset[str], str | None]] = Counter()
    for event in events:
        kinds = next(k for k in map(frozenset, EVENT_OF.values()) if event.type in k)
        got[(kinds, str(event.case_id) if event.case_id else None)] += 1
    assert got == expected
    for change in changes:
        if change.action.startswith("participant."):
            continue  # the record names the case; the event names the agency
        assert any(
            str(e.resource_id) == change.resource_id and e.type in EVENT_OF[change.action]
            for e in events
        ), change.action
    closing = [e for e in events if e.type == "case.closed"]
    assert len(closing) == 1
    assert str(closing[0].case_id) == scenario.case["id"]


async def _feed(
    client: httpx.AsyncClient, app: FastAPI, user: Any, after: str | None = None, limit: int = 200
) -> dict[str, Any]:
    query = f"/events?limit={limit}" + (f"&after={after}" if after else "")
    return dict(await _ok(await call(client, app, user, "GET", query)))


async def test_the_feed_is_thin_paged_and_always_gives_a_cursor(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    await _every_change(client, app, world, scenario)
    everything = await _feed(client, app, world.soc_coordinator)
    assert everything["items"]
    assert all(set(e) == THIN for e in everything["items"])
    # no content and no names: only ids, the type and the time
    assert "Testsson" not in str(everything)
    assert "Hembesök" not in str(everything)
    pages, after = [], None
    while True:
        page = await _feed(client, app, world.soc_coordinator, after, limit=3)
        assert page["next_cursor"]
        if not page["items"]:
            break
        pages += page["items"]
        after = page["next_cursor"]
    assert pages == everything["items"]  # oldest first, nothing skipped or repeated
    # polling with the last cursor: empty now, and a new change shows up after it
    await call(
        client,
        app,
        world.soc_caseworker,
        "POST",
        f"/cases/{scenario.case['id']}/entries",
        json={"category": "contact", "title": "Ny adress", "body": "Flyttat."},
    )
    later = await _feed(client, app, world.soc_coordinator, after)
    assert [e["type"] for e in later["items"]] == []  # the case was closed: 409, no event
    assert later["next_cursor"] == after


async def test_a_cursor_is_the_callers_own(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    mine = (await _feed(client, app, world.soc_coordinator))["next_cursor"]
    response = await call(client, app, world.soc_caseworker, "GET", f"/events?after={mine}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.after"
    for bad in ("x", "eyJ9", "WyIxIl0"):
        assert (
            await call(client, app, world.soc_coordinator, "GET", f"/events?after={bad}")
        ).status_code == 422


@pytest.mark.parametrize("who", ["soc_admin", "soc_auditor"])
async def test_administrators_and_auditors_read_no_events(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario, who: str
) -> None:
    response = await call(client, app, getattr(world, who), "GET", "/events")
    assert response.status_code == 403


async def test_an_event_is_shown_by_what_the_reader_may_read_now(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    """POL sees SOC's entry event under the consent; after the withdrawal, the same event
    is gone from POL's feed (the entry may no longer be read), and the withdrawal's own
    event names only the consent."""
    consent = await _ok(await register_consent(client, app, world, scenario), 201)
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

    def about(feed: dict[str, Any]) -> set[str]:
        return {e["resource_id"] for e in feed["items"]}

    assert entry["id"] in about(await _feed(client, app, world.pol_caseworker))
    assert entry["id"] not in about(await _feed(client, app, world.skola_coordinator))
    await _ok(
        await call(
            client,
            app,
            world.soc_coordinator,
            "POST",
            f"/consents/{consent['id']}/withdrawal",
            json={"reason": "Återkallat"},
        )
    )
    after = await _feed(client, app, world.pol_caseworker)
    assert entry["id"] not in about(after)
    withdrawal = [e for e in after["items"] if e["type"] == "consent.withdrawn"]
    assert [e["resource_id"] for e in withdrawal] == [consent["id"]]
    assert entry["id"] in about(await _feed(client, app, world.soc_caseworker))  # its own


async def test_the_feed_is_audited(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
) -> None:
    feed = await _feed(client, app, world.pol_caseworker)
    assert feed["items"]
    records = list(
        (
            await session.execute(
                select(AuditEvent).where(AuditEvent.action.in_(["event.list", "event.read"]))
            )
        ).scalars()
    )
    assert {(r.actor_user_id, r.decision) for r in records} == {(world.pol_caseworker.id, "permit")}
    assert [r.action for r in records].count("event.list") == 1
    # one record per event shown, naming whom it was about
    shown = {
        (r.resource_id, r.individual_id, r.case_id) for r in records if r.action == "event.read"
    }
    assert shown == {
        (
            e["id"],
            uuid.UUID(e["individual_id"]) if e["individual_id"] else None,
            uuid.UUID(e["case_id"]) if e["case_id"] else None,
        )
        for e in feed["items"]
    }


async def test_no_event_without_its_change(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The outbox row is in the change's transaction: when the request fails after the
    event was written (its audit record cannot be written at the commit), neither the
    entry nor its event exists."""
    before = (await session.execute(select(Event.seq))).scalars().all()
    real = event_service.emit

    async def emit_then_fail_at_commit(target: AsyncSession, *args: Any, **kw: Any) -> None:
        await real(target, *args, **kw)

        async def refuse(_: AsyncSession) -> None:
            # the event was written (with the entry's record), then the commit fails
            assert (await target.execute(select(Event.seq))).scalars().all() != before
            raise audit_writer.AuditUnavailable("the audit store is down")

        before_commit(target, refuse)

    monkeypatch.setattr(event_service, "emit", emit_then_fail_at_commit)
    response = await call(
        client,
        app,
        world.soc_caseworker,
        "POST",
        f"/cases/{scenario.case['id']}/entries",
        json={"category": "social_services", "title": "Hembesök", "body": "Samtal."},
    )
    monkeypatch.undo()
    assert response.status_code == 503, response.text
    assert (await session.execute(select(Event.seq))).scalars().all() == before
    assert (await session.execute(select(Entry.id))).scalars().all() == []
