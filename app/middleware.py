"""The outermost request layer: request id, body size limit, access log, metrics, last-resort 500.

A pure ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: it does not
copy the request into another task, so the structlog context bound here (request id,
later the actor) is visible to every log line the request produces.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import (
    PayloadTooLarge,
    internal_error_response,
    preferred_language,
    problem_language,
    render,
)
from app.logging import redact_text
from app.ops import metrics

REQUEST_ID_HEADER = "X-Request-ID"
# A client-supplied id is kept only when it is a plain token: no spaces, no control
# characters, nothing that could forge a log line. It is echoed and later stored in
# audit records, so one shaped like a personnummer is replaced too.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
UNMATCHED_ROUTE = "<unmatched>"

access_log = structlog.get_logger("app.access")
error_log = structlog.get_logger("app.error")


def _request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _SANE_REQUEST_ID.match(candidate) and redact_text(candidate) == candidate:
                return candidate
            break
    return uuid.uuid4().hex


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def route_template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The matched route's path template, so metrics and logs never hold ids or values.

    FastAPI records its own routes in ``scope["route"]`` with the path they were
    declared with, without the prefix of an included router; the prefix is taken back
    from the request path (prefixes here are static). Routes FastAPI hands to Starlette
    (the OpenAPI document, static mounts) are matched here against the request.
    """
    path: str = scope.get("path", "")
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    regex = getattr(route, "path_regex", None)
    if isinstance(template, str) and regex is not None:
        if regex.match(path):
            return template
        for index, char in enumerate(path):
            if char == "/" and index > 0 and regex.match(path[index:]):
                return path[:index] + template
    probe = {"type": "http", "path": path, "root_path": "", "method": scope.get("method", "")}
    for candidate in routes:
        match, _ = candidate.matches(probe)
        if match is Match.FULL:
            found = getattr(candidate, "path_format", None)
            return found if isinstance(found, str) else UNMATCHED_ROUTE
    return UNMATCHED_ROUTE


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        routes: Sequence[BaseRoute],
        large_bodies: Sequence[tuple[str, re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.routes = routes
        self.large_bodies = large_bodies

    def _limit(self, scope: Scope) -> int:
        """The body limit for this request: the default, or an upload route's own."""
        method, path = scope.get("method"), scope.get("path", "")
        for allowed_method, pattern, limit in self.large_bodies:
            if method == allowed_method and pattern.match(path):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        accept_language = Headers(scope=scope).get("accept-language")
        language = problem_language.set(preferred_language(accept_language))
        try:
            await self._handle(scope, receive, send)
        finally:
            problem_language.reset(language)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                headers.setdefault("X-Content-Type-Options", "nosniff")
                # Responses carry personal data: no shared or browser cache keeps them.
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        received = 0
        limit = self._limit(scope)

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises HTTPException from body parsing unchanged; the
                    # error handler renders it as a 413 problem.
                    raise HTTPException(status_code=413)
            return message

        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                status = 413
                response = render(PayloadTooLarge(f"The body exceeds {limit} bytes."), request_id)
                await response(scope, receive, send_with_headers)
            else:
                await self.app(scope, limited_receive, send_with_headers)
        except Exception as exc:
            error_log.error(
                "unhandled error",
                method=scope.get("method"),
                route=route_template(scope, self.routes),
                error_type=type(exc).__name__,
                exc_info=exc,
            )
            if response_started:
                raise
            status = 500
            await internal_error_response(request_id)(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope, self.routes)
            metrics.observe_request(scope.get("method", ""), route, status, elapsed)
            _log_access(scope, route, status, elapsed)


def _log_access(scope: Scope, route: str, status: int, elapsed: float) -> None:
    fields: dict[str, Any] = {
        "method": scope.get("method"),
        "route": route,
        "status": status,
        "duration_ms": round(elapsed * 1000, 2),
    }
    client = scope.get("client")
    if client:
        fields["client_ip"] = client[0]
    # The raw path, never the query string: a search carries a personnummer there.
    # Unmatched paths are logged (redacted) so that probes and typos stay visible.
    if route == UNMATCHED_ROUTE:
        fields["path"] = scope.get("path", "")
    access_log.info("request", **fields)
