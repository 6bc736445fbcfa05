"""The weekly lägesbild: areas, joint weekly levels with their history, the year table as
JSON, CSV and an SVG heat map, the CSV import (all or nothing), and who reads and writes."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from statistics import mean
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agencies.models import AgencyKind
from app.lagesbild.models import Assessment, AssessmentVersion
from app.users.models import Role, User
from tests.factories import make_agency, make_user
from tests.scenarios import World, call

YEAR = 2026  # 53 ISO weeks
AREAS = ["Vällingby", "Hässelby gård", "Råcksta"]


async def _ok(
    client: httpx.AsyncClient,
    app: FastAPI,
    user: User | None,
    method: str,
    path: str,
    status: int = 200,
    **kw: Any,
) -> Any:
    response = await call(client, app, user, method, path, **kw)
    assert response.status_code == status, response.text
    if response.headers.get("content-type", "").startswith(
        ("application/json", "application/problem")
    ):
        return response.json()
    return response.text


async def _areas(client: httpx.AsyncClient, app: FastAPI, world: World) -> dict[str, str]:
    made = {}
    for name in AREAS:
        area = await _ok(
            client,
            app,
            world.soc_coordinator,
            "POST",
            "/areas",
            201,
            json={"name": name, "district": "Hässelby-Vällingby"},
        )
        made[name] = area["id"]
    return made


def _year_csv(seed: int = 7) -> tuple[str, dict[int, dict[str, int | None]]]:
    """A year as the district keeps it: every week, every area, a few weeks not rated."""
    rng = random.Random(seed)
    table: dict[int, dict[str, int | None]] = {}
    lines = ["Vecka," + ",".join(AREAS)]
    for week in range(1, 54):
        row = {
            a: (None if rng.random() < 0.1 else rng.choice([1, 1, 2, 2, 3, 4, 5])) for a in AREAS
        }
        table[week] = row
        lines.append(f"{week}," + ",".join("" if row[a] is None else str(row[a]) for a in AREAS))
    return "\n".join(lines) + "\n", table


async def _count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Assessment)) or 0)


async def test_a_year_is_imported_read_back_identically_and_summed_up(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    await _areas(client, app, world)
    text, table = _year_csv()
    result = await _ok(
        client,
        app,
        world.pol_coordinator,
        "POST",
        f"/lagesbild/{YEAR}/import",
        content=text.encode(),
        headers={"Content-Type": "text/csv"},
    )
    filled = sum(1 for row in table.values() for v in row.values() if v is not None)
    assert result == {"weeks": 53, "areas": 3, "assessments": filled}
    csv_back = await _ok(
        client, app, world.skola_coordinator, "GET", f"/lagesbild/{YEAR}?format=csv"
    )
    # the same table, areas in the same order once sorted by name the way the API lists them
    assert _parse(csv_back) == {w: dict(sorted(r.items())) for w, r in table.items()}
    body = await _ok(client, app, world.soc_caseworker, "GET", f"/lagesbild/{YEAR}")
    assert [w["week"] for w in body["weeks"]] == list(range(1, 54))
    assert {w["week"]: w["levels"] for w in body["weeks"]} == table
    for summary in body["summary"]:
        values = [r[summary["area"]] for r in table.values() if r[summary["area"]] is not None]
        assert summary["mean"] == round(mean(values), 2)
        assert summary["max"] == max(values)
        assert summary["weeks_at_4_or_more"] == sum(v >= 4 for v in values)
    # the CSV read back imports to the same table (a second import corrects nothing)
    again = await _ok(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/lagesbild/{YEAR}/import",
        content=csv_back.encode(),
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    assert again["assessments"] == filled
    assert (
        await _ok(client, app, world.soc_caseworker, "GET", f"/lagesbild/{YEAR}?format=csv")
        == csv_back
    )


def _parse(text: str) -> dict[int, dict[str, int | None]]:
    lines = text.strip().split("\n")
    names = lines[0].split(",")[1:]
    return {
        int(cells[0]): {n: int(c) if c else None for n, c in zip(names, cells[1:], strict=True)}
        for cells in (line.split(",") for line in lines[1:])
    }


async def test_a_joint_assessment_keeps_who_agreed_and_its_corrections(
    client: httpx.AsyncClient, app: FastAPI, world: World, session: AsyncSession
) -> None:
    areas = await _areas(client, app, world)
    path = f"/lagesbild/{YEAR}/12/{areas['Vällingby']}"
    first = await _ok(
        client,
        app,
        world.soc_coordinator,
        "PUT",
        path,
        json={"level": 4, "critical_events": ["shooting"], "agreed_with": [str(world.pol.id)]},
    )
    assert set(first["agreed_by"]) == {str(world.soc.id), str(world.pol.id)}
    assert (first["level_sv"], first["level_en"]) == ("Allvarligt läge", "Serious")
    second = await _ok(
        client,
        app,
        world.pol_coordinator,
        "PUT",
        path,
        json={"level": 5, "critical_events": ["explosion", "shooting"]},
    )
    assert (second["version"], second["level"]) == (2, 5)
    [old] = (await session.execute(select(AssessmentVersion))).scalars()
    assert (old.version, old.before["level"], old.before["critical_events"]) == (1, 4, ["shooting"])
    table = await _ok(client, app, world.skola_coordinator, "GET", f"/lagesbild/{YEAR}")
    week = table["weeks"][11]
    assert week["levels"]["Vällingby"] == 5
    assert week["critical"] == {"Vällingby": ["explosion", "shooting"]}
    # the heat map: well-formed, the level's colour, the critical week marked, the legend
    svg = await _ok(client, app, world.skola_coordinator, "GET", f"/lagesbild/{YEAR}?format=svg")
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert "#a50026" in svg
    assert "explosion, shooting" in svg
    assert all(label in svg for label in ("Normalt läge", "Kritiskt läge", "kritisk händelse"))
    # an import corrects the level and keeps the week's critical events and note
    await _ok(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/lagesbild/{YEAR}/import",
        content="Vecka,Vällingby\n12,3\n".encode(),
        headers={"Content-Type": "text/csv"},
    )
    [stored] = (await session.execute(select(Assessment))).scalars()
    await session.refresh(stored)
    assert (stored.level, stored.critical_events, stored.version) == (
        3,
        ["explosion", "shooting"],
        3,
    )


@pytest.mark.parametrize(
    ("week", "body", "field"),
    [
        (12, {"level": 0}, "body.level"),
        (12, {"level": 6}, "body.level"),
        (12, {"level": "3"}, "body.level"),
        (54, {"level": 3}, "path.week"),
        (0, {"level": 3}, "path.week"),
        (12, {"level": 3, "critical_events": ["riot"]}, "body.critical_events.0"),
        (12, {"level": 3, "note": "Gripen: 20100303-2388"}, "body.note"),
        (12, {"level": 3, "note": "Gripen 1003032388 igår"}, "body.note"),
        (12, {"level": 3, "agreed_with": ["SKOLA"]}, "body.agreed_with.0"),
    ],
)
async def test_bad_assessments_name_the_field_and_store_nothing(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    session: AsyncSession,
    week: int,
    body: dict[str, Any],
    field: str,
) -> None:
    areas = await _areas(client, app, world)
    if body.get("agreed_with") == ["SKOLA"]:
        body = body | {"agreed_with": [str(world.skola.id)]}
    problem = await _ok(
        client,
        app,
        world.soc_coordinator,
        "PUT",
        f"/lagesbild/{YEAR}/{week}/{areas['Råcksta']}",
        422,
        json=body,
    )
    assert field in {e["field"] for e in problem["errors"]}
    assert "2388" not in str(problem)
    assert await _count(session) == 0


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("Vecka,Vällingby,Hässelby gård\n1,2\n", "body.line 2"),
        ("Vecka,Vällingby,Hässelby gård\n1,2,3\n1,2,3\n", "body.line 3"),
        ("Vecka,Vällingby,Hässelby gård\n54,2,3\n", "body.line 2"),
        ("Vecka,Vällingby,Hässelby gård\n5,2,6\n", "body.line 2, column Hässelby gård"),
        ("Vecka,Vällingby,Tensta\n5,2,3\n", "body.column Tensta"),
        ("Week,Vällingby\n5,2\n", "body.line 1"),
        ("Vecka,Vällingby,vällingby\n5,2,2\n", "body.line 1"),
    ],
    ids=[
        "missing cell",
        "duplicate week",
        "week 54",
        "level 6",
        "unknown area",
        "no header",
        "area twice",
    ],
)
async def test_a_bad_csv_imports_nothing_and_names_the_row_or_column(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    session: AsyncSession,
    text: str,
    field: str,
) -> None:
    await _areas(client, app, world)
    good = "Vecka,Vällingby\n1,2\n2,3\n"
    await _ok(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/lagesbild/{YEAR}/import",
        content=good.encode(),
        headers={"Content-Type": "text/csv"},
    )
    before = await _count(session)
    problem = await _ok(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/lagesbild/{YEAR}/import",
        422,
        content=text.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert {e["field"] for e in problem["errors"]} == {field}
    assert await _count(session) == before
    assert await _ok(
        client, app, world.soc_coordinator, "POST", f"/lagesbild/{YEAR}/import", 415, json={"a": 1}
    )


async def test_who_writes_and_who_reads(
    client: httpx.AsyncClient, app: FastAPI, world: World, session: AsyncSession
) -> None:
    areas = await _areas(client, app, world)
    body = {"name": "Grimsta"}
    # social services' and the police's coordinators write; no one else
    await _ok(client, app, world.pol_coordinator, "POST", "/areas", 201, json=body)
    await _ok(client, app, world.soc_coordinator, "POST", "/areas", 409, json={"name": "grimsta"})
    for user in (world.soc_caseworker, world.skola_coordinator, world.soc_admin, world.soc_auditor):
        await _ok(client, app, user, "POST", "/areas", 403, json={"name": "Blackeberg"})
        # who may read it is told it may not write; who may not read, that there is no such area
        hidden = 404 if user in (world.soc_admin, world.soc_auditor) else 403
        await _ok(
            client,
            app,
            user,
            "PUT",
            f"/lagesbild/{YEAR}/3/{areas['Råcksta']}",
            hidden,
            json={"level": 2},
        )
    # every staff member of the municipality's agencies reads; administrators and auditors not
    for user in (world.soc_caseworker, world.pol_caseworker, world.skola_coordinator):
        listed = await _ok(client, app, user, "GET", "/areas")
        assert {a["name"] for a in listed["items"]} == {*AREAS, "Grimsta"}
    for user in (world.soc_admin, world.soc_auditor):
        await _ok(client, app, user, "GET", f"/lagesbild/{YEAR}", 403)
    # another municipality sees none of it and cannot write to it
    solna = await make_agency(session, kind=AgencyKind.POLIS.value, municipality="Solna")
    outsider = await make_user(session, roles={Role.COORDINATOR}, agency=solna)
    assert (await _ok(client, app, outsider, "GET", "/areas"))["items"] == []
    assert (await _ok(client, app, outsider, "GET", f"/lagesbild/{YEAR}"))["areas"] == []
    await _ok(
        client,
        app,
        outsider,
        "PUT",
        f"/lagesbild/{YEAR}/3/{areas['Råcksta']}",
        404,
        json={"level": 2},
    )
    assert await _count(session) == 0


async def test_area_names_are_escaped_in_the_heat_map(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    await _ok(
        client,
        app,
        world.soc_coordinator,
        "POST",
        "/areas",
        201,
        json={"name": "<script>x</script> & co"},
    )
    svg = await _ok(client, app, world.soc_coordinator, "GET", f"/lagesbild/{YEAR}?format=svg")
    assert "<script>" not in svg
    ET.fromstring(svg)
    await _ok(client, app, world.soc_coordinator, "GET", "/lagesbild/1999", 422)
