"""The hash chain: canonical serialisation, record hashes and verification.

``hash = sha256(prev_hash + "|" + seq + "|" + body)`` where ``body`` is the canonical
JSON of every other field (sorted keys, no spaces, ASCII only). PostgreSQL computes the
same expression in SQL when it appends (app.audit.writer); verification recomputes it
here from the stored columns, so a changed field, a removed record or a re-ordered
record all break the chain at the first record affected.

A field added to the record later (:data:`OPTIONAL_FIELDS`) is part of the body only when it
is set, so the records written before it existed keep their hashes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit.models import GENESIS_HASH, AuditChainHead, AuditEvent

try:  # compiled at install where a C compiler is at hand (hatch_build.py)
    from app.audit import _native
except ImportError:  # pragma: no cover - a build without it checks in SQL
    _native = None  # type: ignore[assignment]

# Verify's checks on PostgreSQL: the native check over a COPY stream where it is built,
# the SQL statements otherwise (tests run both).
NATIVE = _native is not None

BODY_FIELDS = (
    "at",
    "actor_user_id",
    "actor_client_id",
    "actor_agency_id",
    "actor_roles",
    "action",
    "resource_type",
    "resource_id",
    "individual_id",
    "case_id",
    "decision",
    "basis",
    "policy_id",
    "consent_id",
    "legal_basis",
    "reason",
    "request_id",
    "client_address",
    "flags",
    "auth_method",
)
# Fields that joined the record after records were written: left out of the body when null.
OPTIONAL_FIELDS = frozenset({"auth_method"})
VERIFY_BATCH = 5000
VERIFY_BATCH_IN_DATABASE = 100_000


def format_at(value: datetime) -> str:
    """UTC with microseconds; a naive value (SQLite) is UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_at(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


# One encoder, reused: json.dumps with non-default options builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode
_SORTED_FIELDS = tuple(sorted(BODY_FIELDS))
_POSITION = {name: BODY_FIELDS.index(name) for name in _SORTED_FIELDS}


_OPTIONAL_POSITIONS = tuple((name, BODY_FIELDS.index(name)) for name in sorted(OPTIONAL_FIELDS))


def canonical_body(fields: Mapping[Any, Any]) -> str:
    """Sorted keys, no spaces, ASCII only: the same text whoever computes it."""
    body = {name: _canonical_value(fields.get(name)) for name in _SORTED_FIELDS}
    for name, _ in _OPTIONAL_POSITIONS:
        if body[name] is None:
            del body[name]
    return _ENCODE(body)


_AT = BODY_FIELDS.index("at")
_UUIDS = tuple(
    BODY_FIELDS.index(name)
    for name in (
        "actor_user_id",
        "actor_client_id",
        "actor_agency_id",
        "individual_id",
        "case_id",
        "consent_id",
    )
)


def _canonical_body_of_row(values: Sequence[Any]) -> str:
    """canonical_body for a row of BODY_FIELDS in order (the verifier's fast path): only the
    time and the uuid columns need converting, and their positions are known."""
    row = list(values)
    row[_AT] = format_at(row[_AT])
    for i in _UUIDS:
        if row[i] is not None:
            row[i] = str(row[i])
    body = {name: row[_POSITION[name]] for name in _SORTED_FIELDS}
    for name, position in _OPTIONAL_POSITIONS:
        if row[position] is None:
            del body[name]
    return _ENCODE(body)


def record_hash(prev_hash: str, seq: int, body: str) -> str:
    return hashlib.sha256(f"{prev_hash}|{seq}|{body}".encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None
    head_seq: int
    head_hash: str
    problem: str | None = None


async def _records(connection: AsyncConnection, after: int = 0) -> AsyncIterator[Sequence[Any]]:
    """Rows of (seq, *BODY_FIELDS, prev_hash, hash) after ``after``, as plain tuples, in
    batches."""
    columns = [getattr(AuditEvent, name) for name in ("seq", *BODY_FIELDS, "prev_hash", "hash")]
    last = after
    while True:
        rows = (
            await connection.execute(
                select(*columns)
                .where(AuditEvent.seq > last)
                .order_by(AuditEvent.seq)
                .limit(VERIFY_BATCH)
            )
        ).all()
        if not rows:
            return
        for row in rows:
            yield row
        last = rows[-1][0]


# Told, as the verify goes, how many records are checked out of how many (a progress bar).
Progress = Callable[[int, int], None]


def _untold(done: int, total: int) -> None:
    """No one is watching."""


# Where the chain begins: (0, the genesis hash), or the audit anchor retention left (the
# seq of the last record it removed and that record's hash; app.audit.checkpoints).
Start = tuple[int, str]
GENESIS: Start = (0, GENESIS_HASH)


async def verify_chain(
    connection: AsyncConnection,
    *,
    jobs: int = 1,
    progress: Progress | None = None,
    start: Start = GENESIS,
) -> VerifyResult:
    """Recompute every record's hash in order from ``start``; report the first record that
    does not fit.

    On PostgreSQL ``jobs`` ranges at a time, on connections of their own (so only for
    committed records: tests that verify inside their own transaction use one), each
    streamed through the native check (app/audit/_native.c) where it is built, else
    recomputed by the database (:data:`_PG_VERIFY_HASHES`); on SQLite, which has no
    SHA-256, this process recomputes them in Python.
    """
    tell = progress or _untold
    if connection.dialect.name == "postgresql":
        return await _verify_in_database(connection, jobs, tell, start)
    return await _verify_here(connection, tell, start)


async def _verify_here(
    connection: AsyncConnection, tell: Progress = _untold, start: Start = GENESIS
) -> VerifyResult:
    expected_prev, expected_seq, checked = start[1], start[0] + 1, 0
    last = len(BODY_FIELDS) + 1
    total = (await _head(connection))[0] - start[0]
    async for row in _records(connection, start[0]):
        if checked % VERIFY_BATCH == 0:
            tell(checked, total)
        seq, prev_hash, stored_hash = row[0], row[last], row[last + 1]
        problem = None
        if seq != expected_seq:
            problem = f"gap: expected seq {expected_seq}, found {seq}"
        elif prev_hash != expected_prev:
            problem = "prev_hash does not match the previous record"
        elif record_hash(prev_hash, seq, _canonical_body_of_row(row[1:last])) != stored_hash:
            problem = "record content does not match its hash"
        if problem is not None:
            head_seq, head_hash = await _head(connection)
            return VerifyResult(False, checked, expected_seq, head_seq, head_hash, problem)
        expected_prev, expected_seq, checked = stored_hash, seq + 1, checked + 1
    tell(checked, total)
    head_seq, head_hash = await _head(connection)
    if (head_seq, head_hash) != (expected_seq - 1, expected_prev):
        problem = "chain head does not match the newest record"
        return VerifyResult(False, checked, expected_seq, head_seq, head_hash, problem)
    return VerifyResult(True, checked, None, head_seq, head_hash)


def _sql_canonical_body() -> str:
    """canonical_body as a SQL expression over the stored columns.

    It equals the Python text for every record whose strings are printable ASCII (PostgreSQL's
    ``to_json`` escapes quotes, backslashes and control characters as Python does, but
    leaves other characters as they are, where Python writes ``\\uXXXX``). A record
    whose hash does not match this text is therefore checked again here, in Python; a
    match, on the other hand, is proof by itself: the stored hash was computed over
    Python's text when the record was written.
    """
    uuids = {BODY_FIELDS[i] for i in _UUIDS}
    parts: list[str] = []
    for name in _SORTED_FIELDS:
        key = f"'{',' if parts else '{'}\"{name}\":'"
        if name in OPTIONAL_FIELDS:  # never the first key: "action" sorts before any
            parts.append(
                f"CASE WHEN {name} IS NULL THEN '' ELSE {key} || to_json({name})::text END"
            )
            continue
        if name == "at":
            value = (
                "to_json(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))::text"
            )
        elif name in uuids:  # a uuid's text needs no escaping
            value = f"coalesce('\"' || {name}::text || '\"', 'null')"
        else:
            value = f"coalesce(to_json({name})::text, 'null')"
        parts += [key, value]
    # One concat(): chained || copies the growing text once per operator.
    return "concat(" + ", ".join(parts) + ", '}')"


# One range of the chain, checked by the database in two statements. The links: each
# record's seq and prev_hash compared with the record before it (the first with the stored
# record ``:lo``, or the genesis hash); only records that fail come back, and the range's
# last record. The hashes: each record's hash recomputed; only records whose stored hash
# differs come back. Apart, the link check is a cheap window over the index and the hash
# check a plain scan (together in one window query they cost 40 % more). Ranges are
# independent, so several can be checked at once.
_PG_VERIFY_LINKS = text(
    """
    SELECT seq, hash, lag_seq, linked, rn, cnt FROM (
        SELECT seq, hash,
               coalesce(lag(seq) OVER w, :lo) AS lag_seq,
               prev_hash IS NOT DISTINCT FROM coalesce(
                   lag(hash) OVER w,
                   (SELECT hash FROM audit_event WHERE seq = :lo),
                   :genesis
               ) AS linked,
               row_number() OVER w AS rn,
               count(*) OVER () AS cnt
        FROM audit_event
        WHERE seq > :lo AND seq <= :hi
        WINDOW w AS (ORDER BY seq)
    ) AS checked
    WHERE NOT (linked AND seq = lag_seq + 1) OR rn = cnt
    ORDER BY seq
    """
)
_PG_VERIFY_HASHES = text(
    f"""
    SELECT seq FROM audit_event
    WHERE seq > :lo AND seq <= :hi
      AND encode(sha256(convert_to(
              concat(prev_hash, '|', seq::text, '|', {_sql_canonical_body()}), 'UTF8'
          )), 'hex') IS DISTINCT FROM hash
    ORDER BY seq
    """  # noqa: S608 - column names are constants, values are bound
)


@dataclass(frozen=True, slots=True)
class _RangeResult:
    count: int  # records in the range that passed, before the first problem if any
    last_hash: str | None
    first_bad_seq: int | None = None
    problem: str | None = None


_UNHASHED = "record content does not match its hash"


async def _check_range(
    connection: AsyncConnection, lo: int, hi: int, start: Start = GENESIS
) -> _RangeResult:
    # The record before the range is ``lo``; at the start it is gone (or never was) and
    # the start's hash stands for it.
    genesis = start[1] if lo == start[0] else GENESIS_HASH
    if NATIVE:
        found = await _native_found(connection, lo, hi, genesis)
    else:
        found = await _sql_found(connection, lo, hi, genesis)
    for seq, kind, passed, first_bad, problem in sorted(found.problems):
        if kind == _UNSURE and await _hash_fits(connection, seq):
            continue  # text written differently here (non-ASCII); Python's check passed
        return _RangeResult(passed, None, first_bad, problem)
    if found.count < hi - lo:
        last = found.last_seq
        return _RangeResult(
            found.count, None, last + 1, f"gap: expected seq {last + 1}, found none"
        )
    return _RangeResult(found.count, found.last_hash)


# (seq, order at one seq, records passed before it, first bad seq, problem)
Problem = tuple[int, int, int, int, str]
# What is wrong, in the order of the problems at one seq (_native.c's codes): a gap, a
# broken link, a hash that does not match text built as Python's, a hash that does not
# match text Python may write differently (Python's check of the record decides).
_GAP, _UNLINKED, _UNHASHED_CODE, _UNSURE = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class _Found:
    """What one range's checks found: the problems, the records read, the last of them."""

    problems: list[Problem]
    count: int
    last_seq: int
    last_hash: str | None


def _problem(seq: int, kind: int, row: int, lag_seq: int) -> Problem:
    """Record ``seq``, the ``row``th of its range after record ``lag_seq``, and what is
    wrong with it (``_UNSURE``: the hash did not match text this side built, Python's
    check decides)."""
    if kind == _GAP:
        return (seq, kind, row - 1, lag_seq + 1, f"gap: expected seq {lag_seq + 1}, found {seq}")
    if kind == _UNLINKED:
        return (seq, kind, row - 1, seq, "prev_hash does not match the previous record")
    return (seq, kind, row - 1, seq, _UNHASHED)


async def _sql_found(connection: AsyncConnection, lo: int, hi: int, genesis: str) -> _Found:
    params = {"lo": lo, "hi": hi, "genesis": genesis}
    links = (await connection.execute(_PG_VERIFY_LINKS, params)).all()
    unhashed = (await connection.execute(_PG_VERIFY_HASHES, {"lo": lo, "hi": hi})).scalars()
    problems = [
        _problem(seq, _GAP if seq != lag_seq + 1 else _UNLINKED, rn, lag_seq)
        for seq, _, lag_seq, linked, rn, _ in links
        if seq != lag_seq + 1 or not linked
    ]
    # Before the first gap or broken link, record ``seq`` is the (seq - lo)th of the range.
    problems += [_problem(seq, _UNSURE, seq - lo, seq - 1) for seq in unhashed]
    if not links:
        return _Found(problems, 0, lo, None)
    return _Found(problems, links[-1][5], links[-1][0], links[-1][1])


# The native check's stream: the body's fields in the canonical (sorted) order, so that
# app/audit/_native.c writes them as it reads them.
_COPY = (
    "SELECT seq, "  # noqa: S608 - column names are constants, the range is bound
    + ", ".join(_SORTED_FIELDS)
    + ", prev_hash, hash FROM audit_event WHERE seq > $1 AND seq <= $2 ORDER BY seq"
)
_KINDS = {"at": 2, **{BODY_FIELDS[i]: 1 for i in _UUIDS}}  # _native.c: KIND_TIME, KIND_UUID
_SPEC = tuple(
    (f'{"," if i else "{"}"{name}":'.encode("ascii"), _KINDS.get(name, 0), name in OPTIONAL_FIELDS)
    for i, name in enumerate(_SORTED_FIELDS)
)
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_HEADER = len(_COPY_SIGNATURE) + 8  # flags, the extension's length, then the extension


class NativeStream:
    """A binary COPY stream of records fed, in chunks as they come, through the native
    check (app/audit/_native.c); ``found`` collects (seq, code, row, seq before)."""

    def __init__(self, lag_seq: int, lag_hash: str) -> None:
        assert _native is not None
        self.found: list[tuple[int, int, int, int]] = []
        self.state: tuple[int, bytes, int, bool] = (lag_seq, lag_hash.encode(), 0, False)
        self.finished = False
        self._pending = bytearray()
        self._header = True

    async def take(self, chunk: bytes) -> None:
        """A chunk as the COPY brings it. Checked here, in the event loop: handing each
        chunk to a thread (the check releases the GIL) measured slower, 346k against 432k
        records/s with two ranges at once (docs/performance.md)."""
        self.feed(chunk)

    def feed(self, chunk: bytes) -> None:
        assert _native is not None
        pending = self._pending
        pending.extend(chunk)
        if self._header:
            if len(pending) < _COPY_HEADER:
                return
            if pending[: len(_COPY_SIGNATURE)] != _COPY_SIGNATURE:
                raise ValueError("not a binary COPY stream")
            extension = int.from_bytes(pending[_COPY_HEADER - 4 : _COPY_HEADER], "big")
            if len(pending) < _COPY_HEADER + extension:
                return
            del pending[: _COPY_HEADER + extension]
            self._header = False
        full = True
        while full:  # it stops early when it has many records to tell about
            consumed, self.finished, *_, full = result = _native.check(
                pending, _SPEC, *self.state, self.found
            )
            self.state = result[2:6]
            del pending[:consumed]

    def end(self) -> _Found:
        if not self.finished or self._pending:
            raise ValueError("the COPY stream ended inside a record")
        last_seq, last_hash, count, _ = self.state
        problems = [_problem(*item) for item in self.found]
        return _Found(problems, count, last_seq, last_hash.decode() if count else None)


async def _native_found(connection: AsyncConnection, lo: int, hi: int, genesis: str) -> _Found:
    """The range's records streamed by a binary COPY through the native check: the same
    checks as the SQL's, the text built outside the database."""
    before = await connection.scalar(select(AuditEvent.hash).where(AuditEvent.seq == lo))
    stream = NativeStream(lo, before or genesis)
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_from_query(  # type: ignore[union-attr]
        _COPY, lo, hi, output=stream.take, format="binary"
    )
    return stream.end()


async def _verify_in_database(
    connection: AsyncConnection, jobs: int, tell: Progress = _untold, start: Start = GENESIS
) -> VerifyResult:
    """The chain up to the head as it is now, in ranges; ``jobs`` ranges at a time, each on
    a connection of its own (records appended meanwhile are for the next run)."""
    head_seq, head_hash = await _head(connection)
    size = VERIFY_BATCH_IN_DATABASE
    ranges = [(lo, min(lo + size, head_seq)) for lo in range(start[0], head_seq, size)]
    results: list[_RangeResult] = []
    if jobs <= 1:
        for lo, hi in ranges:
            results.append(await _check_range(connection, lo, hi, start))
            tell(hi - start[0], head_seq - start[0])
            if results[-1].problem is not None:
                break
    else:
        results = await _check_ranges_at_once(connection, ranges, jobs, tell, head_seq, start)
    checked, last_hash = 0, start[1]
    for result in results:
        if result.problem is not None:
            return VerifyResult(
                False,
                checked + result.count,
                result.first_bad_seq,
                head_seq,
                head_hash,
                result.problem,
            )
        checked, last_hash = checked + result.count, result.last_hash or last_hash
    if last_hash != head_hash:
        problem = "chain head does not match the newest record"
        return VerifyResult(False, checked, head_seq, head_seq, head_hash, problem)
    return VerifyResult(True, checked, None, head_seq, head_hash)


async def _check_ranges_at_once(
    connection: AsyncConnection,
    ranges: list[tuple[int, int]],
    jobs: int,
    tell: Progress,
    total: int,
    start: Start,
) -> list[_RangeResult]:
    pending = iter(enumerate(ranges))
    results: dict[int, _RangeResult] = {}
    done = 0

    async def work() -> None:
        nonlocal done
        async with connection.engine.connect() as own:
            for index, (lo, hi) in pending:
                results[index] = await _check_range(own, lo, hi, start)
                await own.rollback()
                done += hi - lo
                tell(done, total - start[0])

    await asyncio.gather(*(work() for _ in range(min(jobs, len(ranges)))))
    return [results[i] for i in range(len(ranges))]


async def _hash_fits(connection: AsyncConnection, seq: int) -> bool:
    """The Python check of one record (one the database's text could not confirm)."""
    columns = [getattr(AuditEvent, name) for name in ("prev_hash", *BODY_FIELDS, "hash")]
    row = (await connection.execute(select(*columns).where(AuditEvent.seq == seq))).one()
    body = _canonical_body_of_row(row[1:-1])
    return bool(record_hash(row[0], seq, body) == row[-1])


async def _head(connection: AsyncConnection) -> tuple[int, str]:
    row = (await connection.execute(select(AuditChainHead.seq, AuditChainHead.hash))).one_or_none()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)
