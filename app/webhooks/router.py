from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.config import Settings
from app.db import SessionDep
from app.errors import ONE_RESOURCE, SIGNED_IN
from app.idempotency.deps import creates, idempotent
from app.pagination import CursorQuery, LimitQuery, Page
from app.webhooks import service as webhook_service
from app.webhooks.schemas import DeliveryRead, WebhookCreate, WebhookCreated, WebhookRead

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
_OWN = {**SIGNED_IN, 403: {"description": "Not a coordinator or administrator of the agency"}}
_ONE = {**ONE_RESOURCE, 403: _OWN[403]}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.post(
    "",
    dependencies=[audited("webhook.create"), idempotent()],
    status_code=201,
    responses={**_OWN, 422: {"description": "A URL that may not be used, or unknown types"}},
)
@creates
async def create_webhook(
    data: WebhookCreate, request: Request, actor: CurrentActor, session: SessionDep
) -> WebhookCreated:
    """Subscribe your agency to event types; deliveries are signed per Standard Webhooks
    with the `secret` returned here, once."""
    return await webhook_service.create(session, actor, _settings(request), data=data)


@router.get("", dependencies=[audited("webhook.list")], responses=_OWN)
async def list_webhooks(
    actor: CurrentActor, session: SessionDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[WebhookRead]:
    return await webhook_service.list_own(session, actor, limit=limit, cursor=cursor)


@router.get("/{webhook_id}", dependencies=[audited("webhook.read")], responses=_ONE)
async def get_webhook(
    webhook_id: uuid.UUID, actor: CurrentActor, session: SessionDep
) -> WebhookRead:
    return await webhook_service.get(session, actor, subscription_id=webhook_id)


@router.delete(
    "/{webhook_id}", dependencies=[audited("webhook.delete")], status_code=204, responses=_ONE
)
async def delete_webhook(
    webhook_id: uuid.UUID, actor: CurrentActor, session: SessionDep
) -> Response:
    await webhook_service.delete(session, actor, subscription_id=webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries", dependencies=[audited("webhook.deliveries")], responses=_ONE
)
async def list_deliveries(
    webhook_id: uuid.UUID,
    actor: CurrentActor,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[DeliveryRead]:
    """The delivery log, newest first: each attempt's outcome."""
    return await webhook_service.deliveries(
        session, actor, subscription_id=webhook_id, limit=limit, cursor=cursor
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    dependencies=[audited("webhook.retry")],
    responses={**_ONE, 409: {"description": "Already due"}},
)
async def retry_delivery(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, actor: CurrentActor, session: SessionDep
) -> DeliveryRead:
    """Send it again now, with the same `webhook-id`; a disabled subscription is active again."""
    return await webhook_service.retry(
        session, actor, subscription_id=webhook_id, delivery_id=delivery_id
    )
