"""Retention with a clock: what is past its period is culled (with a tombstone), what is
not stays, a held case stays, and the audit log cut behind a signed anchor still verifies
(and still finds a tampered record) on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit.checkpoints import CheckpointSigner
from app.audit.models import AuditAnchor, AuditEvent
from app.audit.service import verify_all
from app.consents.models import ConsentDocument
from app.entries.models import Entry, EntryVersion
from app.policy import get_engine
from app.retention import service as retention
from app.retention.models import RetentionBatch, Tombstone
from app.retention.rules import RetentionRules
from tests.conftest import make_settings
from tests.scenarios import Scenario, World, call, register_consent

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _rules() -> RetentionRules:
    rules = get_engine().reference.retention
    assert rules is not None
    return rules


def _sessions(connection: AsyncConnection) -> Callable[[], AsyncSession]:
    """Sessions on the test's connection: each batch's COMMIT releases a savepoint."""
    return lambda: AsyncSession(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


def _signer(tmp_path: Path) -> CheckpointSigner:
    return CheckpointSigner(make_settings("sqlite+aiosqlite://", data_dir=tmp_path))


def _in(days: int) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


HOUSEKEEPING = {"event", "webhook_delivery", "idempotency"}


async def _run(connection: AsyncConnection, signer: CheckpointSigner, days: int) -> Any:
    result = await retention.run(
        _sessions(connection), _rules(), signer, _in(days), batch_size=2, audit_batch_size=50
    )
    # the outbox and the idempotency keys go after days: not what these tests look at
    personal = {k: n for k, n in result.counts.items() if k not in HOUSEKEEPING and n}
    return SimpleNamespace(
        counts=result.counts,
        personal=personal,
        batches=result.batches,
        anchor_seq=result.anchor_seq,
    )


async def _casework(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> dict[str, Any]:
    """An entry of social services and one of the police, a consent with its signed form,
    then the case closed: what retention has to work on."""
    case_id = scenario.case["id"]
    consent = await register_consent(client, app, world, scenario)
    assert consent.status_code == 201, consent.text
    document = await call(
        client,
        app,
        world.soc_coordinator,
        "PUT",
        f"/consents/{consent.json()['id']}/document",
        content=PDF,
        headers={"content-type": "application/pdf"},
    )
    assert document.status_code == 200, document.text
    entries = {}
    for user, category in (
        (world.soc_caseworker, "social_services"),
        (world.pol_caseworker, "police"),
    ):
        made = await call(
            client,
            app,
            user,
            "POST",
            f"/cases/{case_id}/entries",
            json={"category": category, "title": "Anteckning", "body": "Samtal."},
        )
        assert made.status_code == 201, made.text
        entries[category] = made.json()["id"]
    closed = await call(
        client,
        app,
        world.soc_coordinator,
        "PATCH",
        f"/cases/{case_id}",
        json={"status": "closed", "closure_reason": "completed"},
    )
    assert closed.status_code == 200, closed.text
    return {"consent": consent.json()["id"], "entries": entries}


async def _count(connection: AsyncConnection, query: Any) -> int:
    return int(await connection.scalar(select(func.count()).select_from(query.subquery())) or 0)


async def test_data_past_its_period_is_culled_and_data_before_it_is_not(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    tmp_path: Path,
) -> None:
    made = await _casework(client, app, world, scenario)
    signer = _signer(tmp_path)
    case_path, person_path = (
        f"/cases/{scenario.case['id']}",
        "/individuals/" + str(scenario.individual["id"]),
    )

    # A year on: nothing is due (the signed form goes two years after the consent ended).
    nothing = await _run(connection, signer, 365)
    assert nothing.personal == {}
    # Two and a half years on: the form, and only the form.
    forms = await _run(connection, signer, 365 + 180 + 365)
    assert forms.personal == {"consent_document": 1}
    assert await _count(connection, select(ConsentDocument)) == 0
    consent = await call(client, app, world.soc_coordinator, "GET", f"/consents/{made['consent']}")
    assert consent.status_code == 200

    # Three years on: the police's entry (their own rule), not social services'.
    police = await _run(connection, signer, 1100)
    assert police.personal == {"entry": 1}
    for category, status in (("police", 404), ("social_services", 200)):
        read = await call(
            client, app, world.soc_coordinator, "GET", f"/entries/{made['entries'][category]}"
        )
        assert read.status_code == status, category
    police_entry = made["entries"]["police"]
    assert (
        await _count(
            connection, select(EntryVersion).where(EntryVersion.entry_id == uuid.UUID(police_entry))
        )
        == 0
    )
    stone = await connection.scalar(
        select(Tombstone.rule_id).where(
            Tombstone.resource_type == "entry", Tombstone.resource_id == police_entry
        )
    )
    assert stone == "entry-police-3y"

    # Five years on: the case with everything still in it, then the individual.
    everything = await _run(connection, signer, 1830)
    assert everything.counts["case"] == 1
    assert everything.counts["individual"] == 1
    assert everything.counts["entry"] == 1
    assert everything.counts["consent"] == 1
    assert everything.counts["guardian"] == 2
    for user in (world.soc_coordinator, world.pol_caseworker):
        for path in (case_path, person_path, f"/entries/{made['entries']['social_services']}"):
            assert (await call(client, app, user, "GET", path)).status_code == 404, path
    assert await _count(connection, select(Entry)) == 0

    # Each batch is one audit record naming its rules and counts, and one batch row.
    batches = (await connection.execute(select(RetentionBatch.id))).scalars().all()
    records = (
        await connection.execute(
            select(AuditEvent.resource_id, AuditEvent.reason).where(
                AuditEvent.action == "retention.cull"
            )
        )
    ).all()
    runs = (nothing, forms, police, everything)
    assert len(batches) == len(records) == sum(r.batches for r in runs)
    assert {r[0] for r in records} == {str(b) for b in batches}
    assert any("case-5y" in (r[1] or "") for r in records)

    # The audit record of a culled entry resolves to its tombstone; the access extract of
    # the culled individual says what was culled.
    read_seq = await connection.scalar(
        select(func.min(AuditEvent.seq)).where(
            AuditEvent.action == "entry.create", AuditEvent.resource_id == police_entry
        )
    )
    detail = await call(client, app, world.soc_auditor, "GET", f"/audit/events/{read_seq}")
    assert detail.status_code == 200, detail.text
    assert detail.json()["culled"]["rule_id"] == "entry-police-3y"
    extract = await call(client, app, world.soc_auditor, "GET", f"{person_path}/access-log")
    assert extract.status_code == 200, extract.text
    culled = {(c["resource_type"], c["rule_id"]) for c in extract.json()["culled"]}
    assert ("individual", "individual-5y") in culled
    assert ("entry", "entry-police-3y") in culled
    assert ("consent_document", "consent-document-2y") in culled
    assert extract.json()["entries"]  # the log about them is kept for its own period

    assert (await verify_all(connection, signer)).ok


async def _hold(
    client: httpx.AsyncClient, app: FastAPI, world: World, body: dict[str, Any]
) -> dict[str, Any]:
    made = await call(client, app, world.soc_coordinator, "POST", "/legal-holds", json=body)
    assert made.status_code == 201, made.text
    return dict(made.json())


async def test_a_held_case_is_not_culled_until_its_lifting_is_approved(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    tmp_path: Path,
) -> None:
    await _casework(client, app, world, scenario)
    signer = _signer(tmp_path)
    hold = await _hold(
        client, app, world, {"case_id": scenario.case["id"], "reason": "Förundersökning"}
    )
    assert hold["status"] == "requested"
    # Asked for, not yet decided: it protects already.
    assert (await _run(connection, signer, 1830)).personal == {}
    path = f"/legal-holds/{hold['id']}"
    # The coordinator who asked cannot decide; the auditor can.
    assert (
        await call(client, app, world.soc_coordinator, "POST", f"{path}/approve", json={})
    ).status_code == 403
    approved = await call(client, app, world.soc_auditor, "POST", f"{path}/approve", json={})
    assert approved.status_code == 200
    assert approved.json()["status"] == "active"
    assert (await _run(connection, signer, 1830)).personal == {}
    # Lifting: asked for by a coordinator, still protecting until approved.
    lift = await call(
        client, app, world.soc_coordinator, "POST", f"{path}/lift", json={"reason": "Klart"}
    )
    assert lift.status_code == 200
    assert lift.json()["status"] == "lift_requested"
    assert (await _run(connection, signer, 1830)).personal == {}
    # Nothing is pending twice; the approval lifts it.
    lifted = await call(client, app, world.soc_auditor, "POST", f"{path}/approve", json={})
    assert lifted.json()["status"] == "lifted"
    again = await call(client, app, world.soc_auditor, "POST", f"{path}/approve", json={})
    assert again.status_code == 409
    culled = await _run(connection, signer, 1830)
    assert culled.counts["case"] == 1
    assert culled.counts["individual"] == 1
    actions = [
        a
        for (a,) in (
            await connection.execute(
                select(AuditEvent.action).where(AuditEvent.resource_id == hold["id"])
            )
        ).all()
    ]
    # the coordinator's refused try, two approvals and the 409
    assert actions.count("legal_hold.approve") == 4
    assert "legal_hold.request" in actions
    assert "legal_hold.lift" in actions


async def test_an_individual_hold_keeps_the_individual_and_every_case(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    tmp_path: Path,
) -> None:
    await _casework(client, app, world, scenario)
    await _hold(client, app, world, {"individual_id": scenario.individual["id"], "reason": "Tvist"})
    assert (await _run(connection, _signer(tmp_path), 4000)).counts.get("case", 0) == 0
    # ... and no audit record that names them, nor any after it (the log is a prefix).
    first = await connection.scalar(
        select(func.min(AuditEvent.seq)).where(
            AuditEvent.individual_id == uuid.UUID(scenario.individual["id"])
        )
    )
    assert await connection.scalar(select(AuditEvent.seq).where(AuditEvent.seq == first))


async def test_the_log_is_cut_behind_a_signed_anchor_and_the_rest_still_proves(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    backend: str,
    tmp_path: Path,
) -> None:
    await _casework(client, app, world, scenario)
    signer = _signer(tmp_path)
    head = int(await connection.scalar(select(func.max(AuditEvent.seq))) or 0)
    result = await _run(connection, signer, 3660)  # past the audit log's ten years
    assert result.counts["audit_record"] == head
    assert result.anchor_seq == head
    anchors = (await connection.execute(select(AuditAnchor))).scalars().all()
    assert len(anchors) == -(-head // 50)  # one per audit batch of 50
    assert await connection.scalar(select(func.min(AuditEvent.seq))) == head + 1
    verified = await verify_all(connection, signer)
    assert verified.ok, verified
    assert verified.anchor is not None
    assert verified.anchor.seq == head
    assert verified.checked == int(await connection.scalar(select(func.count(AuditEvent.seq))))

    # The database refuses to delete a record above the anchor, whoever asks.
    with pytest.raises(DBAPIError):
        async with connection.begin_nested():
            await connection.execute(text(f"DELETE FROM audit_event WHERE seq = {head + 1}"))

    # A record after the cut changed: still found.
    if backend == "postgresql":
        await connection.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
    else:
        await connection.execute(text("DROP TRIGGER audit_event_no_update"))
    await connection.execute(
        text(f"UPDATE audit_event SET action = 'innocent' WHERE seq = {head + 2}")
    )
    tampered = await verify_all(connection, signer)
    assert not tampered.ok
    assert tampered.first_bad_seq == head + 2


async def test_a_forged_anchor_does_not_verify(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    tmp_path: Path,
) -> None:
    """Someone who deletes older records cannot make up the anchor: it is signed."""
    await _casework(client, app, world, scenario)
    await _run(connection, _signer(tmp_path), 3660)
    other = _signer(tmp_path / "other")
    verified = await verify_all(connection, other)
    assert not verified.ok
    assert any("anchor" in p for p in verified.checkpoint_problems)


async def test_the_plan_counts_what_a_run_culls_without_personal_data(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    tmp_path: Path,
) -> None:
    await _casework(client, app, world, scenario)
    planned = await retention.plan(connection, _rules(), _in(1100))
    assert planned["kinds"]["entry"]["due"] == 1
    assert planned["kinds"]["entry"]["by_rule"] == {"entry-police-3y": 1}
    assert planned["kinds"]["consent_document"]["due"] == 1
    assert planned["kinds"]["case"]["due"] == 0
    assert planned["agencies"] == {
        str(world.pol.id): world.pol.name,
        str(world.soc.id): world.soc.name,
    }
    shown = str(planned)
    for secret in ("Kim", "Testsson", "20100303", "Samtal", "Förundersökning"):
        assert secret not in shown
    done = await _run(connection, _signer(tmp_path), 1100)
    assert done.personal == {"entry": 1, "consent_document": 1}
