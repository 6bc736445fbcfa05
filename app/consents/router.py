from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.consents import service as consent_service
from app.consents.documents import EXTENSIONS
from app.consents.schemas import ConsentCreate, ConsentRead, DocumentRead, WithdrawalIn
from app.consents.uploads import read_upload
from app.db import SessionDep
from app.errors import ONE_RESOURCE, STATE_CHANGE
from app.idempotency.deps import creates, idempotent
from app.pagination import Page

router = APIRouter(tags=["consents"])
_ONE = ONE_RESOURCE
_CHANGE = STATE_CHANGE


@router.post(
    "/cases/{case_id}/consents",
    dependencies=[audited("consent.register"), idempotent()],
    status_code=201,
    responses=_CHANGE,
)
@creates
async def register_consent(
    case_id: uuid.UUID, data: ConsentCreate, actor: CurrentActor, session: SessionDep
) -> ConsentRead:
    return await consent_service.register_consent(session, actor, case_id=case_id, data=data)


@router.get("/cases/{case_id}/consents", dependencies=[audited("consent.list")], responses=_ONE)
async def list_consents(
    case_id: uuid.UUID, actor: CurrentActor, session: SessionDep
) -> Page[ConsentRead]:
    """A case's consents, oldest first, in one page (`next_cursor` null)."""
    return await consent_service.list_consents(session, actor, case_id=case_id)


@router.get("/consents/{consent_id}", dependencies=[audited("consent.read")], responses=_ONE)
async def get_consent(
    consent_id: uuid.UUID, actor: CurrentActor, session: SessionDep
) -> ConsentRead:
    return await consent_service.get_consent(session, actor, consent_id=consent_id)


@router.post(
    "/consents/{consent_id}/withdrawal",
    dependencies=[audited("consent.withdraw")],
    responses=_CHANGE,
)
async def withdraw_consent(
    consent_id: uuid.UUID, data: WithdrawalIn, actor: CurrentActor, session: SessionDep
) -> ConsentRead:
    return await consent_service.withdraw_consent(session, actor, consent_id=consent_id, data=data)


@router.put(
    "/consents/{consent_id}/document",
    dependencies=[audited("consent.document.store")],
    responses={**_CHANGE, 413: {"description": "Too large"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                **{
                    t: {"schema": {"type": "string", "format": "binary"}}
                    for t in ("application/pdf", "image/png", "image/jpeg")
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    },
)
async def store_document(
    consent_id: uuid.UUID, request: Request, actor: CurrentActor, session: SessionDep
) -> DocumentRead:
    """The signed form as the raw body, or as `multipart/form-data` in the field `file`.
    Its type is read from its content, not the header. The body is read only once the
    caller may store it."""

    async def read_body(limit: int) -> bytes:
        return await read_upload(request, limit)

    return await consent_service.store_document(
        session, actor, consent_id=consent_id, read_body=read_body
    )


@router.get(
    "/consents/{consent_id}/document",
    dependencies=[audited("consent.document.read")],
    response_class=Response,
    responses={
        **_ONE,
        200: {
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in ("application/pdf", "image/png", "image/jpeg")
            }
        },
    },
)
async def read_document(
    consent_id: uuid.UUID, actor: CurrentActor, session: SessionDep
) -> Response:
    document = await consent_service.read_document(session, actor, consent_id=consent_id)
    name = f"samtycke-{consent_id}.{EXTENSIONS[document.media_type]}"
    return Response(
        document.content,
        media_type=document.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-SHA256": document.sha256,
        },
    )
