"""Input types that refuse what pydantic's lax mode would quietly convert, and text or
times no database should be handed.

Found by schemathesis: ``"active": 0`` became ``False`` and ``?to=0.5`` became 1970-01-01.
A consent's validity, a search window or an account's state is not something to guess.
Found by an outside test: a NUL byte in any text, or a time such as
``0001-01-01T00:00:00+01:00``, was a 500 on PostgreSQL (SQLite took both).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Request, params
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
)

from app.errors import UnsupportedMediaType

_NUMBER = re.compile(r"\s*[-+]?\d+(\.\d*)?([eE][-+]?\d+)?\s*")


def _rfc3339_only(value: Any) -> Any:
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("an RFC 3339 date-time is expected, e.g. 2026-11-23T14:00:00Z")
    return value


# Times a person's data can carry: none before 1900 or after 2199 (PostgreSQL and Python
# both overflow near year 1 and 9999 once a zone is applied).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_OUT_OF_RANGE = "the time must lie between 1900-01-01 and 2199-12-31 (UTC)"


def in_range(value: datetime) -> datetime:
    """``value`` if it lies in [EARLIEST, LATEST) in UTC; a ValueError otherwise."""
    try:
        moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        raise ValueError(_OUT_OF_RANGE) from None
    if not EARLIEST <= moment < LATEST:
        raise ValueError(_OUT_OF_RANGE)
    return value


# An RFC 3339 date-time; never a Unix timestamp. A time without a zone is UTC (the
# services convert it).
Timestamp = Annotated[datetime, BeforeValidator(_rfc3339_only), AfterValidator(in_range)]

# C0 controls and DEL, but tab and newline: a NUL breaks PostgreSQL's text, and none of
# them belongs in a name, a note or a journal entry.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
CONTROLS_REFUSED = "control characters (other than tab and newline) are not allowed"


def no_controls(value: str) -> str:
    if _CONTROLS.search(value):
        raise ValueError(CONTROLS_REFUSED)
    return value


def has_controls(value: str) -> bool:
    return _CONTROLS.search(value) is not None


# Text from a query string or a form.
CleanStr = Annotated[str, AfterValidator(no_controls)]


def _check_text(value: Any) -> None:
    if isinstance(value, str):
        no_controls(value)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _check_text(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)


class InputModel(BaseModel):
    """The base of every request body: unknown fields refused, text stripped, and no field
    (nested lists and dicts included) may carry control characters (422 naming the field,
    the value not echoed). Nested models check themselves."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _refuse_controls(cls, value: Any) -> Any:
        _check_text(value)
        return value


# JSON true or false; never 0, 1, "yes" or "off".
Flag = StrictBool

# A record number of the audit log (PostgreSQL bigint).
AuditSeq = Annotated[int, Field(ge=1, le=2**63 - 1)]


_FORM_MEDIA = {"application/x-www-form-urlencoded", "multipart/form-data"}


def _json_media(media: str) -> bool:
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def require_body_media_type(request: Request) -> None:
    """415 for a body of another kind than the route takes: a JSON route given form data,
    text or no ``Content-Type`` (not "Input should be a valid dictionary", which tells the
    caller nothing), or a form route (sign-in) given JSON. Routes that take a file or no
    body are not checked here."""
    if request.method not in {"POST", "PUT", "PATCH"}:
        return
    dependant = getattr(request.scope.get("route"), "dependant", None)
    body = getattr(dependant, "body_params", [])
    if not body:
        return
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    no_body = request.headers.get("content-length", "0") == "0" and (
        "transfer-encoding" not in request.headers
    )
    if not media and no_body:
        return  # nothing sent: validation names what is missing
    if any(isinstance(p.field_info, params.Form) for p in body):
        if media not in _FORM_MEDIA:
            raise UnsupportedMediaType(
                "This route takes a form: send Content-Type: application/x-www-form-urlencoded."
            )
    elif not _json_media(media):
        raise UnsupportedMediaType("This route takes JSON: send Content-Type: application/json.")
