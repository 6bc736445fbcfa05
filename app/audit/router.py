from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from app.audit import render
from app.audit import service as audit_service
from app.audit.checkpoints import CheckpointSigner
from app.audit.deps import audited
from app.audit.models import Decision
from app.audit.schemas import (
    AccessLogRead,
    AuditEventDetail,
    AuditEventRead,
    AuditFilters,
    CheckpointRead,
    ExportFormat,
    ExtractFormat,
    ReviewCreate,
    ReviewRead,
    SubjectRead,
    VerifyRead,
)
from app.auth.deps import CurrentActor
from app.db import SessionDep, database_of
from app.idempotency.deps import creates, idempotent
from app.inputs import AuditSeq, CleanStr, Timestamp
from app.pagination import CursorQuery, LimitQuery, Page

router = APIRouter(tags=["audit"])
_AUDITOR: dict[int | str, dict[str, str]] = {
    401: {"description": "No or invalid token"},
    403: {"description": "Auditors only"},
}
_ONE = {**_AUDITOR, 404: {"description": "No such record"}}


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


async def audit_filters(
    individual_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    agency_id: uuid.UUID | None = None,
    case_id: uuid.UUID | None = None,
    action: Annotated[CleanStr | None, Query(max_length=64)] = None,
    decision: Decision | None = None,
    flagged: bool | None = None,
    reviewed: bool | None = None,
    from_: Annotated[Timestamp | None, Query(alias="from")] = None,
    to: Timestamp | None = None,
) -> AuditFilters:
    """Times without a zone are UTC."""
    return AuditFilters(
        individual_id=individual_id,
        user_id=user_id,
        agency_id=agency_id,
        case_id=case_id,
        action=action,
        decision=decision,
        flagged=flagged,
        reviewed=reviewed,
        from_=_utc(from_),
        to=_utc(to),
    )


FiltersDep = Annotated[AuditFilters, Depends(audit_filters)]


@router.get("/audit/events", dependencies=[audited("audit.search")], responses=_AUDITOR)
async def search_events(
    actor: CurrentActor,
    session: SessionDep,
    filters: FiltersDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[AuditEventRead]:
    """Newest first. `flagged=true&reviewed=false` is the review work queue."""
    return await audit_service.search(session, actor, filters=filters, limit=limit, cursor=cursor)


@router.get("/audit/events/{seq}", dependencies=[audited("audit.read")], responses=_ONE)
async def get_event(seq: AuditSeq, actor: CurrentActor, session: SessionDep) -> AuditEventDetail:
    """One record, with its review mark and note if it was reviewed."""
    return await audit_service.get_event(session, actor, seq=seq)


@router.post(
    "/audit/events/{seq}/review",
    dependencies=[audited("audit.review"), idempotent()],
    status_code=201,
    responses={**_ONE, 409: {"description": "Reviewed already"}},
)
@creates
async def review_event(
    seq: AuditSeq, data: ReviewCreate, actor: CurrentActor, session: SessionDep
) -> ReviewRead:
    return await audit_service.review(session, actor, seq=seq, data=data)


async def _signer(request: Request) -> CheckpointSigner:
    signer: CheckpointSigner = request.app.state.checkpoint_signer
    return signer


SignerDep = Annotated[CheckpointSigner, Depends(_signer)]


@router.get("/audit/verify", responses=_AUDITOR)
async def verify(actor: CurrentActor, session: SessionDep, signer: SignerDep) -> VerifyRead:
    """Recomputes the whole chain and checks it against every signed checkpoint."""
    return await audit_service.verify(session, actor, signer)


@router.post("/audit/checkpoints", dependencies=[idempotent()], status_code=201, responses=_AUDITOR)
@creates
async def create_checkpoint(
    actor: CurrentActor, session: SessionDep, signer: SignerDep
) -> CheckpointRead:
    """Signs (seq, hash, at) of the chain's head with the deployment's Ed25519 key. Ship
    the result somewhere the operator does not control (docs/audit.md)."""
    return await audit_service.create_checkpoint(session, actor, signer)


@router.get("/audit/checkpoints", responses=_AUDITOR)
async def list_checkpoints(
    actor: CurrentActor, session: SessionDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[CheckpointRead]:
    """Newest first, in pages."""
    return await audit_service.list_checkpoints(session, actor, limit=limit, cursor=cursor)


@router.get(
    "/audit/export",
    dependencies=[audited("audit.export")],
    responses={
        **_AUDITOR,
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
            "description": "Every matching record, newest first, streamed",
        },
    },
    response_class=StreamingResponse,
)
async def export(
    request: Request,
    actor: CurrentActor,
    session: SessionDep,
    filters: FiltersDep,
    format: ExportFormat = ExportFormat.JSONL,
) -> StreamingResponse:
    """The same filters as /audit/events; streamed in constant memory. The export itself is
    recorded (and committed) before the first line is sent; it covers the log up to that
    record."""
    up_to = await audit_service.start_export(
        session, actor, filters=filters, export_format=format.value
    )
    database = database_of(request)

    async def lines() -> AsyncIterator[str]:
        if format is ExportFormat.CSV:
            yield audit_service.csv_line(audit_service.EXPORT_COLUMNS)
        async with database.connect() as connection:
            async for item in audit_service.export_rows(connection, filters, up_to):
                if format is ExportFormat.CSV:
                    yield audit_service.csv_line(
                        [getattr(item, c) for c in audit_service.EXPORT_COLUMNS]
                    )
                else:
                    yield audit_service.jsonl_line(item)

    media = "text/csv" if format is ExportFormat.CSV else "application/x-ndjson"
    name = f"samverkan-audit-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.{format.value}"
    return StreamingResponse(
        lines(),
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/audit/subjects",
    dependencies=[audited("audit.subject_lookup")],
    responses={**_AUDITOR, 422: {"description": "Not a valid personnummer"}},
)
async def find_subjects(
    personal_number: Annotated[str, Query(min_length=10, max_length=13)],
    actor: CurrentActor,
    session: SessionDep,
) -> Page[SubjectRead]:
    """Every registration of a person (one per registering agency), to start an access
    extract from a personnummer or samordningsnummer. Audited and flagged
    ``subject_lookup``; the number itself is not logged."""
    return await audit_service.find_subjects(session, actor, personal_number=personal_number)


@router.get(
    "/individuals/{individual_id}/access-log",
    dependencies=[audited("audit.access_log")],
    response_model=AccessLogRead,
    responses={
        **_ONE,
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
            "description": "The access extract; `format=html` prints in Swedish",
        },
    },
)
async def access_log(
    individual_id: uuid.UUID,
    actor: CurrentActor,
    session: SessionDep,
    format: ExtractFormat = ExtractFormat.JSON,
) -> Response:
    """For an auditor answering an individual's request (GDPR art. 15): which agency and
    user read or changed what about them, when, and on which basis — refusals included."""
    log: AccessLogRead = await audit_service.access_log(session, actor, individual_id=individual_id)
    if format is ExtractFormat.CSV:
        return Response(
            render.extract_csv(log),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="loggutdrag.csv"'},
        )
    if format is ExtractFormat.HTML:
        return HTMLResponse(render.extract_html(log))
    return Response(log.model_dump_json(), media_type="application/json")
