"""Cursor pagination as API.md fixes it: ``?limit=`` (1-200, default 50) and ``?cursor=``.

Cursors are opaque to clients: the keyset of the last row returned, base64-encoded.
Keyset rather than offset, so a page never skips or repeats a row when rows are added.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from app.errors import ValidationFailed
from app.inputs import in_range

T = TypeVar("T")

LimitQuery = Annotated[int, Query(ge=1, le=200, description="Page size.")]
CursorQuery = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(key: Sequence[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, size: int) -> list[str] | None:
    """The keyset in ``cursor``; a 422 for anything this server did not hand out."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise _invalid() from exc
    if not isinstance(key, list) or len(key) != size or not all(isinstance(k, str) for k in key):
        raise _invalid()
    return key


def cursor_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise _invalid() from exc


def cursor_int(value: str) -> int:
    """A record number (PostgreSQL bigint)."""
    try:
        number = int(value)
    except ValueError as exc:
        raise _invalid() from exc
    if not 0 <= number <= 2**63 - 1:
        raise _invalid()
    return number


def cursor_datetime(value: str) -> datetime:
    """A cursor's timestamp; a zone-less one is UTC, as everywhere in this code."""
    try:
        moment = in_range(datetime.fromisoformat(value))
    except ValueError as exc:
        raise _invalid() from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _invalid() -> ValidationFailed:
    return ValidationFailed.for_field(
        "query.cursor", "Use the next_cursor of a previous page.", "cursor_invalid"
    )
