"""Areas and their weekly levels: written by the coordinators of the municipality's social
services and police, read by the staff of its agencies (policies/lagesbild.cedar); each
level keeps which agencies agreed on it, and a correction keeps what it replaced."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from statistics import mean
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agencies.models import Agency, AgencyKind
from app.audit import writer as audit
from app.auth.actor import Actor
from app.errors import Conflict, ValidationFailed
from app.lagesbild import render
from app.lagesbild.models import Area, Assessment, AssessmentVersion, CriticalEvent
from app.lagesbild.schemas import (
    AreaCreate,
    AreaRead,
    AreaRef,
    AreaSummary,
    AssessmentPut,
    AssessmentRead,
    ImportResult,
    WeekRow,
    YearTable,
)
from app.pagination import Page
from app.policy import enforce, filters, get_engine
from app.policy.engine import Action, PolicyDecision
from app.policy.entities import AreaFacts

FIRST_YEAR, LAST_YEAR = 2000, 2100
_JOINT_KINDS = {AgencyKind.SOCIALTJANST.value, AgencyKind.POLIS.value}


def weeks_in(year: int) -> int:
    """52 or 53: the ISO week of 28 December is the year's last."""
    return date(year, 12, 28).isocalendar().week


def check_year(year: int, week: int | None = None) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValidationFailed.for_field("path.year", f"A year {FIRST_YEAR}-{LAST_YEAR}.", "range")
    if week is not None and not 1 <= week <= weeks_in(year):
        raise ValidationFailed.for_field(
            "path.week", f"{year} has weeks 1-{weeks_in(year)}.", "range"
        )


def level_label(level: int, lang: str) -> str:
    label = get_engine().reference.labels["lagesbild_level"][str(level)]
    return str(getattr(label, lang))


async def _agency(session: AsyncSession, actor: Actor) -> Agency:
    agency = await session.get(Agency, actor.agency_id)
    assert agency is not None  # the actor's agency exists
    return agency


def _facts(agency: Agency, municipality: str, area_id: uuid.UUID | None = None) -> AreaFacts:
    return AreaFacts(
        municipality=municipality,
        actor_agency_id=agency.id,
        actor_agency_kind=agency.kind,
        actor_agency_municipality=agency.municipality,
        id=str(area_id) if area_id else "new",
    )


def _area_read(area: Area) -> AreaRead:
    return AreaRead(
        id=area.id, name=area.name, district=area.district, municipality=area.municipality
    )


async def create_area(session: AsyncSession, actor: Actor, *, data: AreaCreate) -> AreaRead:
    """In the municipality of the caller's agency; 409 for a name it has already."""
    agency = await _agency(session, actor)
    decision = enforce.require(
        session,
        actor,
        Action.AREA_CREATE,
        _facts(agency, agency.municipality or ""),
        audit_action="area.create",
        hidden=False,
        resource_type="area",
    )
    assert agency.municipality is not None  # the permit compares it
    key = data.name.casefold()
    taken = await session.scalar(
        select(Area.id).where(Area.municipality == agency.municipality, Area.name_key == key)
    )
    if taken is not None:
        raise Conflict("The municipality has an area of that name already.")
    area = Area(
        id=uuid.uuid4(),
        municipality=agency.municipality,
        district=data.district,
        name=data.name,
        name_key=key,
        created_by=actor.id,
        created_at=datetime.now(UTC),
    )
    session.add(area)
    await session.flush()
    await audit.append(
        session,
        actor.record(
            "area.create",
            resource_type="area",
            resource_id=str(area.id),
            policy_id=decision.policy_id,
            basis="own_agency",
        ),
    )
    return _area_read(area)


async def _readable_areas(
    session: AsyncSession, actor: Actor, *, audit_action: str, district: str | None = None
) -> tuple[list[Area], PolicyDecision]:
    """The areas of the caller's municipality, if its role lets it read the lägesbild
    (403 otherwise); none for an agency without a municipality."""
    agency = await _agency(session, actor)
    decision = enforce.require(
        session,
        actor,
        Action.LAGESBILD_READ,
        _facts(agency, agency.municipality or ""),
        audit_action=audit_action,
        hidden=False,
        detail="The lägesbild is read by the staff of the municipality's agencies.",
        resource_type="area",
    )
    query = select(Area).where(filters.areas_visible_to(agency.municipality))
    if district is not None:
        query = query.where(Area.district == district)
    areas = list((await session.execute(query.order_by(Area.name_key))).scalars())
    return areas, decision


async def list_areas(
    session: AsyncSession, actor: Actor, *, district: str | None
) -> Page[AreaRead]:
    areas, decision = await _readable_areas(
        session, actor, audit_action="area.list", district=district
    )
    await audit.append(
        session,
        actor.record(
            "area.list",
            resource_type="area",
            policy_id=decision.policy_id,
            reason=f"{len(areas)} area(s)",
        ),
    )
    return Page[AreaRead](items=[_area_read(a) for a in areas], next_cursor=None)


async def _writable_area(
    session: AsyncSession, actor: Actor, area_id: uuid.UUID, audit_action: str
) -> tuple[Area, Agency, PolicyDecision]:
    """404 for an area the caller may not read (as for none), 403 if it may not write."""
    agency = await _agency(session, actor)
    area = await session.get(Area, area_id)
    fields: dict[str, Any] = {"resource_type": "area", "resource_id": str(area_id)}
    facts = _facts(agency, area.municipality if area else "", area_id)
    if area is None:
        raise enforce.not_found(session, actor, audit_action=audit_action, **fields)
    enforce.require(
        session,
        actor,
        Action.LAGESBILD_READ,
        facts,
        audit_action=audit_action,
        hidden=True,
        **fields,
    )
    decision = enforce.require(
        session,
        actor,
        Action.LAGESBILD_WRITE,
        facts,
        audit_action=audit_action,
        hidden=False,
        detail="Coordinators of social services and the police record the lägesbild.",
        **fields,
    )
    return area, agency, decision


async def _agreed_by(session: AsyncSession, agency: Agency, others: list[uuid.UUID]) -> list[str]:
    """The caller's agency and the others named, each a social services or police agency of
    the same municipality (422 otherwise)."""
    for i, other in enumerate(others):
        found = await session.get(Agency, other)
        if (
            found is None
            or found.kind not in _JOINT_KINDS
            or found.municipality != agency.municipality
        ):
            raise ValidationFailed.for_field(
                f"body.agreed_with.{i}",
                "Social services or the police of the same municipality.",
                "not_joint",
            )
    return sorted({str(agency.id), *(str(o) for o in others)})


def _assessment_read(row: Assessment) -> AssessmentRead:
    return AssessmentRead(
        area_id=row.area_id,
        year=row.year,
        week=row.week,
        level=row.level,
        level_sv=level_label(row.level, "sv"),
        level_en=level_label(row.level, "en"),
        critical_events=[CriticalEvent(e) for e in row.critical_events],
        note=row.note,
        agreed_by=[uuid.UUID(a) for a in row.agreed_by],
        version=row.version,
        recorded_by=row.recorded_by,
        recorded_at=row.recorded_at,
    )


async def _store(
    session: AsyncSession,
    actor: Actor,
    area: Area,
    year: int,
    week: int,
    values: dict[str, Any],
    keep: tuple[str, ...] = (),
) -> Assessment:
    """Insert, or correct keeping what the correction replaced; the fields in ``keep`` stay
    as stored (an import corrects the level, not the events or the note)."""
    now = datetime.now(UTC)
    row = await session.get(Assessment, (area.id, year, week), with_for_update=True)
    if row is None:
        row = Assessment(area_id=area.id, year=year, week=week, version=1, **values)
        row.recorded_by, row.recorded_at = actor.id, now
        session.add(row)
        await session.flush()
        return row
    session.add(
        AssessmentVersion(
            area_id=area.id,
            year=year,
            week=week,
            version=row.version,
            before={
                "level": row.level,
                "critical_events": row.critical_events,
                "note": row.note,
                "agreed_by": row.agreed_by,
                "recorded_by": str(row.recorded_by),
                "recorded_at": row.recorded_at.isoformat(),
            },
            recorded_by=actor.id,
            recorded_at=now,
        )
    )
    for name, value in values.items():
        if name not in keep:
            setattr(row, name, value)
    row.version += 1
    row.recorded_by, row.recorded_at = actor.id, now
    await session.flush()
    return row


async def put_assessment(
    session: AsyncSession,
    actor: Actor,
    *,
    year: int,
    week: int,
    area_id: uuid.UUID,
    data: AssessmentPut,
) -> AssessmentRead:
    check_year(year, week)
    area, agency, decision = await _writable_area(session, actor, area_id, "lagesbild.write")
    row = await _store(
        session,
        actor,
        area,
        year,
        week,
        {
            "level": data.level,
            "critical_events": sorted({e.value for e in data.critical_events}),
            "note": data.note,
            "agreed_by": await _agreed_by(session, agency, data.agreed_with),
        },
    )
    await audit.append(
        session,
        actor.record(
            "lagesbild.write",
            resource_type="area",
            resource_id=str(area.id),
            policy_id=decision.policy_id,
            basis="own_agency",
            reason=f"{year}-W{week:02d}, version {row.version}",
        ),
    )
    return _assessment_read(row)


async def year_table(
    session: AsyncSession, actor: Actor, *, year: int, district: str | None = None
) -> YearTable:
    """Every week of the year x every area of the caller's municipality: the level or null,
    the critical events; per area the mean (2 decimals), the maximum and the weeks at 4 or
    more."""
    check_year(year)
    areas, decision = await _readable_areas(
        session, actor, audit_action="lagesbild.read", district=district
    )
    by_id = {a.id: a for a in areas}
    rows = (
        await session.execute(
            select(Assessment).where(Assessment.year == year, Assessment.area_id.in_(by_id))
        )
    ).scalars()
    levels: dict[tuple[int, uuid.UUID], Assessment] = {(r.week, r.area_id): r for r in rows}
    weeks = []
    for week in range(1, weeks_in(year) + 1):
        cells = {a.id: levels.get((week, a.id)) for a in areas}
        weeks.append(
            WeekRow(
                week=week,
                levels={a.name: (c.level if (c := cells[a.id]) else None) for a in areas},
                critical={
                    a.name: [CriticalEvent(e) for e in c.critical_events]
                    for a in areas
                    if (c := cells[a.id]) and c.critical_events
                },
            )
        )
    summary = []
    for area in areas:
        values = [r.level for (_, a), r in levels.items() if a == area.id]
        summary.append(
            AreaSummary(
                area=area.name,
                mean=round(mean(values), 2) if values else None,
                max=max(values) if values else None,
                weeks_at_4_or_more=sum(1 for v in values if v >= 4),
            )
        )
    await audit.append(
        session,
        actor.record(
            "lagesbild.read",
            resource_type="lagesbild",
            policy_id=decision.policy_id,
            reason=f"{year}, {len(areas)} area(s)",
        ),
    )
    return YearTable(
        year=year,
        areas=[AreaRef(id=a.id, name=a.name) for a in areas],
        weeks=weeks,
        summary=summary,
    )


def heat_map(table: YearTable) -> str:
    labels = {level: level_label(level, "sv") for level in range(1, 6)}
    return render.to_svg(table, labels, f"Lägesbild {table.year}")


async def import_year(session: AsyncSession, actor: Actor, *, year: int, text: str) -> ImportResult:
    """The year table's CSV (``Vecka,<area>,…``, areas by name): every level of it, or —
    on the first problem, named by line or column — nothing. Empty cells leave a week as
    it is; a level given corrects the stored one (kept as a version)."""
    check_year(year)
    try:
        names, rows = render.parse_csv(text, weeks_in(year))
    except render.CsvProblem as problem:
        raise ValidationFailed.for_field(f"body.{problem.field}", str(problem), "csv") from None
    areas, _ = await _readable_areas(session, actor, audit_action="lagesbild.import")
    known = {a.name_key: a for a in areas}
    columns: dict[str, Area] = {}
    for name in names:
        if name.casefold() not in known:
            raise ValidationFailed.for_field(
                f"body.column {name}", "No area of that name in your municipality.", "unknown_area"
            )
        columns[name] = known[name.casefold()]
    count = 0
    decisions: dict[uuid.UUID, PolicyDecision] = {}
    agency = await _agency(session, actor)
    for row in rows:
        for name, level in row.levels.items():
            if level is None:
                continue
            area = columns[name]
            if area.id not in decisions:
                decisions[area.id] = (
                    await _writable_area(session, actor, area.id, "lagesbild.import")
                )[2]
            await _store(
                session,
                actor,
                area,
                year,
                row.week,
                {
                    "level": level,
                    "critical_events": [],
                    "note": None,
                    "agreed_by": sorted({str(agency.id)}),
                },
                keep=("critical_events", "note"),
            )
            count += 1
    await audit.append(
        session,
        actor.record(
            "lagesbild.import",
            resource_type="lagesbild",
            policy_id=next(iter(decisions.values())).policy_id if decisions else None,
            basis="own_agency",
            reason=f"{year}: {count} level(s), {len(rows)} week(s), {len(names)} area(s)",
        ),
    )
    return ImportResult(weeks=len(rows), areas=len(names), assessments=count)
