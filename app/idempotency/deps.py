"""``dependencies=[audited(...), idempotent()]`` and ``@creates`` on every creating POST.

The dependency claims the key (or replays the first answer) before the work; the decorator
hands the endpoint's answer over to be stored with the key in the same transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from app.audit.deps import declared_action
from app.auth.deps import CurrentActor
from app.db import SessionDep
from app.idempotency import service

P = ParamSpec("P")
R = TypeVar("R")


def idempotent() -> Any:
    async def claim(request: Request, actor: CurrentActor, session: SessionDep) -> None:
        raw = request.headers.get(service.HEADER)
        if raw is None:
            return
        key = service.check_key(raw)
        route = request.scope["route"]
        await service.claim_or_replay(
            session,
            actor,
            key=key,
            digest=service.request_hash(request.method, request.url.path, await request.body()),
            action=declared_action(route) or route.path,
            status_code=route.status_code or 200,
        )

    claim.idempotent = True  # type: ignore[attr-defined]  # read by the route sweep
    return Depends(claim)


def creates(endpoint: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Wrap a creating endpoint (it takes ``session``): its answer is kept with the key."""

    @functools.wraps(endpoint)
    async def answered(*args: P.args, **kwargs: P.kwargs) -> R:
        result = await endpoint(*args, **kwargs)
        service.remember_answer(kwargs["session"], result)  # type: ignore[arg-type]
        return result

    answered.keeps_its_answer = True  # type: ignore[attr-defined]
    return answered


async def _replay(_: Request, error: Exception) -> Response:
    assert isinstance(error, service.Replay)
    return JSONResponse(
        error.answer, status_code=error.status_code, headers={service.REPLAYED_HEADER: "true"}
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(service.Replay, _replay)


def is_idempotent(operation: Any) -> bool:
    """Whether a route claims keys and keeps its answers (both halves are needed)."""
    claims = any(
        getattr(d.call, "idempotent", False)
        for d in getattr(operation.dependant, "dependencies", ())
    )
    return claims and getattr(operation.endpoint, "keeps_its_answer", False)
