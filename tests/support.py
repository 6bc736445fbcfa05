"""Routes that exist only in tests, to drive the request machinery the domains will use."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Query
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.db import SessionDep
from app.errors import Conflict

PROBE_TABLE_DDL = (
    "CREATE TABLE probe (id INTEGER PRIMARY KEY, note VARCHAR(50) NOT NULL, "
    "parent_id INTEGER REFERENCES probe (id) DEFERRABLE INITIALLY DEFERRED)"
)


class ProbeIn(BaseModel):
    id: int
    note: str = Field(min_length=1, max_length=50)
    personal_number: str | None = Field(default=None, pattern=r"^\d{12}$")
    password: str | None = Field(default=None, max_length=5)
    parent_id: int | None = None


def probe_router() -> APIRouter:
    router = APIRouter(prefix="/test")

    @router.post("/probe", status_code=201)
    async def create_probe(body: ProbeIn, session: SessionDep) -> dict[str, int]:
        await session.execute(
            text("INSERT INTO probe (id, note, parent_id) VALUES (:id, :note, :parent_id)"),
            {"id": body.id, "note": body.note, "parent_id": body.parent_id},
        )
        return {"id": body.id}

    @router.post("/probe-then-fail")
    async def create_then_fail(body: ProbeIn, session: SessionDep) -> None:
        await session.execute(
            text("INSERT INTO probe (id, note) VALUES (:id, :note)"),
            {"id": body.id, "note": body.note},
        )
        await session.flush()
        raise Conflict("refused after writing")

    @router.post("/probe-then-crash")
    async def create_then_crash(body: ProbeIn, session: SessionDep) -> None:
        await session.execute(
            text("INSERT INTO probe (id, note) VALUES (:id, :note)"),
            {"id": body.id, "note": body.note},
        )
        raise RuntimeError(f"boom for 199001011234 and {body.note}")

    @router.get("/search")
    async def search(personal_number: Annotated[str, Query(pattern=r"^\d{12}$")]) -> dict[str, int]:
        return {"matches": 0}

    @router.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return router


def install_probe(app: FastAPI) -> FastAPI:
    app.include_router(probe_router())
    return app
