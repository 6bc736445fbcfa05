"""The authorization matrix: every route, as every actor, in every consent state.

The routes come from the app itself (tests/test_routes.py); a route without a row here
fails ``test_every_route_has_a_row``, so no endpoint ships unexamined. Each consent-state
test builds one world — SOC registers a minor and leads a SIG case, POL takes part, SKOLA
does not; SOC and POL each record an entry and plan an action — puts it into the state,
then calls every row as every actor, each call inside a savepoint that is rolled back, and
checks the status, what was shown (identity, list items), and the audit record: a permit
naming the basis the rule allows (own agency, the consent's id, the legal basis), or a
deny naming the case and the individual.

All mismatches of a state are collected and reported together, as a table.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit.models import AuditEvent
from app.emergency.models import EmergencyGrant, EmergencyGrantCategory
from app.webhooks.models import WebhookDelivery
from tests.factories import audit_events_after, audit_head
from tests.scenarios import CHILD_NUMBER, Scenario, World, call, consent_body, register_consent
from tests.test_routes import PUBLIC, ROUTES

API = "/api/v1"
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
LEGAL_BASIS = (
    "osl_10_18a"  # police, towards social services: identity, contact, social_services, plan
)

GUARDIAN_NAME = "Mamma"  # tests.scenarios.individual_body: a guardian, and a signatory

ACTORS = [
    "soc_coordinator",
    "soc_caseworker",
    "pol_caseworker",
    "pol_coordinator",
    "skola_coordinator",
    "soc_admin",
    "soc_auditor",
]
SOC_STAFF = {"soc_coordinator", "soc_caseworker"}
POL_STAFF = {"pol_caseworker", "pol_coordinator"}
PARTICIPANTS = SOC_STAFF | POL_STAFF
ADMIN = {"soc_admin"}

STATES = [
    "none",
    "active",
    "pending",
    "expired",
    "withdrawn",
    "wrong_agency",
    "wrong_category",
    "emergency_grant",
    "expired_grant",
    "superseded",
    "closed",
]
# "superseded": the full consent, superseded by one that covers only `contact`;
# "closed": the full consent and a live police grant, then the case closed.
WITH_CONSENT = {
    "active",
    "pending",
    "expired",
    "withdrawn",
    "wrong_agency",
    "wrong_category",
    "superseded",
    "closed",
}
CONSENT_CATEGORIES = ["identity", "social_services", "police", "plan"]


@dataclass
class Ctx:
    """The world of one state: ids the path templates name, and the consent (if any)."""

    world: World
    scenario: Scenario
    state: str
    ids: dict[str, str] = field(default_factory=dict)
    consent_id: str | None = None


def agency_of(actor: str) -> str:
    return actor.split("_", maxsplit=1)[0]


def basis(actor: str, state: str, source: str) -> str | None:
    """What lets ``actor`` read information ``source`` (soc or pol) recorded, in ``state``:
    the sharing rule of DESIGN §3, written out independently of app/policy."""
    if actor not in PARTICIPANTS:
        return None  # outsiders, administrators and auditors never read content
    if agency_of(actor) == source:
        return "own_agency"
    if state == "active":
        return "consent"  # names SOC and POL, covers identity, social_services, police, plan
    if state == "emergency_grant" and actor == "pol_caseworker" and source == "soc":
        return "emergency_access"  # the grant is the user's, and opens social services only
    # "closed": neither the consent nor the grant shares anything through a closed case
    return None


def identity_basis(actor: str, state: str) -> str | None:
    """The individual was registered by SOC: identity is SOC's information."""
    return basis(actor, state, "soc")


@dataclass(frozen=True)
class Expect:
    status: int
    items: set[str] | None = None  # ids a list must hold, exactly
    identity: bool | None = None  # whether names and number are shown
    basis: str | None = None  # the basis the read record must name
    resource: str | None = None  # the id of the content read (for the basis check)
    # for the event feed: per resource type, the resource ids its events must name, exactly
    events_about: dict[str, set[str]] | None = None


Rule = Callable[[str, Ctx], Expect]


@dataclass(frozen=True)
class Row:
    method: str
    template: str
    rule: Rule
    body: Callable[[str, Ctx], dict[str, Any]] | None = None
    audit: str = "personal"  # personal | admin | none
    states: frozenset[str] = frozenset(STATES)
    csv: str | None = None  # a text/csv body (the lägesbild import)


def _staff_or(status_for_staff: int, outsider: int = 404) -> Rule:
    return lambda actor, ctx: Expect(status_for_staff if actor in PARTICIPANTS else outsider)


def _lead_coordinator(ok: int) -> Rule:
    def rule(actor: str, ctx: Ctx) -> Expect:
        if actor == "soc_coordinator":
            return Expect(ok)
        return Expect(403 if actor in PARTICIPANTS else 404)

    return rule


def _new_work(rule: Rule, *, before_policy: bool = False) -> Rule:
    """A closed case takes no new work: 409 where the work would otherwise be done (or,
    ``before_policy``, to every participant: the state is checked before the permit)."""

    def closed_aware(actor: str, ctx: Ctx) -> Expect:
        expected = rule(actor, ctx)
        if ctx.state == "closed" and (
            expected.status == 201 or (before_policy and actor in PARTICIPANTS)
        ):
            return Expect(409)
        return expected

    return closed_aware


def _admin_only(ok: int) -> Rule:
    return lambda actor, ctx: Expect(ok if actor in ADMIN else 403)


def _auditor_only(ok: int) -> Rule:
    return lambda actor, ctx: Expect(ok if actor == "soc_auditor" else 403)


def _everyone(ok: int) -> Rule:
    return lambda actor, ctx: Expect(ok)


def _read(source: str, key: str) -> Rule:
    def rule(actor: str, ctx: Ctx) -> Expect:
        found = basis(actor, ctx.state, source)
        if found is None:
            return Expect(404)
        return Expect(200, basis=found, resource=ctx.ids[key])

    return rule


def _change(source: str, ok: int) -> Rule:
    """Only the recording/responsible agency changes it; 403 to whoever may see it."""

    def rule(actor: str, ctx: Ctx) -> Expect:
        if actor in PARTICIPANTS and agency_of(actor) == source:
            return Expect(ok)
        return Expect(403 if basis(actor, ctx.state, source) else 404)

    return rule


def _list(kind: str) -> Rule:
    def rule(actor: str, ctx: Ctx) -> Expect:
        if actor not in PARTICIPANTS:
            return Expect(404)
        visible = {
            ctx.ids[f"{source}_{kind}"]
            for source in ("soc", "pol")
            if basis(actor, ctx.state, source)
        }
        return Expect(200, items=visible)

    return rule


def _identity(status_outsider: int = 404) -> Rule:
    def rule(actor: str, ctx: Ctx) -> Expect:
        if actor not in PARTICIPANTS:
            return Expect(status_outsider)
        return Expect(200, identity=identity_basis(actor, ctx.state) is not None)

    return rule


def _search(kind: str) -> Rule:
    """A search by personnummer finds only what the caller may identify."""

    def rule(actor: str, ctx: Ctx) -> Expect:
        if identity_basis(actor, ctx.state) is None:
            return Expect(200, items=set())
        return Expect(200, items=_cases_of(actor, ctx) if kind == "case" else {ctx.ids[kind]})

    return rule


def _cases_of(actor: str, ctx: Ctx) -> set[str]:
    """The cases ``actor`` takes part in: the case; for SOC also the two other cases of the
    individual that SOC alone takes part in (one the case continues, one to link to)."""
    if actor not in PARTICIPANTS:
        return set()
    others = {ctx.ids["old_case"], ctx.ids["other_case"]} if actor in SOC_STAFF else set()
    return {ctx.ids["case"], *others}


def _cases_list(actor: str, ctx: Ctx) -> Expect:
    return Expect(200, items=_cases_of(actor, ctx))


def _consent_rule(ok: Callable[[Ctx], int], who: Callable[[str, Ctx], Expect]) -> Rule:
    """Consent routes of a state without a consent name a consent that does not exist."""

    def rule(actor: str, ctx: Ctx) -> Expect:
        if ctx.consent_id is None:
            return Expect(404)
        expected = who(actor, ctx)
        if expected.status in {200, 201}:
            return Expect(ok(ctx))
        return expected

    return rule


def _plan_for_other(actor: str, ctx: Ctx) -> Expect:
    """SOC plans an action POL is to carry out: only under a consent covering the plan."""
    if actor in SOC_STAFF:
        return Expect(201 if ctx.state == "active" else 403)
    if actor in POL_STAFF:
        return Expect(201)  # POL plans for POL: its own
    return Expect(404)


def _emergency(actor: str, ctx: Ctx) -> Expect:
    if actor in PARTICIPANTS and ctx.state == "closed":
        return Expect(409)
    if actor in POL_STAFF:
        return Expect(201)
    return Expect(422 if actor in SOC_STAFF else 404)  # the basis is open to the police only


def _grants(actor: str, ctx: Ctx) -> Expect:
    """A grant is seen by its own agency's staff and by the lead coordinator."""
    if actor not in PARTICIPANTS:
        return Expect(404)
    grant = ctx.ids.get("grant_made")
    sees = actor in POL_STAFF or actor == "soc_coordinator"
    return Expect(200, items={grant} if grant and sees else set())


def _end_grant(actor: str, ctx: Ctx) -> Expect:
    """The grantee or the lead coordinator ends a live grant; a colleague of the grantee
    sees it but may not; everyone else does not know it exists."""
    if "grant_made" not in ctx.ids or actor not in {"pol_caseworker", "pol_coordinator"} | {
        "soc_coordinator"
    }:
        return Expect(404)
    if actor == "pol_coordinator":
        return Expect(403)
    return Expect(409 if ctx.state == "expired_grant" else 204)


def _events(actor: str, ctx: Ctx) -> Expect:
    """The feed shows events about what the caller may read now, and nothing else: the
    case, its individual and consents to participants; entries and actions by the basis."""
    if actor in ADMIN or actor == "soc_auditor":
        return Expect(403)
    staff = actor in PARTICIPANTS
    return Expect(
        200,
        events_about={
            "case": _cases_of(actor, ctx) if staff else set(),
            "individual": {ctx.ids["individual"]} if staff else set(),
            "entry": {
                ctx.ids[f"{source}_entry"]
                for source in ("soc", "pol")
                if basis(actor, ctx.state, source)
            },
            # the threat assessment (none recorded: the lead agency's) by the same rule
            "threat_assessment": set(),
            **{
                kind: {
                    ctx.ids[f"{source}_{kind}"]
                    for source in ("soc", "pol")
                    if basis(actor, ctx.state, source)
                }
                for kind in ("action", "goal", "meeting")
            },
        },
    )


def _closed_refuses(rule: Rule) -> Rule:
    """A change of something on a closed case: 409 where it would otherwise succeed."""

    def closed_aware(actor: str, ctx: Ctx) -> Expect:
        expected = rule(actor, ctx)
        if ctx.state == "closed" and expected.status < 300:
            return Expect(409)
        return expected

    return closed_aware


def _lead_follows_up(actor: str, ctx: Ctx) -> Expect:
    """POL's goal: POL's staff, and the lead (SOC) coordinator if the goal is visible to
    them; SOC's caseworker sees it (or not) but may not change it."""
    if actor in POL_STAFF or (actor == "soc_coordinator" and basis(actor, ctx.state, "pol")):
        return Expect(200)
    return Expect(403 if basis(actor, ctx.state, "pol") else 404)


THREAT_RECORDERS = {"soc_coordinator", "pol_coordinator"}  # coordinators; kinds that may


def _threat(actor: str, ctx: Ctx) -> Expect:
    """A coordinator of a participating agency whose kind records threat assessments."""
    if actor in THREAT_RECORDERS:
        return Expect(409 if ctx.state == "closed" else 200)
    return Expect(403 if actor in PARTICIPANTS else 404)


def _versions(actor: str, ctx: Ctx) -> Expect:
    """The values changes replaced are identity data: 404 without the identity."""
    if actor not in PARTICIPANTS or identity_basis(actor, ctx.state) is None:
        return Expect(404)
    return Expect(200)


def _links(actor: str, ctx: Ctx) -> Expect:
    """Links to cases the caller also takes part in: SOC sees the one to the old case."""
    if actor not in PARTICIPANTS:
        return Expect(404)
    return Expect(200, items={ctx.ids["link"]} if actor in SOC_STAFF else set())


def _work(actor: str, ctx: Ctx) -> Expect:
    return Expect(403 if actor in ADMIN or actor == "soc_auditor" else 200)


def _meeting_body(actor: str, ctx: Ctx) -> dict[str, Any]:
    own = ctx.ids.get(agency_of(actor), ctx.ids["skola"])
    return {
        "held_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "kind": "follow_up",
        "individual_present": False,
        "attendees": [{"agency_id": own}],
        "minutes": "Uppföljning.",
        "decisions": [{"title": "Ringa", "responsible_agency_id": own}],
    }


def _goal_body(actor: str, ctx: Ctx) -> dict[str, Any]:
    return {
        "area": "education",
        "description": "Godkänt i matematik",
        "target_date": (datetime.now(UTC).date() + timedelta(days=90)).isoformat(),
    }


LAGESBILD_STAFF = PARTICIPANTS | {"skola_coordinator"}  # all in the same municipality
LAGESBILD_WRITERS = {"soc_coordinator", "pol_coordinator"}


def _lagesbild_reader(actor: str, ctx: Ctx) -> Expect:
    return Expect(200 if actor in LAGESBILD_STAFF else 403)


def _lagesbild_writer(ok: int, *, outsider: int) -> Rule:
    """Social services' and the police's coordinators; the municipality's other staff are
    told no (403); those who may not read it: ``outsider``."""

    def rule(actor: str, ctx: Ctx) -> Expect:
        if actor in LAGESBILD_WRITERS:
            return Expect(ok)
        return Expect(403 if actor in LAGESBILD_STAFF else outsider)

    return rule


WEBHOOK_MANAGERS = {"soc_coordinator", "pol_coordinator", "skola_coordinator", "soc_admin"}


def _webhooks(ok: int) -> Rule:
    """An agency's coordinators and administrators manage its own subscriptions."""
    return lambda actor, ctx: Expect(ok if actor in WEBHOOK_MANAGERS else 403)


def _soc_webhook(ok: int) -> Rule:
    """SOC's subscription: SOC's managers; other agencies' managers do not know of it."""

    def rule(actor: str, ctx: Ctx) -> Expect:
        if actor not in WEBHOOK_MANAGERS:
            return Expect(403)
        return Expect(ok if agency_of(actor) == "soc" else 404)

    return rule


def _consent_identity(actor: str, ctx: Ctx) -> Expect:
    """Every participant reads the consent's scope; the signatories' names only with the
    identity (DESIGN §3)."""
    if actor not in PARTICIPANTS:
        return Expect(404)
    return Expect(200, identity=identity_basis(actor, ctx.state) is not None)


def _document(actor: str, ctx: Ctx) -> Expect:
    """The signed form carries name and personnummer: 404 without the identity."""
    if actor not in PARTICIPANTS or identity_basis(actor, ctx.state) is None:
        return Expect(404)
    return Expect(200)


def _entry_body(actor: str, ctx: Ctx) -> dict[str, Any]:
    return {"category": "contact", "title": "Ny adress", "body": "Har flyttat till mormor."}


def _action_body(actor: str, ctx: Ctx) -> dict[str, Any]:
    own = {"soc": "soc", "pol": "pol"}.get(agency_of(actor), "skola")
    return {"type": "samtal", "title": "Samtal", "responsible_agency_id": ctx.ids[own]}


def _other_action_body(actor: str, ctx: Ctx) -> dict[str, Any]:
    return {"type": "samtal", "title": "Samtal", "responsible_agency_id": ctx.ids["pol"]}


def _user_body(actor: str, ctx: Ctx) -> dict[str, Any]:
    return {
        "username": f"ny.{uuid.uuid4().hex[:8]}",
        "display_name": "Ny Användare",
        "agency_id": ctx.ids["soc"],
        "roles": ["caseworker"],
        "password": "a long enough password",
    }


CONSENT_STATES = frozenset({"active", "withdrawn", "none", "superseded", "closed"})
ONCE = frozenset({"none"})
ONCE_AND_CLOSED = frozenset({"none", "closed"})

ROWS: list[Row] = [
    # --- individuals and cases: identity shown only under the rule ----------------------
    Row("GET", "/individuals/{individual}", _identity()),
    Row("GET", "/individuals?personal_number=" + CHILD_NUMBER, _search("individual")),
    Row(
        "POST",
        "/individuals",
        lambda a, c: Expect(201 if a.endswith("_coordinator") else 403),  # for their agency
        body=lambda a, c: {
            "given_name": "Alex",
            "family_name": "Testsson",
            "birth_date": "2011-01-01",
            "protected_identity": False,
            "guardians": [],
        },
        states=ONCE,
    ),
    Row("GET", "/cases", _cases_list),
    Row("GET", "/cases?personal_number=" + CHILD_NUMBER, _search("case")),
    Row("GET", "/cases/{case}", _identity()),
    Row(
        "POST",
        "/cases",
        lambda a, c: Expect(201 if a == "soc_coordinator" else 403 if a in PARTICIPANTS else 404),
        body=lambda a, c: {"individual_id": c.ids["individual"], "programme": "sspf"},
        states=ONCE,
    ),
    Row("PATCH", "/cases/{case}", _lead_coordinator(200), body=lambda a, c: {"status": "active"}),
    Row("GET", "/cases/{case}/participants", _staff_or(200), states=ONCE),
    Row(
        "POST",
        "/cases/{case}/participants",
        _new_work(_lead_coordinator(201)),
        body=lambda a, c: {"agency_id": c.ids["skola"]},
        states=ONCE_AND_CLOSED,
    ),
    Row("DELETE", "/cases/{case}/participants/{pol}", _lead_coordinator(204), states=ONCE),
    # --- consents ------------------------------------------------------------------------
    Row("GET", "/cases/{case}/consents", _consent_identity, states=CONSENT_STATES),
    Row(
        "POST",
        "/cases/{case}/consents",
        _new_work(_lead_coordinator(201)),
        body=lambda a, c: consent_body(c.scenario, c.world),
        states=CONSENT_STATES,
    ),
    Row(
        "GET",
        "/consents/{consent}",
        _consent_rule(lambda c: 200, _consent_identity),
        states=CONSENT_STATES,
    ),
    Row(
        "GET",
        "/consents/{consent}/document",
        _consent_rule(lambda c: 200, _document),
        states=CONSENT_STATES,
    ),
    Row(
        "PUT",
        "/consents/{consent}/document",
        _consent_rule(lambda c: 409, _lead_coordinator(200)),  # stored once, at set-up
        states=CONSENT_STATES,
    ),
    Row(
        "POST",
        "/consents/{consent}/withdrawal",
        _consent_rule(lambda c: 409 if c.state == "withdrawn" else 200, _lead_coordinator(200)),
        body=lambda a, c: {"reason": "Återkallat"},
        states=CONSENT_STATES,
    ),
    # --- entries -------------------------------------------------------------------------
    Row(
        "POST",
        "/cases/{case}/entries",
        _new_work(_staff_or(201)),
        body=_entry_body,
        states=ONCE_AND_CLOSED,
    ),
    Row("GET", "/cases/{case}/entries", _list("entry")),
    Row("GET", "/entries/{soc_entry}", _read("soc", "soc_entry")),
    Row("GET", "/entries/{pol_entry}", _read("pol", "pol_entry")),
    Row(
        "POST",
        "/entries/{soc_entry}/corrections",
        _change("soc", 201),
        body=lambda a, c: {"body": "Rättad text.", "reason": "Fel datum"},
    ),
    # --- actions -------------------------------------------------------------------------
    Row(
        "POST",
        "/cases/{case}/actions",
        _new_work(_staff_or(201)),
        body=_action_body,
        states=ONCE_AND_CLOSED,
    ),
    Row(
        "POST",
        "/cases/{case}/actions",
        _new_work(_plan_for_other, before_policy=True),
        body=_other_action_body,
    ),
    Row("GET", "/cases/{case}/actions", _list("action")),
    Row("GET", "/actions/{soc_action}", _read("soc", "soc_action")),
    Row("GET", "/actions/{pol_action}", _read("pol", "pol_action")),
    Row(
        "PATCH",
        "/actions/{soc_action}",
        _change("soc", 200),
        body=lambda a, c: {"status": "in_progress"},
    ),
    # --- casework: corrections, goals, meetings, links, threat, the work list ---------------
    Row(
        "PATCH",
        "/individuals/{individual}",
        _lead_coordinator(200),  # the registering agency's coordinator
        body=lambda a, c: {"given_name": "Kimmie"},
        states=ONCE,
    ),
    Row("GET", "/individuals/{individual}/versions", _versions),
    Row(
        "POST",
        "/individuals/{individual}/guardians",
        _lead_coordinator(201),
        body=lambda a, c: {"given_name": "Moster", "family_name": "Testsson", "has_custody": False},
        states=ONCE,
    ),
    Row(
        "PATCH",
        "/guardians/{guardian}",
        _lead_coordinator(200),
        body=lambda a, c: {"contact": "070-111 22 33"},
        states=ONCE,
    ),
    Row(
        "PATCH",
        "/cases/{case}",
        _threat,
        body=lambda a, c: {
            "threat_level": "elevated",
            "threat_reviewed_on": datetime.now(UTC).date().isoformat(),
        },
        states=ONCE_AND_CLOSED,
    ),
    Row(
        "POST",
        "/cases/{case}/goals",
        _new_work(_staff_or(201)),
        body=_goal_body,
        states=ONCE_AND_CLOSED,
    ),
    Row("GET", "/cases/{case}/goals", _list("goal")),
    Row("GET", "/goals/{soc_goal}", _read("soc", "soc_goal")),
    Row("GET", "/goals/{pol_goal}", _read("pol", "pol_goal")),
    Row(
        "PATCH",
        "/goals/{soc_goal}",
        _closed_refuses(_change("soc", 200)),
        body=lambda a, c: {"note": "Uppföljt"},
    ),
    Row(
        "PATCH",
        "/goals/{pol_goal}",
        _closed_refuses(_lead_follows_up),
        body=lambda a, c: {"note": "Uppföljt"},
    ),
    Row(
        "POST",
        "/cases/{case}/meetings",
        _new_work(_staff_or(201)),
        body=_meeting_body,
        states=ONCE_AND_CLOSED,
    ),
    Row("GET", "/cases/{case}/meetings", _list("meeting")),
    Row("GET", "/meetings/{soc_meeting}", _read("soc", "soc_meeting")),
    Row("GET", "/meetings/{pol_meeting}", _read("pol", "pol_meeting")),
    Row(
        "POST",
        "/cases/{case}/links",
        _new_work(_lead_coordinator(201)),
        body=lambda a, c: {"case_id": c.ids["other_case"], "kind": "related"},
        states=ONCE_AND_CLOSED,
    ),
    Row("GET", "/cases/{case}/links", _links),
    Row("GET", "/me/work", _work, states=ONCE),
    # --- emergency access ----------------------------------------------------------------
    Row(
        "POST",
        "/cases/{case}/emergency-access",
        _emergency,
        body=lambda a, c: {"legal_basis": LEGAL_BASIS, "reason": "Akut hot mot den unge"},
        states=ONCE_AND_CLOSED,
    ),
    Row("GET", "/cases/{case}/emergency-access", _grants),
    Row("DELETE", "/emergency-access/{grant}", _end_grant),
    # --- the event feed and webhooks --------------------------------------------------------
    Row("GET", "/events?limit=200", _events),
    Row("GET", "/webhooks", _webhooks(200), audit="admin", states=ONCE),
    Row(
        "POST",
        "/webhooks",
        _webhooks(201),
        body=lambda a, c: {"url": "http://127.0.0.1:9/hook", "types": ["case.opened"]},
        audit="admin",
        states=ONCE,
    ),
    Row("GET", "/webhooks/{webhook}", _soc_webhook(200), audit="admin", states=ONCE),
    Row("DELETE", "/webhooks/{webhook}", _soc_webhook(204), audit="admin", states=ONCE),
    Row("GET", "/webhooks/{webhook}/deliveries", _soc_webhook(200), audit="admin", states=ONCE),
    Row(
        "POST",
        "/webhooks/{webhook}/deliveries/{delivery}/retry",
        _soc_webhook(200),
        audit="admin",
        states=ONCE,
    ),
    # --- accounts: administrators only; no personal data of individuals --------------------
    Row("GET", "/auth/me", _everyone(200), audit="none", states=ONCE),
    Row("GET", "/agencies", _everyone(200), audit="none", states=ONCE),
    Row("GET", "/agencies/{soc}", _everyone(200), audit="none", states=ONCE),
    Row(
        "POST",
        "/agencies",
        _admin_only(201),
        body=lambda a, c: {
            "name": "Fritidsgården",
            "kind": "fritid",
            "organisation_number": "212000-0142",
            "municipality": "Stockholm",
        },
        audit="admin",
        states=ONCE,
    ),
    Row(
        "PATCH",
        "/agencies/{skola}",
        _admin_only(200),
        body=lambda a, c: {"municipality": "Solna"},
        audit="admin",
        states=ONCE,
    ),
    Row("GET", "/users", _admin_only(200), audit="admin", states=ONCE),
    Row("GET", "/users/{soc_user}", _admin_only(200), audit="admin", states=ONCE),
    Row("POST", "/users", _admin_only(201), body=_user_body, audit="admin", states=ONCE),
    Row(
        "PATCH",
        "/users/{soc_user}",
        _admin_only(200),
        body=lambda a, c: {"display_name": "Nytt Namn"},
        audit="admin",
        states=ONCE,
    ),
    Row("GET", "/clients", _admin_only(200), audit="admin", states=ONCE),
    Row("GET", "/clients/{client}", _admin_only(200), audit="admin", states=ONCE),
    Row(
        "POST",
        "/clients",
        _admin_only(201),
        body=lambda a, c: {"name": "Treserva", "agency_id": c.ids["soc"], "scopes": []},
        audit="admin",
        states=ONCE,
    ),
    Row("DELETE", "/clients/{client}", _admin_only(204), audit="admin", states=ONCE),
    # --- the auditors' API: auditors only ---------------------------------------------------
    Row("GET", "/audit/events", _auditor_only(200), audit="admin", states=ONCE),
    Row("GET", "/audit/events/{audit_seq}", _auditor_only(200), audit="admin", states=ONCE),
    Row(
        "POST",
        "/audit/events/{audit_seq}/review",
        _auditor_only(201),
        body=lambda a, c: {"note": "Granskad, i sin ordning."},
        audit="admin",
        states=ONCE,
    ),
    Row("GET", "/audit/verify", _auditor_only(200), audit="admin", states=ONCE),
    Row("GET", "/audit/checkpoints", _auditor_only(200), audit="admin", states=ONCE),
    Row("POST", "/audit/checkpoints", _auditor_only(201), audit="admin", states=ONCE),
    Row("GET", "/audit/export", _auditor_only(200), audit="admin", states=ONCE),
    Row(
        "GET",
        "/audit/subjects?personal_number=" + CHILD_NUMBER,
        _auditor_only(200),
        audit="admin",
        states=ONCE,
    ),
    Row(
        "GET",
        "/individuals/{individual}/access-log",
        _auditor_only(200),
        audit="admin",
        states=ONCE,
    ),
    # --- the lägesbild: no personal data; the municipality's staff read, its social services'
    # and police coordinators write -------------------------------------------------------
    Row(
        "POST",
        "/areas",
        _lagesbild_writer(201, outsider=403),
        body=lambda a, c: {"name": "Blackeberg"},
        audit="admin",
        states=ONCE,
    ),
    Row("GET", "/areas", _lagesbild_reader, audit="admin", states=ONCE),
    Row(
        "PUT",
        "/lagesbild/{year}/{week}/{area}",
        _lagesbild_writer(200, outsider=404),
        body=lambda a, c: {"level": 3, "critical_events": ["arson"]},
        audit="admin",
        states=ONCE,
    ),
    Row("GET", "/lagesbild/{year}?format=svg", _lagesbild_reader, audit="admin", states=ONCE),
    Row(
        "POST",
        "/lagesbild/{year}/import",
        _lagesbild_writer(200, outsider=403),
        csv="Vecka,Råcksta\n10,2\n11,4\n",
        audit="admin",
        states=ONCE,
    ),
    # --- follow-up statistics: coordinators and auditors; counts only, small ones hidden ---
    Row(
        "GET",
        "/statistics?group_by=sex",
        lambda a, c: Expect(200 if a.endswith("_coordinator") or a == "soc_auditor" else 403),
        audit="admin",
        states=ONCE,
    ),
    # --- legal holds: a coordinator in the case asks, an auditor who did not ask decides ---
    Row(
        "POST",
        "/legal-holds",
        lambda a, c: Expect(
            201
            if a in {"soc_coordinator", "pol_coordinator"}
            else 403
            if a in PARTICIPANTS
            else 404
        ),
        body=lambda a, c: {"case_id": c.ids["case"], "reason": "Förundersökning pågår"},
        states=ONCE,
    ),
    Row("GET", "/legal-holds", _everyone(200), audit="admin", states=ONCE),
    Row(
        "GET",
        "/legal-holds/{hold}",
        lambda a, c: Expect(200 if a in {"soc_coordinator", "soc_auditor"} else 404),
        states=ONCE,
    ),
    Row(
        "POST",
        "/legal-holds/{active_hold}/lift",
        lambda a, c: Expect(200 if a == "soc_coordinator" else 404),
        body=lambda a, c: {"reason": "Klart"},
        states=ONCE,
    ),
    *(
        Row(
            "POST",
            f"/legal-holds/{{hold}}/{decision}",
            lambda a, c: Expect(
                200 if a == "soc_auditor" else 403 if a == "soc_coordinator" else 404
            ),
            body=lambda a, c: {"note": "Beslutat"},
            states=ONCE,
        )
        for decision in ("approve", "reject")
    ),
    # --- reference data ------------------------------------------------------------------
    Row("GET", "/categories", _everyone(200), audit="none", states=ONCE),
    Row("GET", "/legal-bases", _everyone(200), audit="none", states=ONCE),
    Row("GET", "/labels?lang=sv", _everyone(200), audit="none", states=ONCE),
]


def _template_route(row: Row) -> tuple[str, str]:
    path = row.template.split("?")[0]
    names = {
        "individual": "individual_id",
        "case": "case_id",
        "consent": "consent_id",
        "soc_entry": "entry_id",
        "pol_entry": "entry_id",
        "soc_action": "action_id",
        "pol_action": "action_id",
        "soc_goal": "goal_id",
        "pol_goal": "goal_id",
        "soc_meeting": "meeting_id",
        "pol_meeting": "meeting_id",
        "guardian": "guardian_id",
        "area": "area_id",
        "year": "year",
        "week": "week",
        "pol": "agency_id",
        "soc": "agency_id",
        "skola": "agency_id",
        "soc_user": "user_id",
        "client": "client_id",
        "audit_seq": "seq",
        "grant": "grant_id",
        "webhook": "webhook_id",
        "delivery": "delivery_id",
        "hold": "hold_id",
        "active_hold": "hold_id",
    }
    return row.method, API + re.sub(r"\{(\w+)\}", lambda m: "{" + names[m.group(1)] + "}", path)


def test_every_route_has_a_row() -> None:
    """Public routes (token, revoke, health, metrics, docs) take no actor: tests/test_auth.py
    and tests/test_routes.py cover them. Every other route needs a row here."""
    covered = {_template_route(row) for row in ROWS}
    missing = [f"{m} {p}" for m, p in ROUTES if (m, p) not in PUBLIC and (m, p) not in covered]
    assert missing == [], "routes without a row in the authorization matrix"
    stale = covered - set(ROUTES)
    assert stale == set(), "rows for routes the app does not have"


async def _build(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
    state: str,
) -> Ctx:
    ctx = Ctx(world=world, scenario=scenario, state=state)
    ctx.ids.update(
        individual=scenario.individual["id"],
        case=scenario.case["id"],
        soc=str(world.soc.id),
        pol=str(world.pol.id),
        skola=str(world.skola.id),
        soc_user=str(world.soc_caseworker.id),
        audit_seq="1",
    )
    case = scenario.case["id"]

    async def made(user: Any, method: str, path: str, **kw: Any) -> dict[str, Any]:
        response = await call(client, app, user, method, path, **kw)
        assert response.status_code in {200, 201}, response.text
        return dict(response.json())

    # two legal holds on the case: one asked for (to decide), one approved (to lift)
    for key in ("hold", "active_hold"):
        ctx.ids[key] = (
            await made(
                world.soc_coordinator,
                "POST",
                "/legal-holds",
                json={"case_id": case, "reason": "Tvist om vårdnaden"},
            )
        )["id"]
    await made(world.soc_auditor, "POST", f"/legal-holds/{ctx.ids['active_hold']}/approve", json={})
    entry = {"title": "Anteckning", "body": "Text."}
    ctx.ids["soc_entry"] = (
        await made(
            world.soc_caseworker,
            "POST",
            f"/cases/{case}/entries",
            json=entry | {"category": "social_services"},
        )
    )["id"]
    ctx.ids["pol_entry"] = (
        await made(
            world.pol_caseworker,
            "POST",
            f"/cases/{case}/entries",
            json=entry | {"category": "police"},
        )
    )["id"]
    for source, user, agency in (
        ("soc", world.soc_caseworker, world.soc),
        ("pol", world.pol_caseworker, world.pol),
    ):
        ctx.ids[f"{source}_action"] = (
            await made(
                user,
                "POST",
                f"/cases/{case}/actions",
                json={"type": "samtal", "title": "Samtal", "responsible_agency_id": str(agency.id)},
            )
        )["id"]
    for source, user in (("soc", world.soc_caseworker), ("pol", world.pol_caseworker)):
        ctx.ids[f"{source}_goal"] = (
            await made(user, "POST", f"/cases/{case}/goals", json=_goal_body("", ctx))
        )["id"]
        ctx.ids[f"{source}_meeting"] = (
            await made(
                user,
                "POST",
                f"/cases/{case}/meetings",
                json=_meeting_body(source, ctx) | {"decisions": []},
            )
        )["id"]
    ctx.ids["guardian"] = scenario.individual["guardians"][0]["id"]
    ctx.ids |= {"year": "2026", "week": "10"}
    ctx.ids["area"] = (
        await made(world.soc_coordinator, "POST", "/areas", json={"name": "Råcksta"})
    )["id"]
    # two more cases of the individual that SOC alone takes part in: the case continues the
    # old one; the other is there to be linked to
    for name, programme in (("old_case", "trefas"), ("other_case", "sspf")):
        ctx.ids[name] = (
            await made(
                world.soc_coordinator,
                "POST",
                "/cases",
                json={"individual_id": scenario.individual["id"], "programme": programme},
            )
        )["id"]
    ctx.ids["link"] = (
        await made(
            world.soc_coordinator,
            "POST",
            f"/cases/{case}/links",
            json={"case_id": ctx.ids["old_case"], "kind": "continues"},
        )
    )["id"]
    ctx.ids["client"] = (
        await made(
            world.soc_admin,
            "POST",
            "/clients",
            json={"name": "Lifecare", "agency_id": str(world.soc.id), "scopes": []},
        )
    )["id"]

    hook = await made(
        world.soc_coordinator,
        "POST",
        "/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "types": ["entry.recorded"]},
    )
    ctx.ids["webhook"] = hook["id"]
    delivery = WebhookDelivery(  # one that failed, to be retried
        id=uuid.uuid4(),
        subscription_id=uuid.UUID(hook["id"]),
        event_seq=1,
        event_id=uuid.uuid4(),
        event_type="entry.recorded",
        status="failed",
        attempts=3,
        next_attempt_at=datetime.now(UTC),
        created_at=datetime.now(UTC),
    )
    session.add(delivery)
    await session.flush()
    ctx.ids["delivery"] = str(delivery.id)

    now = datetime.now(UTC)
    if state in WITH_CONSENT:
        overrides: dict[str, Any] = {"categories": CONSENT_CATEGORIES}
        if state == "pending":
            overrides["valid_from"] = (now + timedelta(days=1)).isoformat()
        elif state == "expired":
            overrides["valid_from"] = (now - timedelta(days=30)).isoformat()
            overrides["valid_until"] = (now - timedelta(seconds=1)).isoformat()
        elif state == "wrong_agency":
            overrides["agency_ids"] = [str(world.soc.id), str(world.skola.id)]
        elif state == "wrong_category":
            overrides["categories"] = ["contact"]
        registered = await register_consent(client, app, world, scenario, **overrides)
        assert registered.status_code == 201, registered.text
        ctx.consent_id = registered.json()["id"]
        await made(
            world.soc_coordinator, "PUT", f"/consents/{ctx.consent_id}/document", content=PDF
        )
        if state == "withdrawn":
            await made(
                world.soc_coordinator,
                "POST",
                f"/consents/{ctx.consent_id}/withdrawal",
                json={"reason": "Återkallat"},
            )
        if state == "superseded":
            await made(
                world.soc_coordinator,
                "POST",
                f"/cases/{case}/consents",
                json=consent_body(
                    scenario,
                    world,
                    categories=["contact"],
                    supersedes_id=ctx.consent_id,
                    valid_from=(now - timedelta(minutes=5)).isoformat(),
                ),
            )
    ctx.ids["consent"] = ctx.consent_id or str(uuid.uuid4())
    ctx.ids["grant"] = str(uuid.uuid4())
    if state in {"emergency_grant", "closed"}:
        ctx.ids["grant"] = ctx.ids["grant_made"] = (
            await made(
                world.pol_caseworker,
                "POST",
                f"/cases/{case}/emergency-access",
                json={"legal_basis": LEGAL_BASIS, "reason": "Akut hot mot den unge"},
            )
        )["id"]
    if state == "closed":
        await made(
            world.soc_coordinator,
            "PATCH",
            f"/cases/{case}",
            json={"status": "closed", "closure_reason": "completed"},
        )
    if state == "expired_grant":
        grant = EmergencyGrant(
            id=uuid.uuid4(),
            case_id=uuid.UUID(case),
            user_id=world.pol_caseworker.id,
            agency_id=world.pol.id,
            legal_basis=LEGAL_BASIS,
            reason="Akut hot mot den unge",
            created_at=now - timedelta(days=2),
            expires_at=now - timedelta(days=1),
        )
        session.add(grant)
        await session.flush()
        session.add_all(
            EmergencyGrantCategory(grant_id=grant.id, category=c)
            for c in ("identity", "contact", "social_services", "plan")
        )
        await session.flush()
        ctx.ids["grant"] = ctx.ids["grant_made"] = str(grant.id)
    return ctx


def _check(
    row: Row, actor: str, ctx: Ctx, response: httpx.Response, events: list[AuditEvent]
) -> list[str]:
    """What is wrong with one call, as lines of the report (none if all is right)."""
    expected = row.rule(actor, ctx)
    problems: list[str] = []
    if response.status_code != expected.status:
        return [f"status {response.status_code}, expected {expected.status}"]
    media = response.headers.get("content-type", "").split(";")[0]
    json_body = media in {"application/json", "application/problem+json"}
    body: Any = response.json() if json_body else None
    if expected.items is not None:
        items = body if isinstance(body, list) else body["items"]
        got = {i["id"] for i in items}
        if got != expected.items:
            problems.append(f"items {sorted(got)}, expected {sorted(expected.items)}")
    if expected.events_about is not None:
        for kind, ids in expected.events_about.items():
            named = {e["resource_id"] for e in body["items"] if e["resource_type"] == kind}
            if named != ids:
                problems.append(f"events about {kind} {sorted(named)}, expected {sorted(ids)}")
    if expected.identity is not None:
        shown = body["items"] if "items" in body else [body.get("individual", body)]
        for item in shown:
            if item["identity_visible"] is not expected.identity:
                problems.append(f"identity_visible {item['identity_visible']}")
        if not expected.identity and (
            CHILD_NUMBER in response.text or GUARDIAN_NAME in response.text
        ):
            problems.append("the personnummer or a guardian's name leaked")
    if row.audit == "none":
        return problems
    user = getattr(ctx.world, actor)
    if any(e.actor_user_id != user.id for e in events):
        problems.append("an audit record names another actor")
    decisions = {e.decision for e in events}
    if expected.status < 400:
        if "permit" not in decisions or "deny" in decisions:
            problems.append(f"audit decisions {sorted(decisions)} for a success")
    elif expected.status in {403, 404}:
        denials = [e for e in events if e.decision == "deny"]
        if not denials:
            problems.append("no deny record")
        names_case = re.search(
            r"\{(case|consent|\w+_entry|\w+_action|\w+_goal|\w+_meeting)\}", row.template
        )
        for event in denials:
            if row.audit != "personal" or event.policy_id == "not-found":
                continue
            if names_case and str(event.case_id) != ctx.ids["case"]:
                problems.append("the deny record does not name the case")
            if (names_case or "{individual}" in row.template) and str(
                event.individual_id
            ) != ctx.ids["individual"]:
                problems.append("the deny record does not name the individual")
    if expected.basis is not None:
        reads = [e for e in events if e.resource_id == expected.resource and e.decision == "permit"]
        if not reads:
            problems.append("no read record for the item")
        for event in reads:
            if event.basis != expected.basis:
                problems.append(f"basis {event.basis}, expected {expected.basis}")
            if expected.basis == "consent" and str(event.consent_id) != ctx.consent_id:
                problems.append("the read record does not name the consent")
            if expected.basis == "emergency_access" and (
                event.legal_basis != LEGAL_BASIS or "emergency_access" not in event.flags
            ):
                problems.append("the read record does not name and flag the legal basis")
    return problems


@pytest.mark.parametrize("state", STATES)
async def test_authorization_matrix(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
    connection: AsyncConnection,
    state: str,
) -> None:
    ctx = await _build(client, app, world, scenario, session, state)
    report: list[str] = []
    calls = 0
    for row in ROWS:
        if state not in row.states:
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: ctx.ids[m.group(1)], row.template)
        for actor in ACTORS:
            kwargs: dict[str, Any] = {}
            if row.body is not None:
                kwargs["json"] = row.body(actor, ctx)
            elif row.csv is not None:
                kwargs |= {"content": row.csv.encode(), "headers": {"Content-Type": "text/csv"}}
            elif row.method == "PUT":
                kwargs["content"] = PDF
            savepoint = await connection.begin_nested()
            try:
                before = await audit_head(connection)
                response = await call(
                    client, app, getattr(ctx.world, actor), row.method, path, **kwargs
                )
                events = await audit_events_after(connection, before)
            finally:
                await savepoint.rollback()
            calls += 1
            report += [
                f"{row.method} {row.template} as {actor}: {problem}"
                for problem in _check(row, actor, ctx, response, events)
            ]
    assert calls > 0
    assert report == [], "\n".join(report)
