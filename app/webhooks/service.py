"""Webhook subscriptions of an agency: made, listed, removed; their delivery log and a manual
retry. Who may: app/policy (``webhook.manage``: the agency's coordinators and
administrators, or its integration client with scope ``webhooks``). Every call is audited.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import writer as audit
from app.auth.actor import Actor, ActorKind
from app.config import Settings
from app.errors import Conflict
from app.events.models import EventType
from app.pagination import Page, cursor_datetime, cursor_uuid, decode_cursor, encode_cursor
from app.policy import enforce
from app.policy.engine import Action
from app.policy.entities import AgencyFacts
from app.webhooks import targets
from app.webhooks.models import (
    DeliveryStatus,
    SubscriptionStatus,
    WebhookDelivery,
    WebhookSubscription,
)
from app.webhooks.schemas import DeliveryRead, WebhookCreate, WebhookCreated, WebhookRead


def _now() -> datetime:
    return datetime.now(UTC)


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def to_read(subscription: WebhookSubscription) -> WebhookRead:
    return WebhookRead(
        id=subscription.id,
        agency_id=subscription.agency_id,
        url=subscription.url,
        types=[EventType(t) for t in subscription.types.split(",") if t],
        description=subscription.description,
        status=SubscriptionStatus(subscription.status),
        failing_since=subscription.failing_since,
        disabled_at=subscription.disabled_at,
        created_at=subscription.created_at,
    )


def _delivery_read(delivery: WebhookDelivery) -> DeliveryRead:
    return DeliveryRead(
        id=delivery.id,
        event_id=delivery.event_id,
        event_type=EventType(delivery.event_type),
        status=DeliveryStatus(delivery.status),
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_attempt_at=delivery.last_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
    )


def _may_manage(session: AsyncSession, actor: Actor, action: str, resource_id: str | None) -> None:
    """The role gate, on the caller's own agency: a 403 to those who may not manage."""
    enforce.require(
        session,
        actor,
        Action.WEBHOOK_MANAGE,
        AgencyFacts(id=actor.agency_id),
        audit_action=action,
        hidden=False,
        resource_type="webhook",
        resource_id=resource_id,
    )


async def _subscription(
    session: AsyncSession, actor: Actor, subscription_id: uuid.UUID, action: str
) -> WebhookSubscription:
    """Another agency's subscription (or a removed one) is a 404, like none at all."""
    _may_manage(session, actor, action, str(subscription_id))
    subscription = await session.get(WebhookSubscription, subscription_id)
    if subscription is not None and subscription.deleted_at is None:
        decision = enforce.decide(
            actor, Action.WEBHOOK_MANAGE, AgencyFacts(id=subscription.agency_id)
        )
        if decision.allowed:
            return subscription
    raise enforce.not_found(
        session,
        actor,
        audit_action=action,
        resource_type="webhook",
        resource_id=str(subscription_id),
    )


async def create(
    session: AsyncSession, actor: Actor, settings: Settings, *, data: WebhookCreate
) -> WebhookCreated:
    _may_manage(session, actor, "webhook.create", None)
    await targets.check(data.url, settings)
    secret = new_secret()
    subscription = WebhookSubscription(
        id=uuid.uuid4(),
        agency_id=actor.agency_id,
        url=data.url,
        types=",".join(sorted({t.value for t in data.types})),
        description=data.description,
        secret=secret,
        status=SubscriptionStatus.ACTIVE.value,
        created_by_user_id=actor.id if actor.kind is ActorKind.USER else None,
        created_by_client_id=actor.id if actor.kind is ActorKind.CLIENT else None,
        created_at=_now(),
    )
    session.add(subscription)
    await session.flush()
    await audit.append(
        session,
        actor.record("webhook.create", resource_type="webhook", resource_id=str(subscription.id)),
    )
    return WebhookCreated(**to_read(subscription).model_dump(), secret=secret)


async def list_own(
    session: AsyncSession, actor: Actor, *, limit: int, cursor: str | None
) -> Page[WebhookRead]:
    _may_manage(session, actor, "webhook.list", None)
    key = decode_cursor(cursor, 2)
    query = select(WebhookSubscription).where(
        WebhookSubscription.agency_id == actor.agency_id,
        WebhookSubscription.deleted_at.is_(None),
    )
    if key is not None:
        created = cursor_datetime(key[0])
        query = query.where(
            (WebhookSubscription.created_at > created)
            | (
                (WebhookSubscription.created_at == created)
                & (WebhookSubscription.id > cursor_uuid(key[1]))
            )
        )
    rows = list(
        (
            await session.execute(
                query.order_by(WebhookSubscription.created_at, WebhookSubscription.id).limit(
                    limit + 1
                )
            )
        ).scalars()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    await audit.append(session, actor.record("webhook.list", resource_type="webhook"))
    last = rows[-1] if rows else None
    next_cursor = (
        encode_cursor([last.created_at.isoformat(), str(last.id)]) if more and last else None
    )
    return Page[WebhookRead](items=[to_read(s) for s in rows], next_cursor=next_cursor)


async def get(session: AsyncSession, actor: Actor, *, subscription_id: uuid.UUID) -> WebhookRead:
    subscription = await _subscription(session, actor, subscription_id, "webhook.read")
    await audit.append(
        session,
        actor.record("webhook.read", resource_type="webhook", resource_id=str(subscription.id)),
    )
    return to_read(subscription)


async def delete(session: AsyncSession, actor: Actor, *, subscription_id: uuid.UUID) -> None:
    """Removed: nothing more is sent; its delivery log stays for the record."""
    subscription = await _subscription(session, actor, subscription_id, "webhook.delete")
    now = _now()
    subscription.deleted_at = now
    subscription.status = SubscriptionStatus.DISABLED.value
    subscription.disabled_at = subscription.disabled_at or now
    pending = await session.execute(
        select(WebhookDelivery).where(
            WebhookDelivery.subscription_id == subscription.id,
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
        )
    )
    for delivery in pending.scalars():
        delivery.status = DeliveryStatus.FAILED.value
        delivery.last_error = "the subscription was removed"
    await session.flush()
    await audit.append(
        session,
        actor.record("webhook.delete", resource_type="webhook", resource_id=str(subscription.id)),
    )


async def deliveries(
    session: AsyncSession,
    actor: Actor,
    *,
    subscription_id: uuid.UUID,
    limit: int,
    cursor: str | None,
) -> Page[DeliveryRead]:
    """The delivery log, newest first."""
    subscription = await _subscription(session, actor, subscription_id, "webhook.deliveries")
    key = decode_cursor(cursor, 2)
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription.id)
    if key is not None:
        created = cursor_datetime(key[0])
        query = query.where(
            (WebhookDelivery.created_at < created)
            | ((WebhookDelivery.created_at == created) & (WebhookDelivery.id < cursor_uuid(key[1])))
        )
    rows = list(
        (
            await session.execute(
                query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(
                    limit + 1
                )
            )
        ).scalars()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    await audit.append(
        session,
        actor.record(
            "webhook.deliveries",
            resource_type="webhook",
            resource_id=str(subscription.id),
            reason=f"{len(rows)} item(s)",
        ),
    )
    last = rows[-1] if rows else None
    next_cursor = (
        encode_cursor([last.created_at.isoformat(), str(last.id)]) if more and last else None
    )
    return Page[DeliveryRead](items=[_delivery_read(d) for d in rows], next_cursor=next_cursor)


async def retry(
    session: AsyncSession, actor: Actor, *, subscription_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryRead:
    """Send it again now (the same ``webhook-id``); a disabled subscription is active again.
    409 for a delivery that is already due."""
    subscription = await _subscription(session, actor, subscription_id, "webhook.retry")
    delivery = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.subscription_id != subscription.id:
        raise enforce.not_found(
            session,
            actor,
            audit_action="webhook.retry",
            resource_type="webhook",
            resource_id=str(subscription.id),
            reason=f"no delivery {delivery_id} of this subscription",
        )
    if delivery.status == DeliveryStatus.PENDING.value:
        raise Conflict("The delivery is already due; it will be sent shortly.")
    now = _now()
    delivery.status = DeliveryStatus.PENDING.value
    delivery.next_attempt_at = now
    if subscription.status == SubscriptionStatus.DISABLED.value:
        subscription.status = SubscriptionStatus.ACTIVE.value
        subscription.disabled_at = None
        subscription.failing_since = None
    await session.flush()
    await audit.append(
        session,
        actor.record(
            "webhook.retry",
            resource_type="webhook",
            resource_id=str(subscription.id),
            reason=f"delivery {delivery.id}",
        ),
    )
    return _delivery_read(delivery)
