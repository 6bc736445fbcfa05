"""Requests refused before a route's dependencies ran are recorded too.

FastAPI reads a JSON body before it solves a route's dependencies: a body that is not
JSON, not UTF-8 or nested too deep is refused (422 ``json_invalid``, or 400) before
:func:`app.audit.deps.audited` could declare the attempt. For a route that declares an
audit action, such a refusal is recorded like any invalid request of the caller, when the
request carries a live access token (without one there is no one to record, as for any
request without a token): the route's action, ``deny``, flagged ``invalid``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.audit import flags
from app.audit import writer as audit
from app.audit.deps import declared_action, path_identifiers
from app.audit.models import Decision
from app.auth.deps import actor_if_signed_in, origin_of
from app.db import database_of
from app.errors import status_of

Handler = Callable[[Request, Exception], Awaitable[Response]]


def _before_dependencies(error: Exception) -> bool:
    if isinstance(error, RequestValidationError):
        return all(e.get("type") == "json_invalid" for e in error.errors())
    return isinstance(error, StarletteHTTPException) and error.status_code == 400


async def record_refused(request: Request, error: Exception) -> None:
    action = declared_action(request.scope.get("route"))
    if action is None or not _before_dependencies(error):
        return
    status, slug = status_of(error)
    async with database_of(request).sessionmaker() as session:
        origin = await origin_of(request)
        actor = await actor_if_signed_in(session, request.app.state.tokens, origin, request)
        if actor is None:
            return
        await audit.append(
            session,
            actor.record(
                action,
                decision=Decision.DENY,
                policy_id=slug,
                reason=f"not carried out: HTTP {status} ({slug})",
                flags=[flags.INVALID],
                **path_identifiers(request.path_params),
            ),
        )
        await session.commit()


def install(app: FastAPI) -> None:
    """Wrap the renderers of the errors a body can cause before the dependencies ran."""
    for error_class in (RequestValidationError, StarletteHTTPException):
        render: Handler = app.exception_handlers[error_class]  # type: ignore[assignment]  # ours: async

        async def handler(request: Request, error: Exception, render: Handler = render) -> Response:
            await record_refused(request, error)
            return await render(request, error)

        app.add_exception_handler(error_class, handler)
