"""The worker's part: fan events out into deliveries, and send what is due.

- :func:`fan_out` turns new events into one delivery per subscription that asked for the
  type, under a lock on the fan-out cursor (one worker at a time, the rest skip).
- :func:`deliver_one` takes one due delivery with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL;
  SQLite runs one worker), decides whether the agency may see what the event is about
  *now*, signs it per Standard Webhooks (the ``standardwebhooks`` library), sends it with
  timeouts and no redirects, and marks it in the same transaction that held the lock. A
  worker killed between sending and marking leaves the row unmarked and unlocked: it is
  sent again, with the same ``webhook-id`` (at least once, never lost).
- Failures back off exponentially with jitter; a subscription failing for a day is
  disabled and its pending deliveries given up (a manual retry starts it again).
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from app.audit import writer as audit
from app.audit.records import Origin, Record
from app.auth.actor import Actor, ActorKind
from app.config import Settings
from app.db import Database
from app.events import service as events
from app.events.models import Event
from app.events.schemas import EventRead
from app.policy import filters
from app.users.models import Role
from app.webhooks import targets
from app.webhooks.models import (
    DeliveryStatus,
    SubscriptionStatus,
    WebhookCursor,
    WebhookDelivery,
    WebhookSubscription,
)

log = structlog.get_logger("app.webhooks")
FAN_OUT_BATCH = 500
USER_AGENT = "Samverkan-Webhooks/1"


def _now() -> datetime:
    return datetime.now(UTC)


def agency_reader(agency_id: uuid.UUID) -> Actor:
    """Who a delivery is decided for: a caseworker of the subscribing agency, without any
    emergency grant (a grant is a person's, never a system's)."""
    return Actor(
        kind=ActorKind.USER,
        id=uuid.UUID(int=0),
        agency_id=agency_id,
        roles=frozenset({Role.CASEWORKER}),
        scopes=frozenset(),
        username="webhooks",
        name="webhooks",
        origin=Origin(),
    )


async def fan_out(database: Database) -> int:
    """New events into deliveries; returns how many deliveries were made."""
    made = 0
    async with database.sessionmaker() as session, session.begin():
        cursor = (
            await session.execute(
                select(WebhookCursor).where(WebhookCursor.id == 1).with_for_update(skip_locked=True)
            )
        ).scalar_one_or_none()
        if cursor is None:  # another worker is fanning out
            return 0
        events = list(
            (
                await session.execute(
                    select(Event)
                    .where(Event.seq > cursor.event_seq)
                    .order_by(Event.seq)
                    .limit(FAN_OUT_BATCH)
                )
            ).scalars()
        )
        if not events:
            return 0
        subscriptions = list(
            (
                await session.execute(
                    select(WebhookSubscription).where(
                        WebhookSubscription.status == SubscriptionStatus.ACTIVE.value,
                        WebhookSubscription.deleted_at.is_(None),
                    )
                )
            ).scalars()
        )
        now = _now()
        for event in events:
            for subscription in subscriptions:
                if event.type not in subscription.types.split(","):
                    continue
                if event.occurred_at < subscription.created_at:
                    continue  # a subscription receives what happens from its start on
                session.add(
                    WebhookDelivery(
                        id=uuid.uuid4(),
                        subscription_id=subscription.id,
                        event_seq=event.seq,
                        event_id=event.id,
                        event_type=event.type,
                        status=DeliveryStatus.PENDING.value,
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
                made += 1
        cursor.event_seq = events[-1].seq
    return made


def payload(event: Event) -> str:
    """The body: Standard Webhooks' ``{type, timestamp, data}``; ``data`` is the thin event
    as ``GET /events`` shows it."""
    data = EventRead.model_validate(event, from_attributes=True).model_dump(mode="json")
    return json.dumps(
        {"type": event.type, "timestamp": data["occurred_at"], "data": data},
        separators=(",", ":"),
    )


def backoff(attempts: int, settings: Settings) -> timedelta:
    """Exponential, capped, with jitter (half to the full delay), so that receivers coming
    back are not met by every sender at once."""
    delay = min(
        settings.webhook_retry_base_seconds * 2 ** max(attempts - 1, 0),
        settings.webhook_retry_max_seconds,
    )
    return timedelta(seconds=delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True, slots=True)
class Attempt:
    delivered: bool
    status_code: int | None
    error: str | None


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The worker's one client (kept connections): timeouts, no redirects, no proxy or
    credentials from the environment."""
    timeout = httpx.Timeout(
        settings.webhook_timeout_seconds, connect=min(5.0, settings.webhook_timeout_seconds)
    )
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)


async def send(
    subscription: WebhookSubscription,
    delivery_id: uuid.UUID,
    body: str,
    settings: Settings,
    client: httpx.AsyncClient,
) -> Attempt:
    """One signed POST; never raises (the outcome says what happened)."""
    try:
        parts = targets.parse(subscription.url, settings)
        addresses = await targets.resolve(parts, settings)
    except targets.TargetRefused as exc:
        return Attempt(False, None, str(exc)[:200])
    url, host, extensions = targets.pinned(parts, addresses[0])
    now = _now()
    message_id = str(delivery_id)
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(subscription.secret).sign(message_id, now, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": host,
    }
    try:
        response = await client.post(
            url, content=body.encode(), headers=headers, extensions=extensions
        )
    except httpx.TimeoutException:
        return Attempt(False, None, "timed out")
    except httpx.HTTPError as exc:
        return Attempt(False, None, type(exc).__name__)
    if 200 <= response.status_code < 300:
        return Attempt(True, response.status_code, None)
    return Attempt(False, response.status_code, f"HTTP {response.status_code}")


_DUE = (
    select(WebhookDelivery)
    .where(WebhookDelivery.status == DeliveryStatus.PENDING.value)
    .order_by(WebhookDelivery.next_attempt_at)
    .limit(1)
    .with_for_update(skip_locked=True)
)


@dataclass(frozen=True, slots=True)
class _Claimed:
    delivery_id: uuid.UUID
    attempt: int
    subscription: WebhookSubscription
    body: str


async def _claim(database: Database, settings: Settings) -> _Claimed | bool:
    """Take the next due delivery for one attempt: a lease (``next_attempt_at`` moved past
    the attempt's longest duration) and its audit record, committed before anything is
    sent. ``False`` if nothing is due, ``True`` if one was settled without sending."""
    async with database.sessionmaker() as session, session.begin():
        now = _now()
        delivery = (
            await session.execute(_DUE.where(WebhookDelivery.next_attempt_at <= now))
        ).scalar_one_or_none()
        if delivery is None:
            return False
        subscription = await session.get(WebhookSubscription, delivery.subscription_id)
        assert subscription is not None
        if subscription.status != SubscriptionStatus.ACTIVE.value or subscription.deleted_at:
            delivery.status = DeliveryStatus.FAILED.value
            delivery.last_error = "the subscription is disabled"
            return True
        event = (
            await session.execute(select(Event).where(Event.seq == delivery.event_seq))
        ).scalar_one()
        reader = agency_reader(subscription.agency_id)
        visible = await session.scalar(
            select(exists().where(Event.seq == event.seq, filters.events_visible_to(reader, now)))
        )
        if not visible:  # decided now, at send time, not when the event happened
            delivery.status = DeliveryStatus.SKIPPED.value
            delivery.last_error = "not visible to the agency now"
            return True
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.next_attempt_at = now + timedelta(seconds=settings.webhook_lease_seconds)
        await audit.append(session, _sending(subscription, delivery, event))
        session.expunge(subscription)
        return _Claimed(delivery.id, delivery.attempts, subscription, payload(event))


async def deliver_one(
    database: Database, settings: Settings, client: httpx.AsyncClient | None = None
) -> bool:
    """Send the next due delivery, if any; ``True`` if there was one.

    No transaction is open while the request is in flight. A worker that dies after
    sending leaves the lease to run out: the delivery is due again and sent again, with
    the same ``webhook-id``. Two workers never hold one delivery: the claim skips locked
    rows and moves ``next_attempt_at`` past the attempt's longest duration."""
    claimed = await _claim(database, settings)
    if not isinstance(claimed, _Claimed):
        return claimed
    if client is None:
        async with http_client(settings) as own:
            attempt = await send(
                claimed.subscription, claimed.delivery_id, claimed.body, settings, own
            )
    else:
        attempt = await send(
            claimed.subscription, claimed.delivery_id, claimed.body, settings, client
        )
    async with database.sessionmaker() as session, session.begin():
        delivery = await session.get(WebhookDelivery, claimed.delivery_id, with_for_update=True)
        assert delivery is not None
        if delivery.attempts != claimed.attempt or delivery.status != DeliveryStatus.PENDING.value:
            return True  # the lease ran out and another attempt took over: it decides
        subscription = await session.get(
            WebhookSubscription, delivery.subscription_id, with_for_update=True
        )
        assert subscription is not None
        now = _now()
        delivery.last_status_code = attempt.status_code
        delivery.last_error = attempt.error
        if attempt.delivered:
            delivery.status = DeliveryStatus.DELIVERED.value
            delivery.delivered_at = now
            subscription.failing_since = None
            return True
        subscription.failing_since = subscription.failing_since or now
        if now - subscription.failing_since >= timedelta(
            seconds=settings.webhook_give_up_after_seconds
        ):
            await _disable(session, subscription, now)
        else:
            delivery.next_attempt_at = now + backoff(delivery.attempts, settings)
        log.info(
            "webhook delivery failed",
            subscription_id=str(subscription.id),
            delivery_id=str(delivery.id),
            attempts=delivery.attempts,
            error=attempt.error,
        )
        return True


def _sending(subscription: WebhookSubscription, delivery: WebhookDelivery, event: Event) -> Record:
    """What is about to leave for the agency's system: the event's ids (no content). On
    record before it is sent (fail closed), one record per attempt."""
    return Record(
        action="webhook.deliver",
        actor_agency_id=subscription.agency_id,
        actor_client_id=subscription.created_by_client_id,
        **events.disclosure_fields(event),
        reason=(
            f"{event.type} to webhook {subscription.id}, delivery {delivery.id}, "
            f"attempt {delivery.attempts}"
        ),
    )


async def _disable(session: AsyncSession, subscription: WebhookSubscription, now: datetime) -> None:
    """A day of failures: the subscription stops, its pending deliveries are given up."""
    subscription.status = SubscriptionStatus.DISABLED.value
    subscription.disabled_at = now
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.subscription_id == subscription.id,
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
        )
        .values(status=DeliveryStatus.FAILED.value, last_error="the subscription was disabled")
    )
    log.warning(
        "webhook subscription disabled after a day of failures",
        subscription_id=str(subscription.id),
    )
