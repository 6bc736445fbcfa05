from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.audit.deps import audited
from app.auth.deps import CurrentActor
from app.db import SessionDep
from app.errors import ONE_RESOURCE, SIGNED_IN, UnsupportedMediaType, ValidationFailed
from app.idempotency.deps import creates, idempotent
from app.lagesbild import render
from app.lagesbild import service as lagesbild_service
from app.lagesbild.schemas import (
    AreaCreate,
    AreaRead,
    AssessmentPut,
    AssessmentRead,
    ImportResult,
    YearTable,
)
from app.pagination import Page

router = APIRouter(tags=["lägesbild"])
_READ = {**SIGNED_IN, 403: {"description": "Not staff of an agency of the municipality"}}
District = Annotated[str | None, Query(max_length=100, description="Only this district's areas.")]


class TableFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    SVG = "svg"


@router.post(
    "/areas",
    dependencies=[audited("area.create"), idempotent()],
    status_code=201,
    responses={**_READ, 409: {"description": "The municipality has an area of that name"}},
)
@creates
async def create_area(data: AreaCreate, actor: CurrentActor, session: SessionDep) -> AreaRead:
    """Coordinators of social services or the police: an area of their municipality."""
    return await lagesbild_service.create_area(session, actor, data=data)


@router.get("/areas", dependencies=[audited("area.list")], responses=_READ)
async def list_areas(
    actor: CurrentActor, session: SessionDep, district: District = None
) -> Page[AreaRead]:
    """The areas of your agency's municipality (one page)."""
    return await lagesbild_service.list_areas(session, actor, district=district)


@router.put(
    "/lagesbild/{year}/{week}/{area_id}",
    dependencies=[audited("lagesbild.write")],
    responses=ONE_RESOURCE,
)
async def put_assessment(
    year: int,
    week: int,
    area_id: uuid.UUID,
    data: AssessmentPut,
    actor: CurrentActor,
    session: SessionDep,
) -> AssessmentRead:
    """The week's jointly agreed level of the area (ISO week); a second PUT corrects it and
    keeps what it replaced. No personal data: a note with a personnummer is refused."""
    return await lagesbild_service.put_assessment(
        session, actor, year=year, week=week, area_id=area_id, data=data
    )


@router.get(
    "/lagesbild/{year}",
    dependencies=[audited("lagesbild.read")],
    response_model=YearTable,
    responses={
        **_READ,
        200: {
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "Vecka,Hässelby gård,Vällingby\n1,1,2\n",
                },
                "image/svg+xml": {"schema": {"type": "string"}},
            }
        },
    },
)
async def get_year(
    year: int,
    actor: CurrentActor,
    session: SessionDep,
    format: TableFormat = TableFormat.JSON,
    district: District = None,
) -> Response:
    """The year table, weeks x areas, as JSON, as CSV in the layout it is kept in
    (`Vecka,<area>,…`), or as an SVG heat map with the critical weeks marked."""
    table = await lagesbild_service.year_table(session, actor, year=year, district=district)
    if format is TableFormat.CSV:
        return Response(render.to_csv(table), media_type="text/csv; charset=utf-8")
    if format is TableFormat.SVG:
        return Response(lagesbild_service.heat_map(table), media_type="image/svg+xml")
    return Response(table.model_dump_json(), media_type="application/json")


@router.post(
    "/lagesbild/{year}/import",
    dependencies=[audited("lagesbild.import")],
    responses={**ONE_RESOURCE, 415: {"description": "Not text/csv"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def import_year(
    year: int, request: Request, actor: CurrentActor, session: SessionDep
) -> ImportResult:
    """The year table's CSV (`Vecka,<area>,…`, areas by name): all of it or, with the line
    or column named, nothing."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "text/csv":
        raise UnsupportedMediaType("This route takes the year table: send Content-Type: text/csv.")
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed.for_field("body", "The CSV must be UTF-8.", "encoding") from None
    return await lagesbild_service.import_year(session, actor, year=year, text=text)
