"""``samverkan worker``: time-driven events, fan-out and webhook delivery, in a loop; and
idempotency keys past their 24 hours are forgotten (their stored answers hold personal data).

Run it next to ``samverkan serve`` (any number of them on PostgreSQL; one on SQLite). It
stops cleanly on SIGTERM or SIGINT between two steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import httpx
import structlog
from sqlalchemy.exc import SQLAlchemyError

from app.config import Settings
from app.db import Database
from app.events import timed
from app.idempotency import service as idempotency_service
from app.webhooks import delivery

log = structlog.get_logger("app.worker")
SENDS_PER_ROUND = 100


async def one_round(
    database: Database, settings: Settings, client: httpx.AsyncClient | None = None
) -> int:
    """Due time-driven events, then fan-out, then up to SENDS_PER_ROUND deliveries by each
    of ``worker_concurrency`` senders at once; returns how many deliveries were handled."""
    async with database.sessionmaker() as session, session.begin():
        await timed.emit_due(session)
    async with database.sessionmaker() as session, session.begin():
        await idempotency_service.forget_expired(session)
    await delivery.fan_out(database)

    async def sender() -> int:
        handled = 0
        while handled < SENDS_PER_ROUND and await delivery.deliver_one(database, settings, client):
            handled += 1
        return handled

    return sum(await asyncio.gather(*(sender() for _ in range(settings.worker_concurrency))))


async def run(settings: Settings, *, once: bool = False) -> None:
    database = Database.from_settings(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker started")
    client = delivery.http_client(settings)
    try:
        while not stop.is_set():
            try:
                handled = await one_round(database, settings, client)
            except (SQLAlchemyError, OSError) as exc:  # the database is away: wait, retry
                log.warning("worker round failed", error_type=type(exc).__name__)
                handled = 0
                if once:
                    raise
            if once:
                break
            if handled == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=settings.worker_poll_seconds)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await client.aclose()
        await database.dispose()
        log.info("worker stopped")
