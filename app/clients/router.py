from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.clients import service as client_service
from app.clients.schemas import ClientCreate, ClientCreated, ClientRead
from app.db import SessionDep
from app.idempotency.deps import creates, idempotent
from app.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(prefix="/clients", tags=["clients"])
_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "No or invalid token"},
    403: {"description": "Not an administrator"},
}
_ONE = {**_ERRORS, 404: {"description": "No such client"}}


@router.post(
    "", dependencies=[audited("client.create"), idempotent()], status_code=201, responses=_ERRORS
)
@creates
async def create_client(
    data: ClientCreate, actor: CurrentActor, session: SessionDep
) -> ClientCreated:
    return await client_service.create_client(session, actor, data=data)


@router.get("", dependencies=[audited("client.list")], responses=_ERRORS)
async def list_clients(
    actor: CurrentActor, session: SessionDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[ClientRead]:
    return await client_service.list_clients(session, actor, limit=limit, cursor=cursor)


@router.get("/{client_id}", dependencies=[audited("client.read")], responses=_ONE)
async def get_client(client_id: uuid.UUID, actor: CurrentActor, session: SessionDep) -> ClientRead:
    return client_service.to_read(
        await client_service.get_client(session, actor, client_id=client_id)
    )


@router.delete(
    "/{client_id}", dependencies=[audited("client.revoke")], status_code=204, responses=_ONE
)
async def revoke_client(client_id: uuid.UUID, actor: CurrentActor, session: SessionDep) -> Response:
    await client_service.revoke_client(session, actor, client_id=client_id)
    return Response(status_code=204)
