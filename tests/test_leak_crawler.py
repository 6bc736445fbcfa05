"""The leak crawler: every GET route of the app, as every kind of actor, over a world where
every personal field holds a canary — and each canary may appear only where app/policy says
that actor may see it.

The world (built through the API, as users build it): agencies of every kind; an adult, a
minor with two guardians and a person with protected identity, all registered by social
services (SOC), the adult registered by the police (POL) too; consents in every state
(active, pending, expired, withdrawn, superseded, partial, naming another agency) with their
signed forms; entries with corrections, actions with outcomes, from every participating
agency; a live and an expired emergency grant; and a closed case that had a consent and a
grant. Every name, personnummer, signatory, purpose, title, body, correction, description,
outcome, reason and document holds a unique canary.

The routes are enumerated from the app, so a new GET route is crawled without anyone adding
it; a path or query parameter the crawler cannot fill fails the test. Each canary has an
owner and a question to the decision point (identity of an individual, reading an entry or an
action, the consent's case, an emergency grant): the oracle asks app/policy, not a copy of its
rules. A canary (for a personnummer, any of its spellings or the birth date in it) found in a
response the oracle does not allow, in any error body, in any header, or in any log line, is a
leak; every leak is listed. The crawler also checks it saw every canary somewhere and every
route answer 200 somewhere, so that it cannot pass by being refused everywhere.
"""

from __future__ import annotations

import enum
import inspect
import itertools
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from stdnum import luhn

import app.logging as app_logging
from app.actions import service as action_service
from app.agencies.models import AgencyKind
from app.audit.models import AuditEvent
from app.audit.records import Origin
from app.auth import service as auth_service
from app.auth.actor import Actor, ActorKind
from app.cases import service as case_service
from app.cases.models import Case
from app.clients.models import Scope
from app.emergency.models import EmergencyGrant, EmergencyGrantCategory
from app.entries import service as entry_service
from app.goals import service as goal_service
from app.holds import service as hold_service
from app.holds.models import LegalHold
from app.individuals import service as individual_service
from app.individuals.models import Individual
from app.meetings import service as meeting_service
from app.policy import enforce
from app.policy.engine import Action
from app.policy.entities import AccountFacts, GrantFacts
from app.policy.grounds import grounds_for
from app.users.models import Role, User
from tests.conftest import client_for
from tests.factories import access_token_for, make_agency, make_user
from tests.scenarios import World

API = "/api/v1"


def _canary(kind: str) -> str:
    """A unique word, safe as a name: letters only, unlike anything else in a response."""
    return f"Kanarie{kind}{''.join(secrets.choice('bcdfghjklmnpqrstvwxz') for _ in range(8))}"


def _number(year: int) -> str:
    """A valid, random personnummer of someone born in ``year`` (12 digits)."""
    born = date(year, 1, 1) + timedelta(days=secrets.randbelow(360))
    base = f"{born:%y%m%d}{secrets.randbelow(900) + 100:03d}"
    return f"{born:%Y}"[:2] + base + luhn.calc_check_digit(base)


def spellings(number: str) -> set[str]:
    """A 12-digit number as it may be written, and the birth date in it."""
    short = number[2:]
    return {
        number,
        f"{number[:8]}-{number[8:]}",
        short,
        f"{short[:6]}-{short[6:]}",
        f"{number[:4]}-{number[4:6]}-{number[6:8]}",
    }


# What governs a canary: the question the oracle asks app/policy.
# (kind, id): identity | entry | action | goal | meeting | threat | consent_case |
# case_staff | accounts | grant | auditors | hold
Question = tuple[str, uuid.UUID]


@dataclass
class Canary:
    field: str
    words: set[str]
    owners: list[Question]  # any one allowing it is enough (a person registered twice)


@dataclass
class CrawlWorld:
    canaries: list[Canary] = field(default_factory=list)
    pools: dict[str, list[str]] = field(default_factory=dict)
    numbers: list[str] = field(default_factory=list)
    documents: dict[uuid.UUID, bytes] = field(default_factory=dict)

    def add(self, name: str, value: str | set[str], *owners: Question) -> str:
        words = value if isinstance(value, set) else {value}
        for known in self.canaries:
            if known.words == words:  # one person registered by two agencies
                known.owners += owners
                break
        else:
            self.canaries.append(Canary(name, words, list(owners)))
        return next(iter(words)) if isinstance(value, str) else ""

    def pool(self, name: str, value: Any) -> None:
        self.pools.setdefault(name, []).append(str(value))


class Builder:
    """Calls the API as a given user and fails on anything but success."""

    def __init__(self, client: httpx.AsyncClient, app: FastAPI) -> None:
        self.client, self.app = client, app

    async def __call__(self, user: User, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {access_token_for(self.app, f'user:{user.id}')}"}
        response = await self.client.request(method, API + path, headers=headers, **kw)
        assert response.status_code in {200, 201, 204}, f"{method} {path}: {response.text}"
        return response.json() if response.content else None


@dataclass
class Cast:
    world: World
    krim: Any
    fritid: Any
    krim_caseworker: User
    fritid_coordinator: User
    client_id: uuid.UUID
    named_officer: User


async def _cast(session: AsyncSession, world: World, api: Builder) -> Cast:
    krim = await make_agency(session, name="Kriminalvården", kind=AgencyKind.KRIMINALVARD.value)
    fritid = await make_agency(session, name="Fritidsgården", kind=AgencyKind.FRITID.value)
    await make_agency(session, name="Övrig", kind=AgencyKind.OTHER.value)
    client = await api(
        world.soc_admin,
        "POST",
        "/clients",
        json={
            "name": "Verksamhetssystem",
            "agency_id": str(world.soc.id),
            "scopes": [scope.value for scope in Scope],  # it reads all a caseworker may
        },
    )
    return Cast(
        world=world,
        krim=krim,
        fritid=fritid,
        krim_caseworker=await make_user(session, roles={Role.CASEWORKER}, agency=krim),
        fritid_coordinator=await make_user(session, roles={Role.COORDINATOR}, agency=fritid),
        client_id=uuid.UUID(client["id"]),
        named_officer=await make_user(session, roles={Role.CASEWORKER}, agency=world.pol),
    )


def _pdf(*words: str) -> bytes:
    text = " ".join(words)
    return f"%PDF-1.7\n1 0 obj << /Title ({text}) >> endobj\ntrailer <<>>\n%%EOF\n".encode()


async def _build(session: AsyncSession, api: Builder, cast: Cast) -> CrawlWorld:
    w = cast.world
    crawl = CrawlWorld()
    now = datetime.now(UTC)

    async def individual(
        by: User, year: int, *, protected: bool = False, guardians: int = 0, number: str = ""
    ) -> tuple[str, str, list[dict[str, Any]], tuple[str, str]]:
        number = number or _number(year)
        given, family = _canary("Fornamn"), _canary("Efternamn")
        body = {
            "personal_number": number,
            "given_name": given,
            "family_name": family,
            "protected_identity": protected,
            "guardians": [
                {
                    "given_name": _canary("Vardnadshavare"),
                    "family_name": _canary("Vhefternamn"),
                    "personal_number": _number(1978),
                    "has_custody": True,
                    "contact": _canary("Kontakt"),
                }
                for _ in range(guardians)
            ],
        }
        reference = _canary("Extid")
        body["external_refs"] = [{"system": "treserva", "id": reference}]
        made = await api(by, "POST", "/individuals", json=body)
        owner = ("identity", uuid.UUID(made["id"]))
        crawl.add("individual.external_refs", reference, owner)
        crawl.pool("external_ref", f"treserva:{reference}")
        crawl.add("individual.given_name", given, owner)
        crawl.add("individual.family_name", family, owner)
        crawl.add("individual.personal_number", spellings(number), owner)
        for sent in body["guardians"]:
            crawl.add("guardian.given_name", sent["given_name"], owner)
            crawl.add("guardian.family_name", sent["family_name"], owner)
            crawl.add("guardian.personal_number", spellings(sent["personal_number"]), owner)
            crawl.add("guardian.contact", sent["contact"], owner)
        crawl.pool("individual_id", made["id"])
        crawl.numbers.append(number)
        return made["id"], number, made["guardians"], (given, family)

    async def case(individual_id: str, programme: str, *agencies: Any) -> str:
        reference = _canary("Arende")
        made = await api(
            w.soc_coordinator,
            "POST",
            "/cases",
            json={
                "individual_id": individual_id,
                "programme": programme,
                "external_refs": [{"system": "lifecare", "id": reference}],
            },
        )
        crawl.add("case.external_refs", reference, ("identity", uuid.UUID(individual_id)))
        crawl.pool("external_ref", f"lifecare:{reference}")
        for agency in agencies:
            await api(
                w.soc_coordinator,
                "POST",
                f"/cases/{made['id']}/participants",
                json={"agency_id": str(agency.id)},
            )
        crawl.pool("case_id", made["id"])
        return str(made["id"])

    async def consent(
        case_id: str,
        individual_id: str,
        signatories: list[dict[str, Any]],
        agencies: list[Any],
        categories: list[str],
        *,
        document: bytes | None = None,
        **overrides: Any,
    ) -> str:
        signed = (now - timedelta(days=2)).isoformat()
        names = [_canary("Signatar") for _ in signatories]
        purpose = _canary("Syfte")
        body = {
            "signatories": [
                s | {"name": name, "signed_at": signed}
                for s, name in zip(signatories, names, strict=True)
            ],
            "agency_ids": [str(a.id) for a in agencies],
            "categories": categories,
            "purpose": purpose,
            "valid_from": (now - timedelta(days=1)).isoformat(),
            "valid_until": (now + timedelta(days=90)).isoformat(),
            "method": "paper",
        } | overrides
        made = await api(w.soc_coordinator, "POST", f"/cases/{case_id}/consents", json=body)
        owner = ("identity", uuid.UUID(individual_id))
        for name in names:
            crawl.add("consent.signatory.name", name, owner)
        crawl.add("consent.purpose", purpose, ("consent_case", uuid.UUID(case_id)))
        if document is not None:
            await api(
                w.soc_coordinator, "PUT", f"/consents/{made['id']}/document", content=document
            )
        crawl.pool("consent_id", made["id"])
        return str(made["id"])

    async def entry(by: User, case_id: str, category: str, *, correct: bool = False) -> str:
        title, body = _canary("Rubrik"), _canary("Anteckning")
        made = await api(
            by,
            "POST",
            f"/cases/{case_id}/entries",
            json={"category": category, "title": title, "body": body},
        )
        owner = ("entry", uuid.UUID(made["id"]))
        crawl.add("entry.title", title, owner)
        crawl.add("entry.body", body, owner)
        if correct:
            fixed, reason = _canary("Rattelse"), _canary("Rattelseskal")
            await api(
                by,
                "POST",
                f"/entries/{made['id']}/corrections",
                json={"body": fixed, "reason": reason},
            )
            crawl.add("entry.correction.body", fixed, owner)
            crawl.add("entry.correction.reason", reason, owner)
        crawl.pool("entry_id", made["id"])
        return str(made["id"])

    async def action(by: User, case_id: str, responsible: Any, *, finish: bool = False) -> None:
        title, description = _canary("Insats"), _canary("Beskrivning")
        made = await api(
            by,
            "POST",
            f"/cases/{case_id}/actions",
            json={
                "type": "samtal",
                "title": title,
                "description": description,
                "responsible_agency_id": str(responsible.id),
            },
        )
        owner = ("action", uuid.UUID(made["id"]))
        crawl.add("action.title", title, owner)
        crawl.add("action.description", description, owner)
        if finish:
            outcome = _canary("Utfall")
            await api(by, "PATCH", f"/actions/{made['id']}", json={"status": "in_progress"})
            await api(
                by, "PATCH", f"/actions/{made['id']}", json={"status": "done", "outcome": outcome}
            )
            crawl.add("action.outcome", outcome, owner)
        crawl.pool("action_id", made["id"])

    async def grant(by: User, case_id: str, basis: str) -> None:
        reason = _canary("Nodlage")
        made = await api(
            by,
            "POST",
            f"/cases/{case_id}/emergency-access",
            json={"legal_basis": basis, "reason": reason},
        )
        crawl.add("emergency.reason", reason, ("grant", uuid.UUID(made["id"])))
        crawl.pool("grant_id", made["id"])

    async def goal(by: User, case_id: str, *, follow_up: bool = False) -> None:
        description = _canary("Mal")
        made = await api(
            by,
            "POST",
            f"/cases/{case_id}/goals",
            json={
                "area": "education",
                "description": description,
                "target_date": (now + timedelta(days=100)).date().isoformat(),
                "follow_up_on": (now + timedelta(days=2)).date().isoformat(),
            },
        )
        owner = ("goal", uuid.UUID(made["id"]))
        crawl.add("goal.description", description, owner)
        if follow_up:
            note, outcome = _canary("Uppfoljning"), _canary("Maluttfall")
            await api(
                by,
                "PATCH",
                f"/goals/{made['id']}",
                json={"status": "partly_achieved", "note": note, "outcome": outcome},
            )
            crawl.add("goal.follow_up.note", note, owner)
            crawl.add("goal.outcome", outcome, owner)
        crawl.pool("goal_id", made["id"])

    async def meeting(
        by: User, case_id: str, attendees: list[dict[str, Any]], decisions: list[Any]
    ) -> None:
        minutes, decided = _canary("Protokoll"), [_canary("Beslut") for _ in decisions]
        made = await api(
            by,
            "POST",
            f"/cases/{case_id}/meetings",
            json={
                "held_at": (now - timedelta(hours=3)).isoformat(),
                "kind": "intake",
                "individual_present": True,
                "attendees": attendees,
                "minutes": minutes,
                "decisions": [
                    {"title": title, "responsible_agency_id": str(agency.id)}
                    for title, agency in zip(decided, decisions, strict=True)
                ],
            },
        )
        crawl.add("meeting.minutes", minutes, ("meeting", uuid.UUID(made["id"])))
        for title, action_id in zip(decided, made["action_ids"], strict=True):
            crawl.add("meeting.decision", title, ("action", uuid.UUID(action_id)))
        crawl.pool("meeting_id", made["id"])

    # --- the minor: every consent state, on a case with four agencies ----------------------
    minor, minor_number, guardians, names = await individual(w.soc_coordinator, 2011, guardians=2)
    by_guardians = [{"role": "guardian", "guardian_id": g["id"]} for g in guardians]
    cm = await case(minor, "sspf", w.pol, w.skola, cast.fritid)
    # the signed form: the person's name and number, and a word only the form holds
    form_word = _canary("Blankett")
    form = _pdf(form_word, minor_number, *names)
    crawl.add("consent.document", form_word, ("identity", uuid.UUID(minor)))
    active = await consent(
        cm,
        minor,
        by_guardians,
        [w.soc, w.pol],
        ["identity", "social_services", "police", "plan"],
        document=form,
    )
    crawl.documents[uuid.UUID(active)] = form
    await consent(
        cm,
        minor,
        by_guardians,
        [w.soc, w.skola],
        ["identity", "school"],
        valid_from=(now + timedelta(days=3)).isoformat(),
    )  # pending
    await consent(
        cm,
        minor,
        by_guardians,
        [w.soc, cast.fritid],
        ["identity", "plan"],
        valid_from=(now - timedelta(days=60)).isoformat(),
        valid_until=(now - timedelta(days=1)).isoformat(),
    )  # expired
    withdrawn = await consent(
        cm, minor, by_guardians, [w.soc, w.skola], ["identity", "school"], document=form
    )
    why = _canary("Aterkallelse")
    await api(w.soc_coordinator, "POST", f"/consents/{withdrawn}/withdrawal", json={"reason": why})
    crawl.add("consent.withdrawal_reason", why, ("identity", uuid.UUID(minor)))
    superseded = await consent(cm, minor, by_guardians, [w.soc, cast.fritid], ["identity", "plan"])
    await consent(
        cm, minor, by_guardians, [w.soc, cast.fritid], ["contact"], supersedes_id=superseded
    )  # partial, superseding
    await consent(cm, minor, by_guardians, [w.soc, w.skola], ["school"])  # another agency
    # the leisure agency reads the plan (goals, meetings) but not who the person is: the
    # guardian attending a meeting stays unnamed to it
    await consent(cm, minor, by_guardians, [w.soc, cast.fritid], ["plan"])
    await entry(w.soc_caseworker, cm, "social_services", correct=True)
    await entry(w.pol_caseworker, cm, "police")
    await entry(w.skola_coordinator, cm, "school")
    await entry(cast.fritid_coordinator, cm, "plan")
    await action(w.soc_caseworker, cm, w.soc, finish=True)
    await action(w.soc_caseworker, cm, w.pol)  # for the police, under the consent
    await action(w.skola_coordinator, cm, w.skola)
    await grant(w.pol_caseworker, cm, "osl_10_18a")
    # casework: goals, meetings (a guardian and a named police officer attending), the
    # threat assessment (its dates are its canaries), and a corrected name
    await goal(w.soc_caseworker, cm, follow_up=True)
    await goal(w.pol_caseworker, cm)
    await goal(w.skola_coordinator, cm)
    officer = _canary("Polisnamn")
    cast.named_officer.display_name = officer
    await session.flush()
    crawl.add(
        "meeting.attendee.display_name",
        officer,
        ("case_staff", uuid.UUID(cm)),
        ("accounts", cast.named_officer.id),
    )
    await meeting(
        w.soc_coordinator,
        cm,
        [
            {"agency_id": str(w.pol.id), "user_id": str(cast.named_officer.id)},
            {"guardian_id": guardians[0]["id"], "role": "vårdnadshavare"},
        ],
        [w.soc, w.pol],
    )
    await meeting(w.skola_coordinator, cm, [{"agency_id": str(w.skola.id)}], [w.skola])
    reviewed = date(2020, 1, 1) + timedelta(days=secrets.randbelow(1500))
    due = date(2031, 1, 1) + timedelta(days=secrets.randbelow(1500))
    await api(
        w.pol_coordinator,
        "PATCH",
        f"/cases/{cm}",
        json={
            "threat_level": "high",
            "threat_reviewed_on": reviewed.isoformat(),
            "threat_review_due_on": due.isoformat(),
        },
    )
    for name, day in (("case.threat_reviewed_on", reviewed), ("case.threat_review_due_on", due)):
        crawl.add(name, day.isoformat(), ("threat", uuid.UUID(cm)))
    renamed = _canary("Nyttnamn")
    await api(w.soc_coordinator, "PATCH", f"/individuals/{minor}", json={"given_name": renamed})
    crawl.add("individual.given_name", renamed, ("identity", uuid.UUID(minor)))

    # --- the adult: registered twice; a Trefas case and a closed one -------------------------
    adult, adult_number, _, _ = await individual(w.soc_coordinator, 1998)
    await individual(w.pol_coordinator, 1998, number=adult_number)  # the police's own record
    by_self = [{"role": "individual"}]
    ca = await case(adult, "trefas", w.pol, cast.krim)
    await consent(
        ca, adult, by_self, [w.soc, cast.krim], ["identity", "social_services", "probation"]
    )
    # the police read social services' entries on this open case, not on the closed one below
    await consent(ca, adult, by_self, [w.soc, w.pol], ["social_services"])
    await entry(cast.krim_caseworker, ca, "probation")
    await entry(w.soc_caseworker, ca, "social_services")
    await action(cast.krim_caseworker, ca, cast.krim)
    cc = await case(adult, "sig", w.pol)
    await consent(cc, adult, by_self, [w.soc, w.pol], ["identity", "social_services", "plan"])
    await entry(w.soc_caseworker, cc, "social_services")
    await entry(w.pol_caseworker, cc, "police")
    await action(w.soc_caseworker, cc, w.soc)
    await grant(w.pol_caseworker, cc, "osl_10_18a")
    await goal(w.soc_caseworker, cc)
    await api(
        w.soc_coordinator,
        "PATCH",
        f"/cases/{cc}",
        json={"status": "closed", "closure_reason": "completed"},
    )
    # the open Trefas case is related to the closed SIG case
    await api(
        w.soc_coordinator, "POST", f"/cases/{ca}/links", json={"case_id": cc, "kind": "related"}
    )
    # an expired grant (time cannot be waited for in a test)
    expired = EmergencyGrant(
        id=uuid.uuid4(),
        case_id=uuid.UUID(ca),
        user_id=w.pol_caseworker.id,
        agency_id=w.pol.id,
        legal_basis="osl_10_18a",
        reason=_canary("Utgangen"),
        created_at=now - timedelta(days=3),
        expires_at=now - timedelta(days=2),
    )
    session.add(expired)
    await session.flush()
    session.add(EmergencyGrantCategory(grant_id=expired.id, category="social_services"))
    await session.flush()
    crawl.add("emergency.reason", expired.reason, ("grant", expired.id))
    crawl.pool("grant_id", expired.id)

    # --- the protected person: a consent covering identity, which the spärr overrides ------
    hidden, _, hidden_guardians, _ = await individual(
        w.soc_coordinator, 2009, protected=True, guardians=1
    )
    cp = await case(hidden, "sig", w.pol)
    await consent(
        cp,
        hidden,
        [{"role": "guardian", "guardian_id": hidden_guardians[0]["id"]}],
        [w.soc, w.pol],
        ["identity", "social_services"],
    )
    await entry(w.soc_caseworker, cp, "social_services")

    for name, values in (
        ("agency_id", [w.soc.id, w.pol.id, cast.krim.id]),
        ("user_id", [w.soc_caseworker.id]),
        ("client_id", [cast.client_id]),
        (
            "webhook_id",
            [
                (
                    await api(
                        w.soc_coordinator,
                        "POST",
                        "/webhooks",
                        json={"url": "http://127.0.0.1:9/hook", "types": ["entry.recorded"]},
                    )
                )["id"]
            ],
        ),
    ):
        for value in values:
            crawl.pool(name, value)
    # a legal hold on the minor's case: its reason is for auditors and the asking agency
    hold_reason = _canary("Bevarande")
    held = await api(
        w.soc_coordinator, "POST", "/legal-holds", json={"case_id": cm, "reason": hold_reason}
    )
    # ... approved with a note, and its lifting asked for with a reason: all three texts
    # are the hold's (auditors and the asking agency's coordinators)
    decision_note, lift_reason = _canary("Beslut"), _canary("Havning")
    hold_path = f"/legal-holds/{held['id']}"
    await api(w.soc_auditor, "POST", f"{hold_path}/approve", json={"note": decision_note})
    await api(w.soc_coordinator, "POST", f"{hold_path}/lift", json={"reason": lift_reason})
    for name, text in (
        ("legal_hold.reason", hold_reason),
        ("legal_hold.decision_note", decision_note),
        ("legal_hold.lift_reason", lift_reason),
    ):
        crawl.add(name, text, ("hold", uuid.UUID(held["id"])))
    crawl.pool("hold_id", held["id"])
    # the lägesbild (no personal data): an area, and the year its table is read for
    await api(w.soc_coordinator, "POST", "/areas", json={"name": "Vällingby"})
    crawl.pools["year"] = ["2026"]
    for pool in crawl.pools.values():
        if pool is not crawl.pools["year"]:
            pool.append(str(uuid.uuid4()))  # and one that does not exist
    # audit records: those of the writes that carried free text, the newest, and none
    seqs = list(
        (
            await session.execute(
                select(AuditEvent.seq).where(
                    AuditEvent.action.in_(
                        ["emergency.grant", "consent.withdraw", "entry.correct", "action.update"]
                    )
                )
            )
        ).scalars()
    )
    head = max(seqs)
    crawl.pools["seq"] = [str(s) for s in seqs] + [str(head + 10_000)]
    # an auditor's review note (it may say what was found): for auditors' eyes only
    note = _canary("Granskning")
    await api(w.soc_auditor, "POST", f"/audit/events/{seqs[0]}/review", json={"note": note})
    crawl.add("audit.review.note", note, ("auditors", uuid.UUID(int=0)))
    return crawl


# --- the oracle: app/policy decides -----------------------------------------------------------

SHARED: dict[str, Any] = {
    "entry": entry_service.ENTRIES,
    "action": action_service.ACTIONS,
    "goal": goal_service.GOALS,
    "meeting": meeting_service.MEETINGS,
}


async def _allowed(session: AsyncSession, actor: Actor, question: Question) -> bool:
    kind, ident = question
    if kind == "identity":
        individual = await session.get(Individual, ident)
        assert individual is not None
        facts = await individual_service.facts(session, individual)
        return (await individual_service.identity_decision(session, actor, facts)).allowed
    if kind in SHARED:
        shared: Any = SHARED[kind]
        row = await session.get(shared.model, ident)
        facts = await shared.facts(session, row, None)
        # the grounds asked on their own, not with the facts as the app's read asks them
        grounds = await grounds_for(
            session,
            actor,
            individual_id=row.individual_id,
            case_id=row.case_id,
            now=datetime.now(UTC),
        )
        return enforce.decide(actor, shared.read, facts, grounds).allowed
    if kind == "threat":
        case = await session.get(Case, ident)
        assert case is not None
        facts = await case_service.case_facts(session, case)
        return (await case_service.threat_decision(session, actor, case, facts)).allowed
    if kind == "case_staff":  # staff of an agency taking part in the case
        case = await session.get(Case, ident)
        assert case is not None
        facts = await case_service.case_facts(session, case)
        return enforce.decide(actor, Action.CASE_READ, facts).allowed
    if kind == "accounts":  # administrators see accounts (their names) by account.manage
        user = await session.get(User, ident)
        assert user is not None
        account = AccountFacts(id=user.id, agency_id=user.agency_id)
        return enforce.decide(actor, Action.ACCOUNT_MANAGE, account).allowed
    if kind == "consent_case":
        case = await session.get(Case, ident)
        assert case is not None
        facts = await case_service.case_facts(session, case)
        return enforce.decide(actor, Action.CONSENT_READ, facts).allowed
    if kind == "hold":  # a legal hold's reasons: policies/retention.cedar hold.read
        hold = await session.get(LegalHold, ident)
        assert hold is not None
        return enforce.decide(actor, Action.HOLD_READ, hold_service.facts(hold)).allowed
    if kind == "auditors":  # the audit log's own text: app.audit's role gate (audit.use)
        return actor.has_any_role(Role.AUDITOR)
    assert kind == "grant"
    if actor.has_any_role(Role.AUDITOR):
        # the auditors' role gate (app.audit.service) opens the log, whose emergency.grant
        # records keep the written reason for review
        return True
    grant = await session.get(EmergencyGrant, ident)
    assert grant is not None
    case = await session.get(Case, grant.case_id)
    assert case is not None
    facts = GrantFacts(
        id=grant.id,
        agency_id=grant.agency_id,
        grantee_id=grant.user_id,
        case=await case_service.case_facts(session, case),
    )
    return enforce.decide(actor, Action.EMERGENCY_READ, facts).allowed


# --- the routes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GetRoute:
    path: str
    path_params: tuple[Any, ...] = ()
    query_params: tuple[Any, ...] = ()


def get_routes(app: FastAPI) -> list[GetRoute]:
    """Every GET route of the app: API routes (those of included routers too, which this
    FastAPI keeps in route contexts) and plain ones (the OpenAPI document, the docs page)."""
    found: dict[str, GetRoute] = {}
    for route in app.routes:
        contexts: list[Any]
        if isinstance(route, APIRoute):
            contexts = [route]
        elif hasattr(route, "effective_route_contexts"):
            contexts = list(route.effective_route_contexts())
        else:
            methods = getattr(route, "methods", None) or set()
            if "GET" in methods:
                found[route.path] = GetRoute(route.path)  # type: ignore[attr-defined]
            continue
        for context in contexts:
            if "GET" in (context.methods or set()):
                dependant = context.dependant
                found[context.path] = GetRoute(
                    context.path, tuple(dependant.path_params), tuple(dependant.query_params)
                )
    return sorted(found.values(), key=lambda r: r.path)


def _choices(annotation: Any) -> list[str] | None:
    """The values of an enum query parameter (``format``), if it is one."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if inspect.isclass(candidate) and issubclass(candidate, enum.Enum):
            return [str(m.value) for m in candidate]
    return None


def requests_for(route: GetRoute, crawl: CrawlWorld) -> list[tuple[str, dict[str, str]]]:
    """Every concrete request of a route: each id of the world for each path parameter, and
    the query without optional parameters and with each value of each one the crawler knows
    how to fill (one at a time); required ones take each of their values every time."""
    paths = [route.path]
    for param in route.path_params:
        pool = crawl.pools.get(param.name)
        if pool is None:
            pytest.fail(f"{route.path}: the crawler has no ids for {{{param.name}}}: add a pool")
        paths = [p.replace("{" + param.name + "}", value) for p in paths for value in pool]
    base: list[dict[str, str]] = [{}]
    optional: list[dict[str, str]] = []
    for param in route.query_params:
        values: list[str] | None
        if param.name == "personal_number":
            values = [n for number in crawl.numbers for n in (number, f"{number[:8]}-{number[8:]}")]
        elif param.name == "external_ref":
            values = crawl.pools["external_ref"]
        else:
            values = _choices(param.field_info.annotation)
        name = param.alias or param.name
        if values is None:
            if param.field_info.is_required():
                pytest.fail(f"{route.path}: the crawler cannot fill ?{name}=")
            continue
        if param.field_info.is_required():
            base = [q | {name: v} for q in base for v in values]
        else:
            optional += [{name: v} for v in values]
    queries = base + [q | extra for q in base for extra in optional]
    return [(p, q) for p, q in itertools.product(paths, queries)]


# --- the crawl --------------------------------------------------------------------------------


@dataclass
class Seen:
    leaks: list[str] = field(default_factory=list)
    shown: set[str] = field(default_factory=set)  # canary fields seen somewhere, allowed
    ok_routes: set[str] = field(default_factory=set)
    calls: int = 0


def _texts(response: httpx.Response) -> tuple[str, str]:
    """The body as text (binary bodies as latin-1, which keeps every byte) and the headers."""
    body = response.content.decode("latin-1")
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return body, headers


async def _crawl_as(
    client: httpx.AsyncClient,
    actor_name: str,
    token: str,
    routes: list[GetRoute],
    crawl: CrawlWorld,
    allowed: Callable[[Canary], bool],
    seen: Seen,
) -> None:
    for route in routes:
        for path, query in requests_for(route, crawl):
            response = await client.get(
                path, params=query, headers={"Authorization": f"Bearer {token}"}
            )
            seen.calls += 1
            if response.status_code == 200:
                seen.ok_routes.add(route.path)
            body, headers = _texts(response)
            where = f"GET {path}{'?' + str(query) if query else ''} as {actor_name}"
            for canary in crawl.canaries:
                in_body = any(word in body for word in canary.words)
                if any(word in headers for word in canary.words):
                    seen.leaks.append(f"{where}: {canary.field} in a header")
                if not in_body:
                    continue
                if response.status_code >= 400:
                    seen.leaks.append(f"{where}: {canary.field} in a {response.status_code} body")
                elif not allowed(canary):
                    seen.leaks.append(f"{where}: {canary.field} shown without a permit")
                else:
                    seen.shown.add(canary.field)


ACTORS = [
    "soc_coordinator",
    "soc_caseworker",
    "pol_caseworker",
    "pol_coordinator",
    "skola_coordinator",
    "soc_admin",
    "soc_auditor",
    "krim_caseworker",
    "fritid_coordinator",
    "client",
]


async def crawl_everything(
    client: httpx.AsyncClient, app: FastAPI, session: AsyncSession, world: World
) -> tuple[CrawlWorld, Seen, list[str]]:
    """Builds the world, crawls it as every actor, and returns what was found, with every
    log line the app wrote meanwhile."""
    api = Builder(client, app)
    cast = await _cast(session, world, api)
    crawl = await _build(session, api, cast)
    routes = get_routes(app)
    seen = Seen()
    lines: list[str] = []
    original = app_logging._StderrHandler.format

    def keep(handler: app_logging._StderrHandler, record: Any) -> str:
        line = original(handler, record)
        lines.append(line)
        return line

    app_logging._StderrHandler.format = keep  # type: ignore[method-assign]
    try:
        for name in ACTORS:
            if name == "client":
                subject, actor = (
                    f"client:{cast.client_id}",
                    await auth_service.load_actor(
                        session, kind=ActorKind.CLIENT, subject_id=cast.client_id, origin=Origin()
                    ),
                )
            else:
                user = getattr(cast, name, None) or getattr(world, name)
                subject, actor = f"user:{user.id}", auth_service.user_actor(user, Origin())
            assert actor is not None
            verdicts: dict[Question, bool] = {}
            for canary in crawl.canaries:
                for owner in canary.owners:
                    if owner not in verdicts:
                        verdicts[owner] = await _allowed(session, actor, owner)

            def allowed(canary: Canary, verdicts: dict[Question, bool] = verdicts) -> bool:
                return any(verdicts[o] for o in canary.owners)

            await _crawl_as(
                client,
                name,
                access_token_for(app, subject),
                routes,
                crawl,
                allowed,
                seen,
            )
    finally:
        app_logging._StderrHandler.format = original  # type: ignore[method-assign]
    return crawl, seen, lines


async def test_no_personal_datum_reaches_anyone_the_policy_does_not_allow(
    app: FastAPI, session: AsyncSession, world: World, connection: AsyncConnection
) -> None:
    """A client of its own, without the suite's protected-identity hook: the crawler's
    findings are its own (and it reports them all, not the first)."""
    async with client_for(app) as client:
        crawl, seen, lines = await crawl_everything(client, app, session, world)
    logged = [
        f"log line: {c.field}"
        for c in crawl.canaries
        for line in lines
        if any(w in line for w in c.words)
    ]
    assert seen.leaks + logged == [], "\n".join(sorted(set(seen.leaks + logged))[:80])
    # it cannot pass by being refused: every canary field was shown to someone allowed, and
    # every route answered 200 to someone
    fields = {c.field for c in crawl.canaries}
    assert fields - seen.shown == set(), "canary fields never shown to anyone"
    routes = {r.path for r in get_routes(app)}
    assert routes - seen.ok_routes == set(), "routes that never answered 200"
    # and the audit log holds no canary but the reasons auditors review
    rows = await connection.execute(select(AuditEvent.__table__))
    for event in rows.mappings():
        text = repr(dict(event))
        for canary in crawl.canaries:
            in_the_log = {"emergency.reason"}  # the auditors review that reason
            if canary.field not in in_the_log and any(w in text for w in canary.words):
                pytest.fail(f"audit record {event['seq']} holds {canary.field}")
