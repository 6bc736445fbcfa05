"""One retention run at a time: a PostgreSQL advisory lock held on a connection of its own
(released by the server when the process dies, however it dies), or on SQLite an exclusive
``flock`` of a file beside the database (released by the kernel likewise)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

# pg_try_advisory_lock's key: "samverkan retention" as a stable 64-bit number.
_LOCK_KEY = 0x5A4D_5645_524B_414E


class RunInProgress(Exception):
    """Another retention run holds the lock."""


@asynccontextmanager
async def held(engine: AsyncEngine) -> AsyncIterator[None]:
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            taken = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": _LOCK_KEY}
            )
            await connection.commit()
            if not taken:
                raise RunInProgress
            try:
                yield
            finally:
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY}
                )
                await connection.commit()
        return
    database = make_url(str(engine.url)).database or "samverkan"
    path = Path(f"{database}.retention.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInProgress from None
        yield
    finally:
        os.close(fd)
