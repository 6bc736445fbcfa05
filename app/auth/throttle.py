"""Failed-login throttling per username and per client address, kept in the database.

Kept in the database rather than in process memory: every worker and every instance
behind the load balancer must see the same count. Keys are digests, so neither
usernames (a mistyped password is often typed into that field) nor addresses are stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import LoginThrottle
from app.security import fingerprint


def key_for(kind: str, value: str) -> str:
    return fingerprint(f"{kind}:{value}")


async def blocked_until(
    session: AsyncSession, keys: Sequence[str], now: datetime
) -> datetime | None:
    """The latest time until which any of ``keys`` is blocked, if one is blocked now."""
    rows = await session.execute(
        select(LoginThrottle.blocked_until).where(
            LoginThrottle.key.in_(keys), LoginThrottle.blocked_until > now
        )
    )
    times = [t for t in rows.scalars() if t is not None]
    return max(times) if times else None


async def register_failure(
    session: AsyncSession,
    limits: Sequence[tuple[str, int]],
    now: datetime,
    window: timedelta,
) -> None:
    """Count one failure against each ``(key, limit)``; block a key that reaches its limit.

    One upsert per key, so concurrent failures from several workers are all counted.
    """
    dialect = (await session.connection()).dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for key, limit in limits:
        stmt = insert(LoginThrottle).values(
            key=key,
            failures=1,
            window_started_at=now,
            blocked_until=now + window if limit <= 1 else None,
        )
        window_over = LoginThrottle.window_started_at <= now - window
        failures = case((window_over, 1), else_=LoginThrottle.failures + 1)
        stmt = stmt.on_conflict_do_update(
            index_elements=[LoginThrottle.key],
            set_={
                "failures": failures,
                "window_started_at": case(
                    (window_over, now), else_=LoginThrottle.window_started_at
                ),
                "blocked_until": case(
                    (failures >= limit, now + window), else_=LoginThrottle.blocked_until
                ),
            },
        )
        await session.execute(stmt)


async def clear(session: AsyncSession, key: str) -> None:
    await session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))
