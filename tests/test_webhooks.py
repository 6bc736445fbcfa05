"""Webhooks against a real HTTP receiver (pytest-httpserver, a server thread on loopback):
signed per Standard Webhooks and verified with the library's own verifier, retried with
backoff under the same ``webhook-id``, disabled after a day of failures, sent only if the
agency may see what the event is about when it is sent, and never lost when the worker is
killed between sending and marking (a real ``samverkan worker`` process, SIGKILLed)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pytest_httpserver import HTTPServer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook
from werkzeug import Request, Response

from app.agencies.models import AgencyKind
from app.audit.models import AuditEvent
from app.audit.records import Origin
from app.auth.service import user_actor
from app.cases import service as case_service
from app.cases.models import Programme
from app.cases.schemas import CaseCreate
from app.config import Environment, Settings
from app.db import Database
from app.entries import service as entry_service
from app.entries.schemas import EntryCreate
from app.events import timed
from app.events.models import Event
from app.individuals import service as individual_service
from app.individuals.schemas import IndividualCreate
from app.users.models import Role
from app.webhooks import delivery, targets
from app.webhooks import service as webhook_service
from app.webhooks.models import WebhookDelivery, WebhookSubscription
from app.webhooks.schemas import WebhookCreate
from tests.conftest import REPO_ROOT, make_settings, migrated_database
from tests.factories import make_agency, make_user
from tests.scenarios import Scenario, World, call, register_consent

ENTRY = {"category": "social_services", "title": "Hembesök", "body": "Samtal i hemmet."}


class Receiver:
    """What the receiving system saw, and how it answers (a queue of statuses)."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.seen: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self.lock = threading.Lock()
        server.expect_request("/hook", method="POST").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.seen.append((dict(request.headers), request.get_data()))
            status = self.answers.pop(0) if self.answers else 204
        return Response(status=status)

    @property
    def url(self) -> str:
        return self.server.url_for("/hook")


@pytest.fixture
def receiver(httpserver: HTTPServer) -> Receiver:
    return Receiver(httpserver)


def fast(settings: Settings, **overrides: Any) -> Settings:
    """The test app's settings with retries in milliseconds."""
    values = {
        "webhook_retry_base_seconds": 0.01,
        "webhook_retry_max_seconds": 0.05,
        "webhook_lease_seconds": 0.5,
        **overrides,
    }
    return settings.model_copy(update=values)


async def _subscribe(
    client: httpx.AsyncClient, app: FastAPI, user: Any, url: str, *types: str
) -> dict[str, Any]:
    response = await call(
        client, app, user, "POST", "/webhooks", json={"url": url, "types": list(types)}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _deliveries(
    client: httpx.AsyncClient, app: FastAPI, user: Any, hook: dict[str, Any]
) -> list[dict[str, Any]]:
    """The subscription's delivery log, newest first, as its agency sees it."""
    response = await call(client, app, user, "GET", f"/webhooks/{hook['id']}/deliveries")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def _record_entry(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> str:
    response = await call(
        client,
        app,
        world.soc_caseworker,
        "POST",
        f"/cases/{scenario.case['id']}/entries",
        json=ENTRY,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _work(app: FastAPI, settings: Settings, rounds: int = 1) -> None:
    database: Database = app.state.database
    for _ in range(rounds):
        await delivery.fan_out(database)
        while await delivery.deliver_one(database, settings):
            pass


async def test_a_signed_event_reaches_the_receiver_and_verifies(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    world: World,
    scenario: Scenario,
    receiver: Receiver,
) -> None:
    hook = await _subscribe(client, app, world.soc_coordinator, receiver.url, "entry.recorded")
    assert hook["secret"].startswith("whsec_")
    entry_id = await _record_entry(client, app, world, scenario)
    await _work(app, fast(settings))
    assert len(receiver.seen) == 1
    headers, body = receiver.seen[0]
    payload = Webhook(hook["secret"]).verify(body, headers)  # the library's own verifier
    assert payload["type"] == "entry.recorded"
    assert payload["data"]["resource_id"] == entry_id
    assert payload["data"]["case_id"] == scenario.case["id"]
    assert b"Hembes" not in body  # thin: ids and type, no content
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 44).verify(body, headers)  # another key does not verify
    [item] = await _deliveries(client, app, world.soc_coordinator, hook)
    assert item["status"] == "delivered"
    assert item["id"] == headers["Webhook-Id"]


async def test_failures_are_retried_with_backoff_under_one_webhook_id(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    world: World,
    scenario: Scenario,
    receiver: Receiver,
    session: AsyncSession,
) -> None:
    hook = await _subscribe(client, app, world.soc_coordinator, receiver.url, "entry.recorded")
    await _record_entry(client, app, world, scenario)
    receiver.answers = [500, 503]
    quick = fast(settings)
    deadline = time.monotonic() + 10
    while len(receiver.seen) < 3 and time.monotonic() < deadline:
        await _work(app, quick)
        await asyncio.sleep(0.02)
    ids = {headers["Webhook-Id"] for headers, _ in receiver.seen}
    assert len(receiver.seen) == 3
    assert len(ids) == 1  # the same message, attempted three times
    [row] = (await session.execute(select(WebhookDelivery))).scalars().all()
    await session.refresh(row)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 204)
    attempts = [
        e
        for e in (await session.execute(select(AuditEvent))).scalars()
        if e.action == "webhook.deliver"
    ]
    assert len(attempts) == 3  # every attempt on record before it left
    assert {str(a.actor_agency_id) for a in attempts} == {str(world.soc.id)}
    assert hook["id"] in (attempts[0].reason or "")


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    settings = make_settings("sqlite+aiosqlite://")
    delays = [delivery.backoff(n, settings).total_seconds() for n in range(1, 12)]
    base = settings.webhook_retry_base_seconds
    for n, delay in enumerate(delays, start=1):
        ceiling = min(base * 2 ** (n - 1), settings.webhook_retry_max_seconds)
        assert ceiling / 2 <= delay <= ceiling
    assert delays[-1] <= settings.webhook_retry_max_seconds


async def test_a_day_of_failures_disables_and_a_manual_retry_resumes(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    world: World,
    scenario: Scenario,
    receiver: Receiver,
    session: AsyncSession,
) -> None:
    hook = await _subscribe(client, app, world.soc_coordinator, receiver.url, "entry.recorded")
    await _record_entry(client, app, world, scenario)
    await session.execute(
        update(WebhookSubscription).values(failing_since=datetime.now(UTC) - timedelta(hours=25))
    )
    receiver.answers = [500]
    await _work(app, fast(settings))
    shown = await call(client, app, world.soc_coordinator, "GET", f"/webhooks/{hook['id']}")
    assert shown.json()["status"] == "disabled"
    [item] = await _deliveries(client, app, world.soc_coordinator, hook)
    assert item["status"] == "failed"
    # nothing more goes out while it is disabled
    await _record_entry(client, app, world, scenario)
    await _work(app, fast(settings))
    assert len(receiver.seen) == 1
    retried = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/webhooks/{hook['id']}/deliveries/{item['id']}/retry",
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "pending"
    again = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/webhooks/{hook['id']}/deliveries/{item['id']}/retry",
    )
    assert again.status_code == 409
    await _work(app, fast(settings))
    assert receiver.seen[-1][0]["Webhook-Id"] == item["id"]
    shown = await call(client, app, world.soc_coordinator, "GET", f"/webhooks/{hook['id']}")
    assert shown.json()["status"] == "active"


async def test_an_event_goes_out_only_if_the_agency_may_see_it_when_sent(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    world: World,
    scenario: Scenario,
    receiver: Receiver,
) -> None:
    """POL subscribes; SOC's entry is visible to POL under the consent when recorded, but
    the consent is withdrawn before the worker sends: the delivery is skipped."""
    hook = await _subscribe(client, app, world.pol_coordinator, receiver.url, "entry.recorded")
    consent = await register_consent(client, app, world, scenario)
    await _record_entry(client, app, world, scenario)
    await delivery.fan_out(app.state.database)
    withdrawn = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/consents/{consent.json()['id']}/withdrawal",
        json={"reason": "Återkallat"},
    )
    assert withdrawn.status_code == 200
    await _work(app, fast(settings))
    assert receiver.seen == []
    log = await _deliveries(client, app, world.pol_coordinator, hook)
    assert [i["status"] for i in log] == ["skipped"]
    # and an entry POL may see (its own) goes out
    own = await call(
        client,
        app,
        world.pol_caseworker,
        "POST",
        f"/cases/{scenario.case['id']}/entries",
        json=ENTRY | {"category": "police"},
    )
    assert own.status_code == 201, own.text
    await _work(app, fast(settings))
    assert len(receiver.seen) == 1


async def test_subscriptions_are_the_agencys_own(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario, receiver: Receiver
) -> None:
    hook = await _subscribe(client, app, world.soc_coordinator, receiver.url, "case.opened")
    assert (await call(client, app, world.soc_caseworker, "GET", "/webhooks")).status_code == 403
    assert (
        await call(client, app, world.pol_coordinator, "GET", f"/webhooks/{hook['id']}")
    ).status_code == 404
    assert (
        await call(client, app, world.pol_coordinator, "DELETE", f"/webhooks/{hook['id']}")
    ).status_code == 404
    mine = await call(client, app, world.soc_admin, "GET", "/webhooks")
    assert [h["id"] for h in mine.json()["items"]] == [hook["id"]]
    assert "secret" not in mine.json()["items"][0]
    assert (
        await call(client, app, world.soc_coordinator, "DELETE", f"/webhooks/{hook['id']}")
    ).status_code == 204
    assert (await call(client, app, world.soc_admin, "GET", "/webhooks")).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "https://user:pw@example.se/hook", "types": ["case.opened"]}, "body.url"),
        ({"url": "ftp://example.se/hook", "types": ["case.opened"]}, "body.url"),
        ({"url": "https://nowhere.invalid/hook", "types": ["case.opened"]}, "body.url"),
        ({"url": "https://example.se/hook#x", "types": ["case.opened"]}, "body.url"),
        ({"url": "https://example.se/hook", "types": ["case.exploded"]}, "body.types.0"),
        ({"url": "https://example.se/hook", "types": []}, "body.types"),
    ],
    ids=["credentials", "scheme", "unresolvable", "fragment", "unknown-type", "no-types"],
)
async def test_a_bad_subscription_is_a_422_and_nothing_is_stored(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    session: AsyncSession,
    body: dict[str, Any],
    field: str,
) -> None:
    response = await call(client, app, world.soc_coordinator, "POST", "/webhooks", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    assert "pw@" not in response.text
    assert (await session.execute(select(WebhookSubscription))).first() is None


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://127.0.0.1/hook", False),
        ("https://localhost/hook", False),
        ("https://10.1.2.3/hook", False),
        ("https://192.168.0.10/hook", False),
        ("https://169.254.169.254/latest/meta-data", False),
        ("https://[::1]/hook", False),
        ("https://[fd00::1]/hook", False),
        ("https://0.0.0.0/hook", False),
        ("https://8.8.8.8/hook", True),
        ("http://8.8.8.8/hook", False),  # https outside dev
    ],
)
async def test_private_and_loopback_targets_are_refused_outside_tests(
    url: str, allowed: bool
) -> None:
    production = make_settings("sqlite+aiosqlite://").model_copy(
        update={"env": Environment.PROD, "webhook_allow_private": False}
    )
    try:
        await targets.resolve(targets.parse(url, production), production)
    except targets.TargetRefused:
        assert not allowed
    else:
        assert allowed


async def test_a_redirect_is_not_followed(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    world: World,
    scenario: Scenario,
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/moved", method="POST").respond_with_data(
        "", status=307, headers={"Location": httpserver.url_for("/elsewhere")}
    )
    hook = await _subscribe(
        client, app, world.soc_coordinator, httpserver.url_for("/moved"), "entry.recorded"
    )
    await _record_entry(client, app, world, scenario)
    # the retry a minute away: one attempt, however slow the machine
    await _work(app, fast(settings, webhook_retry_base_seconds=60, webhook_retry_max_seconds=60))
    assert [r.path for r, _ in httpserver.log] == ["/moved"]
    log = await _deliveries(client, app, world.soc_coordinator, hook)
    assert log[0]["last_status_code"] == 307


async def test_time_makes_expiring_and_overdue_events_once_each(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
) -> None:
    consent = await register_consent(
        client,
        app,
        world,
        scenario,
        valid_until=(datetime.now(UTC) + timedelta(days=10)).isoformat(),
    )
    assert consent.status_code == 201
    action = await call(
        client,
        app,
        world.soc_caseworker,
        "POST",
        f"/cases/{scenario.case['id']}/actions",
        json={
            "type": "samtal",
            "title": "Samtal",
            "responsible_agency_id": str(world.soc.id),
            "due_date": (datetime.now(UTC).date() - timedelta(days=1)).isoformat(),
        },
    )
    assert action.status_code == 201, action.text
    assert await timed.emit_due(session) == 2
    assert await timed.emit_due(session) == 0  # once each
    made = {
        (e.type, str(e.resource_id))
        for e in (await session.execute(select(Event))).scalars()
        if e.type in {"consent.expiring", "action.overdue"}
    }
    assert made == {
        ("consent.expiring", consent.json()["id"]),
        ("action.overdue", action.json()["id"]),
    }


# --- a real worker process, killed between sending and marking ------------------------------


def _worker(url: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "SAMVERKAN_DATABASE_URL": url,
        "SAMVERKAN_DATA_DIR": str(tmp_path),
        "SAMVERKAN_WEBHOOK_ALLOW_PRIVATE": "true",
        "SAMVERKAN_WEBHOOK_LEASE_SECONDS": "1",
        "SAMVERKAN_WORKER_POLL_SECONDS": "0.1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _seed(database: Database, url: str, hook: str, entries: int) -> None:
    """A social services coordinator subscribed to ``entry.recorded`` at ``hook`` (before
    anything happens), and ``entries`` entries on a case of theirs, all committed."""
    async with database.sessionmaker() as session:
        soc = await make_agency(session, kind=AgencyKind.SOCIALTJANST.value)
        lead = user_actor(await make_user(session, roles={Role.COORDINATOR}, agency=soc), Origin())
        await webhook_service.create(
            session,
            lead,
            make_settings(url, webhook_allow_private=True),
            data=WebhookCreate(url=hook, types=["entry.recorded"]),
        )
        await session.commit()
        individual = await individual_service.create_individual(
            session,
            lead,
            data=IndividualCreate(given_name="A", family_name="B", birth_date=date(2001, 1, 1)),
        )
        case = await case_service.create_case(
            session, lead, data=CaseCreate(individual_id=individual.id, programme=Programme.SIG)
        )
        for n in range(entries):
            await entry_service.create_entry(
                session,
                lead,
                case_id=case.id,
                data=EntryCreate(category="social_services", title=f"t{n}", body="b"),
            )
        await session.commit()


async def test_a_worker_killed_between_send_and_mark_redelivers_the_same_message(
    backend: str, tmp_path: Path, httpserver: HTTPServer
) -> None:
    seen: list[str] = []
    worker: dict[str, subprocess.Popen[bytes]] = {}

    def handle(request: Request) -> Response:
        seen.append(request.headers["webhook-id"])
        if len(seen) == 1:  # the first worker dies before it can mark the delivery
            os.kill(worker["first"].pid, signal.SIGKILL)
        return Response(status=204)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handle)
    async with migrated_database(backend, tmp_path) as (url, database):
        await _seed(database, url, httpserver.url_for("/hook"), entries=1)
        worker["first"] = _worker(url, tmp_path)
        try:
            deadline = time.monotonic() + 60
            while worker["first"].poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            assert worker["first"].returncode == -signal.SIGKILL
            assert len(seen) == 1
            worker["second"] = _worker(url, tmp_path)
            while len(seen) < 2 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        finally:
            for process in worker.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=30)
        assert len(seen) == 2
        assert seen[0] == seen[1]  # the same message again: the receiver can tell
        async with database.sessionmaker() as session:
            [row] = (await session.execute(select(WebhookDelivery))).scalars().all()
            assert row.status == "delivered"
            assert str(row.id) == seen[0]


@pytest.mark.only_backend("postgresql")
async def test_several_workers_never_send_one_delivery_twice(
    backend: str, tmp_path: Path, httpserver: HTTPServer
) -> None:
    """Three workers at once, each with its own connections, over 40 deliveries: every
    webhook-id reaches the receiver exactly once."""
    seen: list[str] = []
    lock = threading.Lock()

    def handle(request: Request) -> Response:
        with lock:
            seen.append(request.headers["webhook-id"])
        return Response(status=204)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handle)
    async with migrated_database(backend, tmp_path, db_pool_size=4) as (url, database):
        settings = make_settings(url, webhook_allow_private=True)
        await _seed(database, url, httpserver.url_for("/hook"), entries=40)
        await delivery.fan_out(database)
        workers = [Database.from_settings(settings) for _ in range(3)]

        async def drain(worker: Database) -> None:
            while await delivery.deliver_one(worker, settings):
                pass

        try:
            await asyncio.gather(*(drain(w) for w in workers))
        finally:
            for worker in workers:
                await worker.dispose()
        assert len(seen) == 40
        assert len(set(seen)) == 40


@pytest.mark.parametrize(
    ("url", "address", "expected"),
    [
        (
            "http://hooks.example.se:8080/in?x=1",
            "192.0.2.7",
            ("http://192.0.2.7:8080/in?x=1", "hooks.example.se:8080", {}),
        ),
        (
            "https://hooks.example.se/in",
            "2001:db8::7",
            ("https://[2001:db8::7]/in", "hooks.example.se", {"sni_hostname": "hooks.example.se"}),
        ),
    ],
)
def test_a_request_goes_to_the_address_that_was_checked(
    url: str, address: str, expected: tuple[str, str, dict[str, str]]
) -> None:
    """No second lookup between the check and the connection (DNS rebinding): the checked
    address in the URL, the name in Host and, for https, in SNI and the certificate check."""
    settings = make_settings("sqlite+aiosqlite://")
    assert targets.pinned(targets.parse(url, settings), address) == expected


async def test_a_delivery_names_the_host_it_was_addressed_to(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    world: World,
    scenario: Scenario,
    receiver: Receiver,
) -> None:
    await _subscribe(client, app, world.soc_coordinator, receiver.url, "entry.recorded")
    await _record_entry(client, app, world, scenario)
    await _work(app, fast(settings))
    [(headers, _)] = receiver.seen
    assert headers["Host"] == receiver.url.split("/")[2]


async def test_retrying_a_delivery_of_another_subscription_is_an_audited_404(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    receiver: Receiver,
    session: AsyncSession,
) -> None:
    hook = await _subscribe(client, app, world.soc_coordinator, receiver.url, "case.opened")
    response = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/webhooks/{hook['id']}/deliveries/{uuid.uuid4()}/retry",
    )
    assert response.status_code == 404
    denials = [
        e
        for e in (await session.execute(select(AuditEvent))).scalars()
        if e.action == "webhook.retry"
    ]
    assert [(d.decision, d.policy_id, d.resource_id) for d in denials] == [
        ("deny", "not-found", hook["id"])
    ]
