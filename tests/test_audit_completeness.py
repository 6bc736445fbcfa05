"""Audit completeness: every personal-data route, with every outcome, leaves exactly one
complete audit record of the request.

The routes and who may call them come from the authorization matrix (one world with an
active consent). Each route is driven as an actor it permits, as one it denies, with
invalid input (a malformed id in the path, a body of the wrong shape, a bad query), and
with a simulated server failure, both before anything was recorded (the first flush
fails) and after the work and its record were done (COMMIT fails). Each call must leave
one record, of this request, naming the actor, and saying what happened.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app import db as db_module
from app.audit import writer
from app.audit.models import AuditEvent
from app.auth import service as auth_service
from app.middleware import REQUEST_ID_HEADER
from tests.factories import audit_events_after, audit_head
from tests.scenarios import Scenario, World, call, register_consent
from tests.test_authorization_matrix import (
    ACTORS,
    PDF,
    ROWS,
    Ctx,
    Row,
    _build,
    _template_route,
)

# Once with local accounts, once signed in through the agencies' identity providers
# (issue 17): every record names its actor, and how the actor signed in.
pytestmark = pytest.mark.usefixtures("sign_in")

PERSONAL = [row for row in ROWS if row.audit == "personal" or row.template.endswith("/access-log")]
# One row per route (POST /cases/{case}/actions has two: for one's own agency and another's).
ROUTES = list({_template_route(row): row for row in reversed(PERSONAL)}.values())
ROUTES.reverse()
# The consent document is stored once (a second upload is a 409, tested below): this
# route is driven against a second consent, registered without a document.
FRESH_CONSENT = ("PUT", "/consents/{consent}/document")
# What each route records, as auditors search for it (an independent statement of the
# routes' declarations). Lists and searches add one read record per item they disclose.
ACTIONS = {
    ("GET", "/individuals/{individual}"): "individual.read",
    ("GET", "/individuals"): "individual.search",
    ("POST", "/individuals"): "individual.create",
    ("GET", "/cases"): "case.list",
    ("GET", "/cases/{case}"): "case.read",
    ("POST", "/cases"): "case.create",
    ("PATCH", "/cases/{case}"): "case.update",
    ("GET", "/cases/{case}/participants"): "participant.list",
    ("POST", "/cases/{case}/participants"): "participant.add",
    ("DELETE", "/cases/{case}/participants/{pol}"): "participant.remove",
    ("GET", "/cases/{case}/consents"): "consent.list",
    ("POST", "/cases/{case}/consents"): "consent.register",
    ("GET", "/consents/{consent}"): "consent.read",
    ("GET", "/consents/{consent}/document"): "consent.document.read",
    ("PUT", "/consents/{consent}/document"): "consent.document.store",
    ("POST", "/consents/{consent}/withdrawal"): "consent.withdraw",
    ("POST", "/cases/{case}/entries"): "entry.create",
    ("GET", "/cases/{case}/entries"): "entry.list",
    ("GET", "/entries/{soc_entry}"): "entry.read",
    ("POST", "/entries/{soc_entry}/corrections"): "entry.correct",
    ("POST", "/cases/{case}/actions"): "action.create",
    ("GET", "/cases/{case}/actions"): "action.list",
    ("GET", "/actions/{soc_action}"): "action.read",
    ("PATCH", "/actions/{soc_action}"): "action.update",
    ("POST", "/cases/{case}/emergency-access"): "emergency.grant",
    ("GET", "/cases/{case}/emergency-access"): "emergency.list",
    ("DELETE", "/emergency-access/{grant}"): "emergency.end",
    ("GET", "/individuals/{individual}/access-log"): "audit.access_log",
    ("GET", "/events"): "event.list",
    ("PATCH", "/individuals/{individual}"): "individual.update",
    ("GET", "/individuals/{individual}/versions"): "individual.versions",
    ("POST", "/individuals/{individual}/guardians"): "guardian.add",
    ("PATCH", "/guardians/{guardian}"): "guardian.update",
    ("POST", "/cases/{case}/goals"): "goal.create",
    ("GET", "/cases/{case}/goals"): "goal.list",
    ("GET", "/goals/{soc_goal}"): "goal.read",
    ("PATCH", "/goals/{soc_goal}"): "goal.update",
    ("POST", "/cases/{case}/meetings"): "meeting.create",
    ("GET", "/cases/{case}/meetings"): "meeting.list",
    ("GET", "/meetings/{soc_meeting}"): "meeting.read",
    ("POST", "/cases/{case}/links"): "case.link",
    ("GET", "/cases/{case}/links"): "case.links",
    ("GET", "/me/work"): "work.list",
    ("POST", "/legal-holds"): "legal_hold.request",
    ("GET", "/legal-holds/{hold}"): "legal_hold.read",
    ("POST", "/legal-holds/{active_hold}/lift"): "legal_hold.lift",
    ("POST", "/legal-holds/{hold}/approve"): "legal_hold.approve",
    ("POST", "/legal-holds/{hold}/reject"): "legal_hold.reject",
}
# A route whose work is recorded besides its own record: a meeting's decisions are each an
# action planned (``action.create``), in the same request.
ALSO_RECORDED = {"meeting.create": "action.create"}
BAD_QUERY = {  # the GET routes without an id in the path: a query they refuse
    "/individuals": "?personal_number=1",
    "/cases": "?limit=0",
    "/events": "?after=not-a-cursor",
    "/me/work": "?limit=0",
}


@dataclass(frozen=True)
class Outcome:
    name: str
    status: frozenset[int]
    decision: str
    reason: str | None = None  # what the record's reason must say


PERMIT = Outcome("permit", frozenset({200, 201, 204}), "permit")
DENY = Outcome("deny", frozenset({403, 404}), "deny")
INVALID = Outcome("invalid", frozenset({422}), "deny", reason="not carried out: HTTP 422")
FAILED_EARLY = Outcome(
    "failed before recording", frozenset({500}), "deny", "not carried out: HTTP 500"
)
FAILED_LATE = Outcome("failed at commit", frozenset({500}), "permit", "not completed: HTTP 500")


def _actor_with(row: Row, ctx: Ctx, statuses: frozenset[int]) -> str | None:
    return next((a for a in ACTORS if row.rule(a, ctx).status in statuses), None)


def _path(row: Row, ctx: Ctx) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ctx.ids[m.group(1)], row.template)


def _kwargs(row: Row, actor: str, ctx: Ctx) -> dict[str, Any]:
    if row.body is not None:
        return {"json": row.body(actor, ctx)}
    if row.method == "PUT":
        return {"content": PDF}
    return {}


def _invalid_calls(row: Row, actor: str, ctx: Ctx) -> list[tuple[str, dict[str, Any]]]:
    """Requests the route must refuse with a 422, as ``actor`` who may otherwise call it."""
    calls = []
    if "{" in row.template:
        garbled = re.sub(r"\{\w+\}", "not-an-id", row.template, count=1)
        calls.append((re.sub(r"\{(\w+)\}", lambda m: ctx.ids[m.group(1)], garbled), {}))
    if row.body is not None:
        calls.append((_path(row, ctx), {"json": ["not", "an", "object"]}))
    if "{" not in row.template and row.method == "GET":
        calls.append((row.template.split("?")[0] + BAD_QUERY[row.template.split("?")[0]], {}))
    for _, kwargs in calls:
        if not kwargs and row.body is not None:
            kwargs["json"] = row.body(actor, ctx)
    return calls


def _finds_the_caller(statement: Any) -> bool:
    """The statement that reads the caller: a local sign-in's, or the account linked to a
    provider's subject (app.oidc.service)."""
    return statement is auth_service._SIGNED_IN_USER or (
        isinstance(statement, Select) and "app_user.identity_subject =" in str(statement)
    )


@contextmanager
def _failing(*methods: str) -> Iterator[None]:
    """The first call in the request of any of ``AsyncSession.<methods>`` raises, once;
    the statement that finds the caller (before anyone is known, there is no one to
    record) is let through."""
    originals = {method: getattr(AsyncSession, method) for method in methods}
    state = {"failed": False}

    def failing(method: str) -> Any:
        original = originals[method]

        async def fail_once(self: AsyncSession, *args: Any, **kwargs: Any) -> Any:
            if not state["failed"] and not (args and _finds_the_caller(args[0])):
                state["failed"] = True
                raise RuntimeError(f"simulated failure of {method}")
            return await original(self, *args, **kwargs)

        return fail_once

    fetch = db_module._fetch

    async def fail_fetch_once(raw: Any, statement: Any, *args: Any) -> Any:
        """The hot path's statements on PostgreSQL go past the session (app.db.rows_of)."""
        if "execute" in methods and not state["failed"] and not _finds_the_caller(statement):
            state["failed"] = True
            raise RuntimeError("simulated failure of execute")
        return await fetch(raw, statement, *args)

    for method in methods:
        setattr(AsyncSession, method, failing(method))
    db_module._fetch = fail_fetch_once
    try:
        yield
    finally:
        for method, original in originals.items():
            setattr(AsyncSession, method, original)
        db_module._fetch = fetch


def _item_problems(
    outcome: Outcome, response: httpx.Response, items: list[AuditEvent], event: AuditEvent
) -> list[str]:
    """A list or search records each item it disclosed, as a read of that item."""
    also = ALSO_RECORDED.get(event.action)
    if also and outcome in {PERMIT, FAILED_LATE}:
        if any(e.action != also or e.request_id != event.request_id for e in items):
            return [f"records besides the request's own and its {also}"]
        return []
    if outcome not in {PERMIT, FAILED_LATE} or not event.action.endswith((".list", ".search")):
        return [f"records besides the request's own: {[(e.action, e.reason) for e in items]}"]
    problems = []
    if any(not e.action.endswith(".read") or e.decision != event.decision for e in items):
        problems.append("an item record is not a read with the request's decision")
    if any(e.request_id != event.request_id for e in items):
        problems.append("an item record does not carry the request id")
    if outcome is PERMIT:
        body = response.json()
        shown = {i["id"] for i in (body if isinstance(body, list) else body["items"])}
        if {e.resource_id for e in items} != shown:
            problems.append("the item records are not the items shown")
    elif any("not completed: HTTP 500" not in (e.reason or "") for e in items):
        problems.append("an item record does not say the request was not completed")
    return problems


def _check(
    label: str,
    outcome: Outcome,
    response: httpx.Response,
    events: list[AuditEvent],
    user: Any,
    row: Row,
    ctx: Ctx,
) -> list[str]:
    if response.status_code not in outcome.status:
        return [f"{label}: status {response.status_code}, expected {sorted(outcome.status)}"]
    action = ACTIONS[(row.method, row.template.split("?")[0])]
    records = [e for e in events if e.action == action]
    items = [e for e in events if e.action != action]
    if len(records) != 1:
        found = [(e.action, e.decision, e.reason) for e in events]
        return [f"{label}: {len(records)} records of {action}, expected 1: {found}"]
    event = records[0]
    problems = []
    if items:
        problems += _item_problems(outcome, response, items, event)
    if event.request_id != response.headers[REQUEST_ID_HEADER]:
        problems.append("the record does not carry the request id")
    if event.actor_user_id != user.id or event.actor_agency_id != user.agency_id:
        problems.append("the record does not name the actor and the agency")
    if not event.actor_roles or not event.action or event.at is None:
        problems.append("the record lacks roles, action or time")
    if event.decision != outcome.decision:
        problems.append(f"decision {event.decision}, expected {outcome.decision}")
    if outcome.reason and outcome.reason not in (event.reason or ""):
        problems.append(f"reason {event.reason!r} does not say {outcome.reason!r}")
    names_case = "{case}" in row.template
    if outcome in {FAILED_EARLY, PERMIT} and names_case and str(event.case_id) != ctx.ids["case"]:
        problems.append("the record does not name the case")
    names_individual = "{individual}" in row.template
    if (
        outcome is FAILED_EARLY
        and names_individual
        and str(event.individual_id) != ctx.ids["individual"]
    ):
        problems.append("the record does not name the individual")
    return [f"{label}: {p}" for p in problems]


async def test_every_personal_data_route_leaves_one_record_whatever_the_outcome(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
    connection: AsyncConnection,
) -> None:
    ctx = await _build(client, app, world, scenario, session, "active")
    fresh = await register_consent(client, app, world, scenario)
    assert fresh.status_code == 201, fresh.text
    fresh_id = fresh.json()["id"]
    fresh_ctx = Ctx(ctx.world, ctx.scenario, ctx.state, ctx.ids | {"consent": fresh_id}, fresh_id)
    report: list[str] = []
    outcomes_seen: dict[str, int] = {}

    async def drive(
        label: str, outcome: Outcome, row: Row, actor: str, path: str, kwargs: dict[str, Any]
    ) -> None:
        user = getattr(world, actor)
        savepoint = await connection.begin_nested()
        try:
            before = await audit_head(connection)
            if outcome is FAILED_EARLY:
                # The first statement or flush: before a write records its work, and
                # before a read (whose records wait for the commit) has decided.
                with _failing("flush", "execute"):
                    response = await call(client, app, user, row.method, path, **kwargs)
            elif outcome is FAILED_LATE:
                with _failing("commit"):
                    response = await call(client, app, user, row.method, path, **kwargs)
            else:
                response = await call(client, app, user, row.method, path, **kwargs)
            events = await audit_events_after(connection, before)
        finally:
            await savepoint.rollback()
        outcomes_seen[outcome.name] = outcomes_seen.get(outcome.name, 0) + 1
        report.extend(_check(label, outcome, response, events, user, row, ctx))
        # Every record names how its actor signed in (the sign_in variants of this module).
        signed_in = f"oidc:{user.identity_provider}" if user.identity_provider else "password"
        report.extend(
            f"{label}: record {e.action} says auth_method {e.auth_method!r}, not {signed_in!r}"
            for e in events
            if e.actor_user_id == user.id and e.auth_method != signed_in
        )

    for row in ROUTES:
        route = f"{row.method} {row.template}"
        here, permitted = ctx, _actor_with(row, ctx, PERMIT.status)
        if (row.method, row.template) == FRESH_CONSENT:
            here, permitted = fresh_ctx, "soc_coordinator"
        if "{grant}" in row.template and "grant_made" not in ctx.ids:
            # a grant to end (made here, after the routes whose expectations it would change)
            granted = await call(
                client,
                app,
                world.pol_caseworker,
                "POST",
                f"/cases/{ctx.ids['case']}/emergency-access",
                json={"legal_basis": "osl_10_18a", "reason": "Akut hot mot den unge"},
            )
            assert granted.status_code == 201, granted.text
            ctx.ids["grant"] = ctx.ids["grant_made"] = granted.json()["id"]
            here, permitted = ctx, _actor_with(row, ctx, PERMIT.status)
        assert permitted is not None, f"{route}: no actor may call it"
        path = _path(row, here)
        for outcome in (PERMIT, FAILED_EARLY, FAILED_LATE):
            kwargs = _kwargs(row, permitted, here)
            await drive(f"{route} {outcome.name}", outcome, row, permitted, path, kwargs)
        denied = _actor_with(row, here, DENY.status)
        if denied is not None:  # lists and searches deny no one: they show less
            kwargs = _kwargs(row, denied, here)
            await drive(f"{route} as {denied}", DENY, row, denied, path, kwargs)
        for bad_path, kwargs in _invalid_calls(row, permitted, here):
            await drive(f"{route} invalid {bad_path}", INVALID, row, permitted, bad_path, kwargs)

    assert report == [], "\n".join(report)
    assert outcomes_seen.keys() == {
        "permit",
        "deny",
        "invalid",
        "failed before recording",
        "failed at commit",
    }
    assert len(ROUTES) >= 25


async def test_a_conflict_is_recorded_once_as_not_carried_out(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
    connection: AsyncConnection,
) -> None:
    """The consent document is stored once: a second upload is a 409. The attempt is on
    record, naming the consent and why nothing was done, in the review queue."""
    ctx = await _build(client, app, world, scenario, session, "active")
    before = await audit_head(connection)
    response = await call(
        client,
        app,
        world.soc_coordinator,
        "PUT",
        f"/consents/{ctx.consent_id}/document",
        content=PDF,
    )
    assert response.status_code == 409
    [event] = await audit_events_after(connection, before)
    assert (event.action, event.decision, event.policy_id) == (
        "consent.document.store",
        "deny",
        "conflict",
    )
    assert event.reason == "not carried out: HTTP 409 (conflict)"
    assert (event.resource_type, event.resource_id) == ("consent", ctx.consent_id)
    assert event.request_id == response.headers[REQUEST_ID_HEADER]


async def test_a_read_that_would_go_unrecorded_fails_closed(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
    connection: AsyncConnection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A route that forgets its audit record (simulated: appends do nothing) does not
    answer: the commit is refused, nothing is shown, and the attempt is on record."""
    ctx = await _build(client, app, world, scenario, session, "active")

    async def forgetful(session: AsyncSession, record: object) -> int:
        return 0

    monkeypatch.setattr(writer, "append", forgetful)
    monkeypatch.setattr(writer, "append_at_commit", lambda session, records: None)
    before = await audit_head(connection)
    response = await call(
        client, app, world.soc_caseworker, "GET", f"/entries/{ctx.ids['soc_entry']}"
    )
    assert response.status_code == 500
    assert "Anteckning" not in response.text
    [event] = await audit_events_after(connection, before)
    assert (event.action, event.decision, event.resource_id) == (
        "entry.read",
        "deny",
        ctx.ids["soc_entry"],
    )
    assert event.reason == "not carried out: HTTP 500 (internal-error)"
