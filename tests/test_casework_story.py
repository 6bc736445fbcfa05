"""A SIG case from intake to closure, through the API alone, as three agencies.

Social services (SOC) registers a young person without a personnummer (a reserve id), then
attaches the real number; opens a SIG case; invites the police (POL) and the school
(SKOLA); registers two consents signed by the guardian — the plan and the identity shared
by all three, the threat assessment and the police's and social services' information by
SOC and POL only; holds the intake meeting, whose decisions become actions for each agency;
sets goals and follows them up; the police record a threat review that raises the level to
high; the young person leaves crime (avhopp); the case closes with the reason `exited`.

At each step the test checks what each agency sees: the identity, the meeting and its
attendees' names, the goals, the threat level, the work lists and the event feed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from app.users.models import User
from tests.scenarios import World, call

NUMBER = "20100303-2388"  # tests.scenarios.CHILD_NUMBER: born 2010-03-03


class Agencies:
    """Calls as the three agencies' users; any status but the expected fails the test."""

    def __init__(self, client: httpx.AsyncClient, app: FastAPI, world: World) -> None:
        self.client, self.app, self.world = client, app, world

    async def __call__(
        self, user: User, method: str, path: str, expect: int = 200, **kw: Any
    ) -> Any:
        response = await call(self.client, self.app, user, method, path, **kw)
        assert response.status_code == expect, f"{method} {path}: {response.text}"
        return response.json() if response.content else None


def _ids(page: dict[str, Any]) -> set[str]:
    return {item["id"] for item in page["items"]}


async def test_a_sig_case_from_intake_to_closure_as_three_agencies(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    api = Agencies(client, app, world)
    soc, pol, skola = world.soc_coordinator, world.pol_coordinator, world.skola_coordinator
    soc_worker, pol_worker = world.soc_caseworker, world.pol_caseworker
    today = datetime.now(UTC).date()

    # --- register without a number, then correct: the real personnummer is attached ------
    person = await api(
        soc,
        "POST",
        "/individuals",
        expect=201,
        json={
            "given_name": "Kim",
            "family_name": "Andersson",
            "birth_date": "2010-03-03",
            "protected_identity": False,
            "guardians": [
                {
                    "given_name": "Mamma",
                    "family_name": "Andersson",
                    "has_custody": True,
                    "contact": "070-123 45 67",
                }
            ],
        },
    )
    assert person["reserve_id"]
    assert person["personal_number"] is None
    pid = person["id"]
    corrected = await api(
        soc,
        "PATCH",
        f"/individuals/{pid}",
        json={"personal_number": NUMBER, "family_name": "Andersson Berg"},
    )
    assert corrected["personal_number"] == NUMBER
    assert corrected["version"] == 2
    # the same number twice within the agency: 409, nothing changed
    other = await api(
        soc,
        "POST",
        "/individuals",
        expect=201,
        json={"given_name": "Alex", "family_name": "X", "birth_date": "2011-01-01"},
    )
    await api(soc, "PATCH", f"/individuals/{other['id']}", 409, json={"personal_number": NUMBER})
    assert (await api(soc, "GET", f"/individuals/{other['id']}"))["version"] == 1
    # only the registering agency's coordinators correct
    await api(soc_worker, "PATCH", f"/individuals/{pid}", 403, json={"given_name": "K"})
    versions = await api(soc, "GET", f"/individuals/{pid}/versions")
    assert versions["items"][0]["before"]["family_name"] == "Andersson"
    assert versions["items"][0]["before"]["personal_number"] is None
    guardian_id = corrected["guardians"][0]["id"]
    await api(soc, "PATCH", f"/guardians/{guardian_id}", json={"contact": "070-765 43 21"})

    # --- open the SIG case and invite the police and the school ---------------------------
    case = await api(
        soc, "POST", "/cases", expect=201, json={"individual_id": pid, "programme": "sig"}
    )
    cid = case["id"]
    for agency in (world.pol, world.skola):
        await api(
            soc,
            "POST",
            f"/cases/{cid}/participants",
            expect=201,
            json={"agency_id": str(agency.id)},
        )
    # before any consent: the others see the case, a pseudonym, no threat level
    for user in (pol, skola):
        seen = await api(user, "GET", f"/cases/{cid}")
        assert seen["individual"]["identity_visible"] is False
        assert NUMBER not in str(seen)
        assert "Andersson" not in str(seen)
        assert seen["threat_level"] is None
    assert (await api(soc, "GET", f"/cases/{cid}"))["threat_level"] == "none"
    # a plan for another agency needs a consent: the intake meeting's decision is refused,
    # and nothing of the meeting is written
    held = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    intake: dict[str, Any] = {
        "held_at": held,
        "kind": "intake",
        "individual_present": True,
        "attendees": [
            {"agency_id": str(world.soc.id), "user_id": str(soc.id), "role": "samordnare"},
            {"agency_id": str(world.pol.id), "user_id": str(pol_worker.id)},
            {"agency_id": str(world.skola.id), "role": "rektor"},
            {"guardian_id": guardian_id},
        ],
        "minutes": "Kim vill gå tillbaka till skolan och byta umgänge.",
        "decisions": [
            {"title": "Kontakt med studievägledare", "responsible_agency_id": str(world.skola.id)},
            {"title": "Stödsamtal varje vecka", "responsible_agency_id": str(world.soc.id)},
            {"title": "Orosanmälan följs upp", "responsible_agency_id": str(world.pol.id)},
        ],
    }
    await api(soc, "POST", f"/cases/{cid}/meetings", 403, json=intake)
    assert (await api(soc, "GET", f"/cases/{cid}/meetings"))["items"] == []
    assert (await api(soc, "GET", f"/cases/{cid}/actions"))["items"] == []

    # --- the guardian signs two consents ----------------------------------------------------
    signed = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    window = {
        "valid_from": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "valid_until": (datetime.now(UTC) + timedelta(days=20)).isoformat(),
        "method": "paper",
        "signatories": [
            {"role": "guardian", "guardian_id": guardian_id, "name": "Mamma", "signed_at": signed}
        ],
    }
    everyone = [str(world.soc.id), str(world.pol.id), str(world.skola.id)]
    await api(
        soc,
        "POST",
        f"/cases/{cid}/consents",
        expect=201,
        json=window
        | {"agency_ids": everyone, "categories": ["identity", "plan", "school"], "purpose": "SIG"},
    )
    await api(
        soc,
        "POST",
        f"/cases/{cid}/consents",
        expect=201,
        json=window
        | {
            "agency_ids": everyone[:2],
            "categories": ["threat_assessment", "police", "social_services"],
            "purpose": "Hotbild",
        },
    )
    for user in (pol, skola):
        assert (await api(user, "GET", f"/cases/{cid}"))["individual"]["personal_number"] == NUMBER

    # --- the intake meeting: decisions become actions for each agency ----------------------
    meeting = await api(soc, "POST", f"/cases/{cid}/meetings", expect=201, json=intake)
    assert len(meeting["action_ids"]) == 3
    actions = await api(soc, "GET", f"/cases/{cid}/actions")
    assert {a["meeting_id"] for a in actions["items"]} == {meeting["id"]}
    for user in (pol, skola):
        seen = await api(user, "GET", f"/meetings/{meeting['id']}")
        assert seen["minutes"] == intake["minutes"]
        assert {a["display_name"] for a in seen["attendees"]} >= {pol_worker.display_name}
        assert "Mamma Andersson" in {a["name"] for a in seen["attendees"]}
        assert set(seen["action_ids"]) == set(meeting["action_ids"])
    # an agency outside the case does not know the meeting exists
    outsider = await api(world.soc_admin, "GET", f"/meetings/{meeting['id']}", 404)
    assert outsider["status"] == 404

    # --- goals: set, and followed up by their agency or the lead coordinator --------------
    soon = (today + timedelta(days=3)).isoformat()
    school_goal = await api(
        skola,
        "POST",
        f"/cases/{cid}/goals",
        expect=201,
        json={
            "area": "education",
            "description": "Full närvaro och godkänt i kärnämnena",
            "target_date": (today + timedelta(days=120)).isoformat(),
            "follow_up_on": soon,
        },
    )
    work_goal = await api(
        soc,
        "POST",
        f"/cases/{cid}/goals",
        expect=201,
        json={
            "area": "work",
            "description": "Feriearbete i sommar",
            "target_date": (today + timedelta(days=200)).isoformat(),
        },
    )
    assert _ids(await api(pol, "GET", f"/cases/{cid}/goals")) == {
        school_goal["id"],
        work_goal["id"],
    }
    skola_work = await api(skola, "GET", "/me/work")
    assert [i["id"] for i in skola_work["follow_ups_due"]] == [school_goal["id"]]
    followed = await api(
        skola,
        "PATCH",
        f"/goals/{school_goal['id']}",
        json={
            "note": "Närvaron har ökat",
            "follow_up_on": (today + timedelta(days=30)).isoformat(),
        },
    )
    assert followed["follow_ups"][0]["note"] == "Närvaron har ökat"
    await api(pol, "PATCH", f"/goals/{school_goal['id']}", 403, json={"note": "Polisen"})
    await api(
        soc,
        "PATCH",
        f"/goals/{work_goal['id']}",
        json={"status": "achieved", "outcome": "Feriearbete på fritidsgården"},
    )

    # --- the police's threat review raises the level: flagged for the lead coordinator ------
    due = (today + timedelta(days=3)).isoformat()
    await api(
        pol,
        "PATCH",
        f"/cases/{cid}",
        json={
            "threat_level": "high",
            "threat_reviewed_on": today.isoformat(),
            "threat_review_due_on": due,
        },
    )
    led = await api(soc, "GET", f"/cases/{cid}")
    assert (led["threat_level"], led["threat_flagged"]) == ("high", True)
    assert (await api(skola, "GET", f"/cases/{cid}"))["threat_level"] is None
    soc_work = await api(soc, "GET", "/me/work")
    assert [i["case_id"] for i in soc_work["threats_raised"]] == [cid]
    assert [i["case_id"] for i in (await api(pol, "GET", "/me/work"))["reviews_due"]] == [cid]
    assert (await api(skola, "GET", "/me/work"))["threats_raised"] == []
    raised = {"case.threat_raised"}
    soc_events = {e["type"] for e in (await api(soc, "GET", "/events?limit=200"))["items"]}
    skola_events = {e["type"] for e in (await api(skola, "GET", "/events?limit=200"))["items"]}
    assert raised <= soc_events
    assert not raised & skola_events
    # the school records no threat assessments, and caseworkers none at all
    body = {"threat_level": "low", "threat_reviewed_on": today.isoformat()}
    await api(skola, "PATCH", f"/cases/{cid}", 403, json=body)
    await api(pol_worker, "PATCH", f"/cases/{cid}", 403, json=body)

    # --- avhopp, and closure with the reason ----------------------------------------------
    await api(
        soc,
        "PATCH",
        f"/cases/{cid}",
        json={"exit": {"status": "completed", "requested_on": today.isoformat()}},
    )
    closed = await api(
        soc, "PATCH", f"/cases/{cid}", json={"status": "closed", "closure_reason": "exited"}
    )
    assert closed["closure_reason"] == "exited"
    # a closed case shares nothing through its consents; each agency keeps its own
    assert _ids(await api(skola, "GET", f"/cases/{cid}/goals")) == {school_goal["id"]}
    await api(skola, "GET", f"/meetings/{meeting['id']}", 404)
    assert (await api(pol, "GET", f"/cases/{cid}"))["individual"]["identity_visible"] is False
    await api(
        soc,
        "POST",
        f"/cases/{cid}/goals",
        409,
        json={"area": "other", "description": "x", "target_date": date.max.isoformat()},
    )
