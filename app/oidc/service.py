"""What the sign-in page is told: each configured provider whose agency is registered."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agencies.models import Agency
from app.oidc.providers import Provider
from app.oidc.schemas import ProviderRead


async def list_providers(
    session: AsyncSession, providers: dict[str, Provider]
) -> list[ProviderRead]:
    """A provider whose agency is not registered yet is left out: nobody can sign in
    through it."""
    if not providers:
        return []
    numbers = {p.agency for p in providers.values()}
    rows = await session.execute(
        select(Agency.organisation_number, Agency.id).where(Agency.organisation_number.in_(numbers))
    )
    agency_of: dict[str, uuid.UUID] = {row.organisation_number: row.id for row in rows}
    return [
        ProviderRead(id=p.id, name=p.name, agency_id=agency_of[p.agency], issuer=p.issuer)
        for p in providers.values()
        if p.agency in agency_of
    ]
