"""What a culled record's id resolves to: "culled on D under rule R" (the auditors' API)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.retention.models import Tombstone
from app.retention.schemas import CulledRead


def _read(row: Tombstone) -> CulledRead:
    return CulledRead.model_validate(row, from_attributes=True)


async def of_resource(
    session: AsyncSession, resource_type: str | None, resource_id: str | None
) -> CulledRead | None:
    if resource_type is None or resource_id is None:
        return None
    row = await session.get(Tombstone, (resource_type, resource_id))
    return _read(row) if row is not None else None


async def of_individual(session: AsyncSession, individual_id: uuid.UUID) -> list[CulledRead]:
    """Everything culled about the individual, oldest culling first."""
    rows = await session.execute(
        select(Tombstone)
        .where(Tombstone.individual_id == individual_id)
        .order_by(Tombstone.culled_at, Tombstone.resource_type, Tombstone.resource_id)
    )
    return [_read(row) for row in rows.scalars()]
