from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.db import SessionDep
from app.idempotency.deps import creates, idempotent
from app.pagination import CursorQuery, LimitQuery, Page
from app.users import service as user_service
from app.users.schemas import UserCreate, UserRead, UserUpdate

router = APIRouter(prefix="/users", tags=["users"])
_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "No or invalid token"},
    403: {"description": "Not an administrator"},
}
_ONE = {**_ERRORS, 404: {"description": "No such user"}}


@router.post(
    "",
    dependencies=[audited("user.create"), idempotent()],
    status_code=201,
    responses={**_ERRORS, 409: {"description": "Username taken"}},
)
@creates
async def create_user(
    data: UserCreate, actor: CurrentActor, session: SessionDep, request: Request
) -> UserRead:
    providers = request.app.state.identity_providers
    user = await user_service.create_user(session, actor, data=data, providers=providers)
    return user_service.to_read(user)


@router.get("", dependencies=[audited("user.list")], responses=_ERRORS)
async def list_users(
    actor: CurrentActor, session: SessionDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[UserRead]:
    return await user_service.list_users(session, actor, limit=limit, cursor=cursor)


@router.get("/{user_id}", dependencies=[audited("user.read")], responses=_ONE)
async def get_user(user_id: uuid.UUID, actor: CurrentActor, session: SessionDep) -> UserRead:
    return user_service.to_read(await user_service.get_user(session, actor, user_id=user_id))


@router.patch(
    "/{user_id}",
    dependencies=[audited("user.update")],
    responses={**_ONE, 409: {"description": "Would lock you out"}},
)
async def update_user(
    user_id: uuid.UUID,
    data: UserUpdate,
    actor: CurrentActor,
    session: SessionDep,
    request: Request,
) -> UserRead:
    providers = request.app.state.identity_providers
    user = await user_service.update_user(
        session, actor, user_id=user_id, data=data, providers=providers
    )
    return user_service.to_read(user)
