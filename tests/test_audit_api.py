"""The auditors' API (loggkontroll): search and its filters, flags set at write time,
review marks, streamed exports, the individual's access extract, chain verification.

World: tests/scenarios.py (SOC leads a case, POL takes part, SKOLA does not).
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit import flags as audit_flags
from app.audit import writer
from app.audit.chain import canonical_body, verify_chain
from app.audit.models import AuditReadVolume, Decision
from app.audit.records import Record
from app.audit.service import csv_safe
from app.policy.reference import WEEKDAYS, AuditSettings, WorkingHours
from tests.factories import audit_events_after, audit_head
from tests.scenarios import Scenario, World, call, individual_body, open_case

# Once with local accounts, once signed in through the agencies' identity providers
# (issue 17): every record names its actor, and how the actor signed in.
pytestmark = pytest.mark.usefixtures("sign_in")


async def _entry(client: httpx.AsyncClient, app: FastAPI, world: World, case_id: str) -> str:
    response = await call(
        client,
        app,
        world.soc_caseworker,
        "POST",
        f"/cases/{case_id}/entries",
        json={"category": "social_services", "title": "Hembesök", "body": "Text."},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _search(
    client: httpx.AsyncClient, app: FastAPI, world: World, **params: Any
) -> list[dict[str, Any]]:
    response = await call(client, app, world.soc_auditor, "GET", "/audit/events", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def _activity(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> str:
    """SOC writes and reads an entry; POL is refused it; returns the entry id."""
    entry = await _entry(client, app, world, scenario.case["id"])
    assert (
        await call(client, app, world.soc_coordinator, "GET", f"/entries/{entry}")
    ).status_code == 200
    assert (
        await call(client, app, world.pol_caseworker, "GET", f"/entries/{entry}")
    ).status_code == 404
    return entry


async def test_only_auditors_search_and_the_search_is_audited(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    for user in (world.soc_coordinator, world.pol_caseworker, world.soc_admin):
        before = await audit_head(connection)
        refused = await call(client, app, user, "GET", "/audit/events")
        assert refused.status_code == 403
        [denied] = await audit_events_after(connection, before)
        assert (denied.action, denied.decision) == ("audit.search", "deny")
        assert "denied" in denied.flags
    before = await audit_head(connection)
    await _search(client, app, world, individual_id=scenario.individual["id"], flagged="true")
    [searched] = await audit_events_after(connection, before)
    assert searched.action == "audit.search"
    assert str(searched.individual_id) == scenario.individual["id"]
    assert searched.reason is not None
    assert "individual_id, flagged" in searched.reason
    assert scenario.individual["id"] not in searched.reason  # names, not values


async def test_each_filter_selects_what_it_says(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Working hours around the clock: run after 18:00 Stockholm time, every record would
    # be flagged outside_hours and ``flagged=false`` would find nothing to check.
    always_open = WorkingHours(
        start=time(0), end=time.max, days=list(WEEKDAYS), timezone="Europe/Stockholm"
    )
    monkeypatch.setattr(
        audit_flags,
        "audit_settings",
        lambda: AuditSettings(working_hours=always_open, volume_individuals_per_hour=1000),
    )
    entry = await _activity(client, app, world, scenario)
    everything = await _search(client, app, world, limit=200)
    assert [e["seq"] for e in everything] == sorted((e["seq"] for e in everything), reverse=True)
    checks: list[tuple[dict[str, Any], Any]] = [
        (
            {"individual_id": scenario.individual["id"]},
            lambda e: e["individual_id"] == scenario.individual["id"],
        ),
        ({"case_id": scenario.case["id"]}, lambda e: e["case_id"] == scenario.case["id"]),
        (
            {"user_id": str(world.pol_caseworker.id)},
            lambda e: e["actor_user_id"] == str(world.pol_caseworker.id),
        ),
        ({"agency_id": str(world.pol.id)}, lambda e: e["actor_agency_id"] == str(world.pol.id)),
        ({"action": "entry.read"}, lambda e: e["action"] == "entry.read"),
        ({"decision": "deny"}, lambda e: e["decision"] == "deny"),
        ({"flagged": "true"}, lambda e: bool(e["flags"])),
        ({"flagged": "false"}, lambda e: not e["flags"]),
    ]
    for params, holds in checks:
        found = await _search(client, app, world, limit=200, **params)
        assert found, params
        expected = [e["seq"] for e in everything if holds(e)]
        # the later search also sees the audit.search records written in between
        assert [e["seq"] for e in found if e["seq"] <= everything[0]["seq"]] == expected, params
    [denied_read] = await _search(
        client, app, world, user_id=str(world.pol_caseworker.id), action="entry.read"
    )
    assert (denied_read["resource_id"], denied_read["decision"]) == (entry, "deny")
    assert "denied" in denied_read["flags"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await _search(client, app, world, **{"from": future}) == []
    assert await _search(client, app, world, to="2000-01-01T00:00:00") == []
    bad = await call(
        client, app, world.soc_auditor, "GET", "/audit/events", params={"decision": "maybe"}
    )
    assert bad.status_code == 422


async def test_pages_cover_the_log_once_newest_first(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    await _activity(client, app, world, scenario)
    everything = await _search(client, app, world, limit=200)
    # up to the newest record of that search: the later searches add records of their own
    until = (datetime.fromisoformat(everything[0]["at"]) + timedelta(microseconds=1)).isoformat()
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, "to": until}
        if cursor:
            params["cursor"] = cursor
        page = await call(client, app, world.soc_auditor, "GET", "/audit/events", params=params)
        seen += [e["seq"] for e in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["seq"] for e in everything]


async def test_one_record_and_its_hash(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    [newest] = await _search(client, app, world, limit=1)
    one = await call(client, app, world.soc_auditor, "GET", f"/audit/events/{newest['seq']}")
    assert one.status_code == 200
    assert one.json() | {"reviewed": False} == newest | {
        "reviewed": False,
        "review": None,
        "culled": None,
    }
    assert len(one.json()["hash"]) == 64
    missing = await call(client, app, world.soc_auditor, "GET", "/audit/events/999999999")
    assert missing.status_code == 404


async def test_flags_are_set_when_written(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    protected = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        "/individuals",
        json=individual_body(
            personal_number="20100303-2370", given_name="Hemlig", protected_identity=True
        ),
    )
    before = await audit_head(connection)
    await call(client, app, world.soc_coordinator, "GET", f"/individuals/{protected.json()['id']}")
    [read] = await audit_events_after(connection, before)
    assert "protected_identity" in read.flags

    always_closed = WorkingHours(start=time(7), end=time(18), days=[], timezone="Europe/Stockholm")
    monkeypatch.setattr(
        audit_flags,
        "audit_settings",
        lambda: AuditSettings(working_hours=always_closed, volume_individuals_per_hour=2),
    )
    individuals = [
        (
            await call(
                client,
                app,
                world.soc_coordinator,
                "POST",
                "/individuals",
                json=individual_body(personal_number=None, birth_date="2011-01-01"),
            )
        ).json()["id"]
        for _ in range(3)
    ]
    flagged = []
    for individual in individuals:
        before = await audit_head(connection)
        await call(client, app, world.soc_caseworker, "GET", f"/individuals/{individual}")
        [read] = await audit_events_after(connection, before)
        assert "outside_hours" in read.flags
        flagged.append("volume" in read.flags)
    assert flagged == [False, False, True]  # the third distinct individual within the hour
    before = await audit_head(connection)
    await call(client, app, world.soc_caseworker, "GET", f"/individuals/{individuals[0]}")
    [again] = await audit_events_after(connection, before)
    assert "volume" in again.flags  # still three in the hour


def _volume_threshold(monkeypatch: pytest.MonkeyPatch, individuals_per_hour: int) -> None:
    """Working hours around the clock (nothing is flagged outside_hours) and the volume
    flag over ``individuals_per_hour`` distinct individuals an hour."""
    monkeypatch.setattr(
        audit_flags,
        "audit_settings",
        lambda: AuditSettings(
            working_hours=WorkingHours(
                start=time(0), end=time(23, 59), days=list(WEEKDAYS), timezone="UTC"
            ),
            volume_individuals_per_hour=individuals_per_hour,
        ),
    )


@pytest.mark.parametrize("way", ["entry read", "entry page", "entry write", "individual read"])
async def test_each_way_in_flags_the_third_individual_over_a_threshold_of_two(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    connection: AsyncConnection,
    monkeypatch: pytest.MonkeyPatch,
    way: str,
) -> None:
    """The volume flag's count is asked with the facts, by each statement a request of a
    kind asks them with (an entry's facts and grounds, a case's for a page, a case's for a
    write, an individual's): each flags its record about a third individual in the hour
    over a threshold of two, and not the first two."""
    _volume_threshold(monkeypatch, 2)
    paths = []
    for _ in range(3):
        opened = await open_case(client, app, world, personal_number=None, birth_date="2011-01-01")
        case_id = opened.case["id"]
        entry = await _entry(client, app, world, case_id)
        paths.append(
            {
                "entry read": ("GET", f"/entries/{entry}"),
                "entry page": ("GET", f"/cases/{case_id}/entries"),
                "entry write": ("POST", f"/cases/{case_id}/entries"),
                "individual read": ("GET", f"/individuals/{opened.individual['id']}"),
            }[way]
        )
    # what the set-up read and wrote does not count
    await connection.execute(
        delete(AuditReadVolume).where(AuditReadVolume.actor_user_id == world.soc_caseworker.id)
    )
    flagged = []
    for method, path in paths:
        before = await audit_head(connection)
        body = {"category": "social_services", "title": "Samtal", "body": "Uppföljning."}
        response = await call(
            client,
            app,
            world.soc_caseworker,
            method,
            path,
            json=body if method == "POST" else None,
        )
        assert response.status_code in {200, 201}, response.text
        records = [
            r
            for r in await audit_events_after(connection, before)
            if r.individual_id is not None and r.decision == "permit"
        ]
        assert records
        flagged.append({"volume" in r.flags for r in records})
    assert flagged == [{False}, {False}, {True}]


async def test_the_volume_window_slides_and_counts_only_permits(
    connection: AsyncConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The volume flag looks back one hour from the record's own moment, counts distinct
    individuals the user was let at (a denial or a client's record does not count), and
    the same individual read again does not count twice."""
    _volume_threshold(monkeypatch, 2)
    user, a, b, c = (uuid.uuid4() for _ in range(4))
    noon = datetime(2026, 11, 23, 12, tzinfo=UTC)

    async def note(individual: uuid.UUID, at: datetime, decision: Decision) -> None:
        await audit_flags.note_read(
            connection,
            decision=decision,
            at=at,
            actor_user_id=user,
            individual_id=individual,
            known={},
        )

    async def volume(individual: uuid.UUID, at: datetime) -> bool:
        flags = await audit_flags.flags_for(
            connection,
            given=set(),
            decision=Decision.PERMIT,
            at=at,
            actor_user_id=user,
            individual_id=individual,
        )
        return audit_flags.VOLUME in flags

    await note(a, noon, Decision.PERMIT)
    await note(b, noon, Decision.DENY)  # a denial is not a read
    assert not await volume(c, noon + timedelta(minutes=1))  # a and c: two, not over two
    await note(b, noon + timedelta(minutes=2), Decision.PERMIT)
    await note(a, noon + timedelta(minutes=3), Decision.PERMIT)  # a again: still one
    assert await volume(c, noon + timedelta(minutes=4))  # a, b and c
    assert not await volume(a, noon + timedelta(minutes=4))  # a and b
    # An hour after the first read of b (a was read again later): b has left the window.
    assert not await volume(c, noon + timedelta(minutes=62))
    assert await volume(c, noon + timedelta(minutes=61, seconds=59))
    # An earlier moment noted late does not move the last read back.
    await note(a, noon, Decision.PERMIT)
    assert await volume(c, noon + timedelta(minutes=61, seconds=59))  # a still at 12:03


@pytest.mark.parametrize("statement", ["one", "many", "chained"])
async def test_the_append_statement_notes_permits_keeping_the_later_moment(
    connection: AsyncConnection, statement: str
) -> None:
    """On PostgreSQL the append statements themselves keep ``audit_read_volume`` (what
    ``note_read`` does on SQLite): permits by a user about an individual, the later moment
    kept; denials and records without a user or an individual leave it alone. Both the
    statement of one record and that of a page's records (``many``: here each record
    three times over with the later moment last, as one batch, and the chain still whole),
    and the group commit's, which chains in the database (``chained``, the same batch)."""
    if connection.dialect.name != "postgresql":
        pytest.skip("the append statement with the volume row is PostgreSQL's")
    user, individual = uuid.uuid4(), uuid.uuid4()
    noon = datetime(2026, 11, 23, 12, tzinfo=UTC)

    async def append(at: datetime, decision: Decision, **fields: Any) -> None:
        record = Record(action="entry.read", decision=decision, **fields)
        columns = writer._columns(record, at, set())
        if statement == "one":
            await connection.execute(
                writer._PG_APPEND, {**columns, "body": canonical_body(columns)}
            )
            return
        earlier = writer._columns(record, at - timedelta(minutes=1), set())
        if statement == "many":
            await writer._append_many(connection, [earlier, columns, earlier])
            return
        rows = [{**c, "body": canonical_body(c)} for c in (earlier, columns, earlier)]
        await connection.execute(writer._PG_APPEND_CHAINED, writer.chained_params(rows))

    async def last_at() -> datetime | None:
        return await connection.scalar(
            select(AuditReadVolume.last_at).where(
                AuditReadVolume.actor_user_id == user, AuditReadVolume.individual_id == individual
            )
        )

    await append(noon, Decision.DENY, actor_user_id=user, individual_id=individual)
    await append(noon, Decision.PERMIT, actor_user_id=user)
    await append(noon, Decision.PERMIT, individual_id=individual)
    assert await last_at() is None
    await append(
        noon + timedelta(minutes=3), Decision.PERMIT, actor_user_id=user, individual_id=individual
    )
    await append(noon, Decision.PERMIT, actor_user_id=user, individual_id=individual)
    assert await last_at() == noon + timedelta(minutes=3)
    await append(
        noon + timedelta(minutes=5), Decision.PERMIT, actor_user_id=user, individual_id=individual
    )
    assert await last_at() == noon + timedelta(minutes=5)
    assert (await verify_chain(connection)).ok


def test_working_hours_are_local_time() -> None:
    hours = WorkingHours(
        start=time(7),
        end=time(18),
        days=["mon", "tue", "wed", "thu", "fri"],
        timezone="Europe/Stockholm",
    )
    monday = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday; Stockholm is UTC+1 in November
    assert not hours.outside(monday.replace(hour=6))  # 07:00 local
    assert hours.outside(monday.replace(hour=5, minute=59))
    assert hours.outside(monday.replace(hour=17))  # 18:00 local
    assert hours.outside(monday + timedelta(days=5, hours=12))  # Saturday noon
    with pytest.raises(ValueError, match="timezone"):
        WorkingHours(start=time(7), end=time(18), days=[], timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="before"):
        WorkingHours(start=time(18), end=time(7), days=[], timezone="UTC")


async def test_review_marks_are_audited_once_and_leave_the_queue(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    await _activity(client, app, world, scenario)
    queue = await _search(client, app, world, flagged="true", reviewed="false", decision="deny")
    target = queue[0]["seq"]
    before = await audit_head(connection)
    marked = await call(
        client,
        app,
        world.soc_auditor,
        "POST",
        f"/audit/events/{target}/review",
        json={"note": "Polisen saknade samtycke; nekad som avsett."},
    )
    assert marked.status_code == 201, marked.text
    [record] = await audit_events_after(connection, before)
    assert (record.action, record.resource_id) == ("audit.review", str(target))
    assert marked.json()["review_seq"] == record.seq
    assert "Polisen" not in (record.reason or "")
    again = await call(
        client, app, world.soc_auditor, "POST", f"/audit/events/{target}/review", json={"note": "x"}
    )
    assert again.status_code == 409
    assert target not in [
        e["seq"] for e in await _search(client, app, world, flagged="true", reviewed="false")
    ]
    assert target in [e["seq"] for e in await _search(client, app, world, reviewed="true")]
    read_back = await call(client, app, world.soc_auditor, "GET", f"/audit/events/{target}")
    assert read_back.json()["review"]["note"] == "Polisen saknade samtycke; nekad som avsett."
    assert read_back.json()["reviewed"] is True
    for body in ({}, {"note": ""}, {"note": "x", "extra": 1}):
        bad = await call(
            client, app, world.soc_auditor, "POST", f"/audit/events/{target}/review", json=body
        )
        assert bad.status_code == 422
    missing = await call(
        client, app, world.soc_auditor, "POST", "/audit/events/999999999/review", json={"note": "x"}
    )
    assert missing.status_code == 404


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_exports_hold_what_the_search_holds_and_are_audited(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    fmt: str,
) -> None:
    await _activity(client, app, world, scenario)
    params = {"individual_id": scenario.individual["id"]}
    searched = await _search(client, app, world, limit=200, **params)
    before = await audit_head(connection)
    exported = await call(
        client, app, world.soc_auditor, "GET", "/audit/export", params=params | {"format": fmt}
    )
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    events = await audit_events_after(connection, before)
    assert [e.action for e in events] == ["audit.export"]
    if fmt == "jsonl":
        rows = [json.loads(line) for line in exported.text.splitlines()]
    else:
        rows = list(csv.DictReader(io.StringIO(exported.text)))
    seqs = [int(r["seq"]) for r in rows]
    # everything about the individual up to and including the export's own record
    expected = [
        e.seq
        for e in reversed(await audit_events_after(connection, 0))
        if str(e.individual_id) == scenario.individual["id"]
    ]
    assert seqs == expected
    assert {e["seq"] for e in searched} <= set(seqs)


def test_csv_cells_cannot_become_formulas() -> None:
    assert csv_safe('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert csv_safe("+1") == "'+1"
    assert csv_safe("@SUM(A1)") == "'@SUM(A1)"
    assert csv_safe("entry.read") == "entry.read"
    assert csv_safe(None) == ""
    assert csv_safe(["a", "b"]) == "a,b"


async def test_the_access_extract_shows_who_read_and_who_was_refused(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    await _activity(client, app, world, scenario)
    path = f"/individuals/{scenario.individual['id']}/access-log"
    assert (await call(client, app, world.soc_coordinator, "GET", path)).status_code == 403
    before = await audit_head(connection)
    extract = await call(client, app, world.soc_auditor, "GET", path)
    assert extract.status_code == 200
    [recorded] = await audit_events_after(connection, before)
    assert (recorded.action, str(recorded.individual_id)) == (
        "audit.access_log",
        scenario.individual["id"],
    )
    entries = extract.json()["entries"]
    assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)
    refused = [e for e in entries if e["decision"] == "deny"]
    assert refused
    assert refused[0]["agency_name"] == world.pol.name
    assert refused[0]["what_sv"].startswith("Nekades")
    reads = [e for e in entries if e["action"] == "entry.read" and e["decision"] == "permit"]
    assert reads[0]["agency_name"] == world.soc.name
    assert reads[0]["user_name"] == world.soc_coordinator.display_name
    assert reads[0]["basis"] == "own_agency"

    html = await call(client, app, world.soc_auditor, "GET", path, params={"format": "html"})
    assert html.headers["content-type"].startswith("text/html")
    assert "Loggutdrag" in html.text
    assert world.pol.name in html.text
    assert "<script" not in html.text
    printable = await call(client, app, world.soc_auditor, "GET", path, params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(printable.text)))
    assert len(rows) == len(entries) + 2  # the JSON and HTML extracts were logged too
    assert {"tidpunkt", "myndighet", "vad", "grund"} <= set(rows[0])
    # times carry their zone (the JSON is UTC, the printable forms Stockholm time)
    assert all(re.search(r"[+-]0[12]:00$", row["tidpunkt"]) for row in rows)
    unknown = await call(
        client,
        app,
        world.soc_auditor,
        "GET",
        "/individuals/00000000-0000-0000-0000-000000000000/access-log",
    )
    assert unknown.status_code == 404


async def test_verify_over_the_api(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    before = await audit_head(connection)
    result = await call(client, app, world.soc_auditor, "GET", "/audit/verify")
    assert result.status_code == 200
    body = result.json()
    assert body["ok"] is True
    assert body["checked"] == body["head_seq"] == before
    assert body["first_bad_seq"] is None
    assert (
        await call(client, app, world.soc_caseworker, "GET", "/audit/verify")
    ).status_code == 403


async def test_review_marks_cannot_be_changed_or_removed(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
) -> None:
    [newest] = await _search(client, app, world, limit=1)
    marked = await call(
        client,
        app,
        world.soc_auditor,
        "POST",
        f"/audit/events/{newest['seq']}/review",
        json={"note": "Granskad."},
    )
    assert marked.status_code == 201
    for statement in (
        "UPDATE audit_review SET note = 'ändrad'",
        "DELETE FROM audit_review",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with connection.begin_nested():
                await connection.execute(text(statement))


async def test_the_swedish_extract_names_the_legal_basis_and_exports_write_json_booleans(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    granted = await call(
        client,
        app,
        world.pol_caseworker,
        "POST",
        f"/cases/{scenario.case['id']}/emergency-access",
        json={"legal_basis": "osl_10_18a", "reason": "Akut hot mot den unge"},
    )
    assert granted.status_code == 201
    path = f"/individuals/{scenario.individual['id']}/access-log"
    html = await call(client, app, world.soc_auditor, "GET", path, params={"format": "html"})
    assert "OSL 10 kap. 18 a §" in html.text
    exported = await call(
        client, app, world.soc_auditor, "GET", "/audit/export", params={"format": "csv"}
    )
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {row["reviewed"] for row in rows} == {"false"}
