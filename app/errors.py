"""One error hierarchy, rendered as RFC 9457 ``application/problem+json``.

Services raise :class:`AppError` subclasses; the handlers registered by
:func:`install_error_handlers` turn them, framework errors and database failures
into problem documents that carry the request id. Nothing a client sends is echoed
back, and no stack trace or SQL reaches a client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, ClassVar, Literal

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:samverkan:problem:"

log = structlog.get_logger("app.errors")


# OpenAPI ``responses`` the routers share: what a route about one resource may answer.
SIGNED_IN: dict[int | str, dict[str, str]] = {401: {"description": "No or invalid token"}}
ONE_RESOURCE: dict[int | str, dict[str, str]] = {
    **SIGNED_IN,
    403: {"description": "Visible to you, but not yours to change"},
    404: {"description": "Unknown or not visible to you"},
}
STATE_CHANGE: dict[int | str, dict[str, str]] = {
    **ONE_RESOURCE,
    409: {"description": "Not possible in the current state"},
}


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


# The language of this request's problem documents: set from Accept-Language by the
# request middleware (app.middleware), read where a problem is rendered.
problem_language: ContextVar[Literal["sv", "en"]] = ContextVar("problem_language", default="en")


def preferred_language(accept_language: str | None) -> Literal["sv", "en"]:
    """``sv`` when the Accept-Language header prefers Swedish to English, else ``en``."""
    best: tuple[float, str] = (0.0, "en")
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = tag.strip().lower().split("-")[0]
        if language in {"sv", "en"} and quality > best[0]:
            best = (quality, language)
    return "sv" if best[1] == "sv" else "en"


@lru_cache(maxsize=1)
def _swedish() -> tuple[dict[str, str], dict[str, str], list[tuple[re.Pattern[str], str]]]:
    """policies/messages.sv.yaml: titles, details, and the details with ``{}`` as patterns."""
    from app.policy import get_engine  # noqa: PLC0415 - the decision point imports this module

    messages = get_engine().reference.messages_sv
    patterns = [
        (re.compile("^" + "(.+?)".join(map(re.escape, english.split("{}"))) + "$"), swedish)
        for english, swedish in messages.details.items()
        if "{}" in english
    ]
    return messages.titles, messages.details, patterns


def in_swedish(title: str, detail: str) -> tuple[str, str]:
    """The problem's title and detail in Swedish; a detail without a translation (none
    should be: tests/test_problem_language.py) is logged and kept in English."""
    titles, details, patterns = _swedish()
    shown = details.get(detail) or titles.get(detail)
    if shown is None:
        for pattern, swedish in patterns:
            match = pattern.match(detail)
            if match:
                parts = swedish.split("{}")
                shown = parts[0] + "".join(
                    value + part for value, part in zip(match.groups(), parts[1:], strict=True)
                )
                break
    if shown is None:
        log.warning("problem detail without a Swedish text", detail_length=len(detail))
        shown = detail
    return titles.get(title, title), shown


def problem_body(
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    request_id: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem document, in Swedish where the request prefers it (title and detail;
    the machine-readable ``type`` and field errors stay as they are)."""
    if problem_language.get() == "sv":
        title, detail = in_swedish(title, detail)
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    if extra:
        body.update(extra)
    return body


class AppError(Exception):
    """Base of every error the application raises on purpose."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(self.detail)


class BadRequest(AppError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(AppError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(AppError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(AppError):
    """Unknown *or not visible to the caller*: the two must be indistinguishable."""

    status, slug, title = 404, "not-found", "Not found"


class MethodNotAllowed(AppError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(AppError):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(AppError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(AppError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(AppError):
    status, slug, title = 422, "validation-error", "Invalid input"

    @classmethod
    def for_field(cls, field: str, message: str, kind: str = "value_error") -> ValidationFailed:
        """A 422 about one field (``body.agency_id``), in the same shape as schema errors."""
        error = {"field": field, "loc": field.split("."), "type": kind, "message": message}
        return cls(message, extra={"errors": [error]})


class TooManyRequests(AppError):
    status, slug, title = 429, "too-many-requests", "Too many requests"


class ServiceUnavailable(AppError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


_HTTP_STATUS_ERRORS: dict[int, type[AppError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        TooManyRequests,
        ServiceUnavailable,
    )
}


def status_of(error: BaseException) -> tuple[int, str]:
    """The status and problem slug the handlers below answer ``error`` with."""
    if isinstance(error, AppError):
        return error.status, error.slug
    if isinstance(error, RequestValidationError):
        return ValidationFailed.status, ValidationFailed.slug
    if isinstance(error, StarletteHTTPException):
        cls = _HTTP_STATUS_ERRORS.get(error.status_code)
        return error.status_code, cls.slug if cls else "http-error"
    if isinstance(error, IntegrityError):
        return Conflict.status, Conflict.slug
    if isinstance(error, OperationalError | InterfaceError | PoolTimeoutError | OSError):
        return ServiceUnavailable.status, ServiceUnavailable.slug
    return AppError.status, AppError.slug


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def render(error: AppError, request_id: str | None) -> ProblemResponse:
    return ProblemResponse(
        problem_body(
            status=error.status,
            slug=error.slug,
            title=error.title,
            detail=error.detail,
            request_id=request_id,
            extra=error.extra,
        ),
        status_code=error.status,
        headers=error.headers,
    )


def internal_error_response(request_id: str | None) -> ProblemResponse:
    """The 500 a client sees: the request id to quote, nothing about the cause."""
    return render(
        AppError("The request failed. Quote the request id when reporting it."), request_id
    )


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Field, reason and error type of each failure, never the submitted value.

    Pydantic's error dicts carry ``input`` (the value) and ``ctx`` (which may hold
    it too); only the location, the machine-readable type and the message are kept. Some
    messages quote a character of the value (a UUID's "found `x` at 37"): those get a
    message of their own, and no message keeps a control character.
    """
    out = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ())]
        kind = str(err.get("type", "invalid"))
        message = _OWN_MESSAGES.get(kind) or str(err.get("msg", "Invalid value"))
        out.append(
            {
                "field": ".".join(loc),
                "loc": loc,
                "type": kind,
                "message": _CONTROL_CHARACTERS.sub("", message),
            }
        )
    return out


# Pydantic error types whose message quotes part of the submitted value.
_OWN_MESSAGES = {
    "uuid_parsing": "Input should be a valid UUID",
    "uuid_version": "Input should be a valid UUID",
    "json_invalid": "Invalid JSON",
}
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return render(exc, request_id_of(request))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    cls = _HTTP_STATUS_ERRORS.get(exc.status_code)
    if cls is None:
        return ProblemResponse(
            problem_body(
                status=exc.status_code,
                slug="http-error",
                title="HTTP error",
                detail="The request could not be handled.",
                request_id=request_id_of(request),
            ),
            status_code=exc.status_code,
            headers=exc.headers,
        )
    # Starlette's own details ("Not Found", "Method Not Allowed") are replaced by ours,
    # so that every 404 reads the same whether a route or a row is missing.
    headers = exc.headers
    if exc.status_code == MethodNotAllowed.status and "app" in request.scope:
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return render(cls(headers=headers), request_id_of(request))


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers at this path (Starlette's 405 names only
    the methods of the first route it tried)."""
    found = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            found.append(method)
    return found


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    detail = f"{len(errors)} field(s) failed validation; see 'errors'."
    return render(ValidationFailed(detail, extra={"errors": errors}), request_id_of(request))


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    log.error("database unavailable", error_type=type(exc).__name__, exc_info=exc)
    return render(
        ServiceUnavailable("The database is unavailable; nothing was changed. Try again."),
        request_id_of(request),
    )


async def _integrity_error(request: Request, exc: Exception) -> Response:
    # A constraint the service did not pre-check (typically a concurrent insert).
    # The constraint name is logged; the values stay out of logs and responses.
    log.warning("integrity error", error_type=type(exc).__name__, exc_info=exc)
    return render(
        Conflict("The request conflicts with the current state; nothing was changed."),
        request_id_of(request),
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json renderers for every error class the app can meet."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(InterfaceError, _database_unavailable)
    app.add_exception_handler(PoolTimeoutError, _database_unavailable)
    # asyncpg raises connection failures (refused, reset, timed out) unwrapped.
    app.add_exception_handler(OSError, _database_unavailable)
    app.add_exception_handler(IntegrityError, _integrity_error)


class Problem(BaseModel):
    """RFC 9457 problem document, as every error response carries it."""

    type: str = Field(examples=["urn:samverkan:problem:not-found"])
    title: str
    status: int
    detail: str
    request_id: str | None = Field(description="Quote it when reporting a problem.")


class FieldError(BaseModel):
    field: str = Field(examples=["body.personal_number"])
    loc: list[str]
    type: str = Field(examples=["string_pattern_mismatch"])
    message: str


class ValidationProblem(Problem):
    """A 422: which fields failed and why; the submitted values are never echoed."""

    errors: list[FieldError]


_SCHEMA_REF = "#/components/schemas/{model}"


def document_problems(openapi: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document describe the error bodies the app really sends.

    FastAPI documents every 422 as its own ``HTTPValidationError`` JSON, which this app
    replaces; every 4xx/5xx response is rewritten to ``application/problem+json`` with
    the :class:`Problem` (or :class:`ValidationProblem`) schema.
    """
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for model in (Problem, FieldError, ValidationProblem):
        schema = model.model_json_schema(ref_template=_SCHEMA_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    for path, operations in openapi.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault("400", {"description": "The body is not JSON or not UTF-8"})
                responses.setdefault("413", {"description": "The body is too large"})
                responses.setdefault(
                    "415", {"description": "The body is not of the media type the route takes"}
                )
            if path.startswith("/api/"):
                responses.setdefault(
                    "503", {"description": "Database or audit log unavailable; nothing changed"}
                )
            for status, response in responses.items():
                if status[:1] in {"4", "5"}:
                    name = "ValidationProblem" if status == "422" else "Problem"
                    response["content"] = {
                        PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _SCHEMA_REF.format(model=name)}}
                    }
    return openapi
