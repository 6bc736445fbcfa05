"""Group commit: the work of concurrent requests done together, by one statement on a
connection of its own that commits with it.

A request hands over its items and waits; the first to hand over while nothing is being
written starts the writer, which takes everything waiting (up to ``most`` items, a
request's items never split), writes it and answers each request: done, or the error
that stopped the write. Whatever arrives meanwhile waits for the next round, so the
batch grows with the load and no request waits for a timer. The requests' own
connections are back in their pool while they wait.

Used by the audit writer for the records of reads (app/audit/writer.py): one append,
one move of the chain head and one commit (one WAL flush) for the records of all the
reads that finished while the one before was written, instead of one each, each holding
the head from its append to its commit.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Item = TypeVar("Item")


class GroupCommit(Generic[Item]):
    """Items written together on ``engine`` (autocommit: each ``write`` is one
    transaction), by ``write(connection, items)``."""

    def __init__(
        self,
        engine: AsyncEngine,
        write: Callable[[AsyncConnection, list[Item]], Awaitable[None]],
        *,
        most: int,
    ) -> None:
        self._engine = engine
        self._write = write
        self._most = most
        self._waiting: deque[tuple[Sequence[Item], asyncio.Future[None]]] = deque()
        self._writer: asyncio.Task[None] | None = None
        self.rounds = 0  # statements written (the tests and the bench read it)

    async def submit(self, items: Sequence[Item]) -> None:
        """Returns once ``items`` are written and committed; raises what stopped that.

        A request cancelled while it waits leaves its items to be written all the same
        (its record of a read then stands although the answer never left)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_while_waiting())
        await done

    def _take(self) -> list[tuple[Sequence[Item], asyncio.Future[None]]]:
        """Everything waiting, up to ``most`` items (and at least one request)."""
        batch: list[tuple[Sequence[Item], asyncio.Future[None]]] = []
        count = 0
        while self._waiting and (not batch or count + len(self._waiting[0][0]) <= self._most):
            batch.append(self._waiting.popleft())
            count += len(batch[-1][0])
        return batch

    async def _write_while_waiting(self) -> None:
        """Rounds until nothing waits, on one connection held while they follow each other
        (a new one after a failure: the failed one is discarded, not pooled)."""
        while self._waiting:
            batch: list[tuple[Sequence[Item], asyncio.Future[None]]] = []
            try:
                async with self._engine.connect() as connection:
                    while self._waiting:
                        batch = self._take()
                        try:
                            await self._write(
                                connection, [item for items, _ in batch for item in items]
                            )
                        except BaseException:
                            await connection.invalidate()
                            raise
                        self.rounds += 1
                        for _, done in batch:
                            if not done.done():  # (done already: the request was cancelled)
                                done.set_result(None)
                        batch = []
            except Exception as error:  # the round's requests fail with it (fail closed)
                for _, done in batch or self._take():  # (none taken yet: connecting failed)
                    if not done.done():
                        done.set_exception(error)
            except BaseException:  # the writer itself is cancelled (shutdown)
                for _, done in (*batch, *self._waiting):
                    done.cancel()
                raise
