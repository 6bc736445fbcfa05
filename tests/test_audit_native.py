"""The native chain check (app/audit/_native.c) against the Python definition of a record's
hash (app.audit.chain), over binary COPY streams built here: it writes Python's text for
every record Python hashed (so passes it), and passes no record with a field changed."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.audit import chain
from app.audit.models import GENESIS_HASH

if chain._native is None:  # pragma: no cover - CI builds it (SAMVERKAN_NATIVE=require)
    if os.environ.get("CI") == "true":
        raise RuntimeError("the native chain check is not built")
    pytest.skip("the native chain check is not built here", allow_module_level=True)

GAP, UNLINKED, UNHASHED, UNSURE = 0, 1, 2, 3  # _native.c's codes
POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
UUIDS = {chain.BODY_FIELDS[i] for i in chain._UUIDS}
TEXT = st.text(
    alphabet=st.sampled_from(["a", "Z", "0", " ", '"', "\\", "\n", "\x01", "\x7f", "å", "😀", "/"]),
    max_size=12,
)
PLAIN = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
# Any text PostgreSQL stores: no NUL, no lone surrogate.
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8)
TIMES = st.datetimes(
    min_value=datetime(1000, 1, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
    max_value=datetime(9999, 12, 31, 23, 59, 59, 999999),  # noqa: DTZ001
).map(lambda t: t.replace(tzinfo=UTC))


def _field(name: str) -> st.SearchStrategy[Any]:
    if name == "at":
        return TIMES
    if name in UUIDS:
        return st.none() | st.uuids()
    value = st.one_of(PLAIN, TEXT, ANY_TEXT)
    required = name in {"actor_roles", "action", "decision", "flags"}
    return value if required else st.none() | value


RECORDS = st.fixed_dictionaries({name: _field(name) for name in chain.BODY_FIELDS})


def _encode(value: Any, name: str) -> bytes:
    if value is None:
        return (-1).to_bytes(4, "big", signed=True)
    if name == "at":
        delta = value - POSTGRES_EPOCH
        data = (delta // timedelta(microseconds=1)).to_bytes(8, "big", signed=True)
    elif name in UUIDS:
        data = value.bytes
    elif isinstance(value, bytes):  # bytes PostgreSQL would not store as text
        data = value
    else:
        data = value.encode()
    return len(data).to_bytes(4, "big") + data


def _stream(rows: list[tuple[int, dict[str, Any], str, str]]) -> bytes:
    """PostgreSQL's binary COPY of (seq, the body's fields sorted, prev_hash, hash)."""
    out = bytearray(b"PGCOPY\n\xff\r\n\x00" + bytes(4) + (3).to_bytes(4, "big") + b"ext")
    for seq, fields, prev_hash, stored in rows:
        out += (len(chain.BODY_FIELDS) + 3).to_bytes(2, "big")
        out += (8).to_bytes(4, "big") + seq.to_bytes(8, "big")
        for name in chain._SORTED_FIELDS:
            out += _encode(fields[name], name)
        out += _encode(prev_hash, "prev_hash") + _encode(stored, "hash")
    return bytes(out + (-1).to_bytes(2, "big", signed=True))


def _chain(records: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any], str, str]]:
    rows, prev = [], GENESIS_HASH
    for seq, fields in enumerate(records, start=1):
        stored = chain.record_hash(prev, seq, chain.canonical_body(fields))
        rows.append((seq, fields, prev, stored))
        prev = stored
    return rows


def _record(**fields: Any) -> dict[str, Any]:
    """A record's body fields: an entry read at noon on 2026-12-02 but for ``fields``."""
    return dict.fromkeys(chain.BODY_FIELDS) | {
        "at": datetime(2026, 12, 2, 12, tzinfo=UTC),
        "actor_roles": "",
        "action": "entry.read",
        "decision": "permit",
        "flags": "",
        **fields,
    }


def _check(data: bytes, chunk: int) -> chain._Found:
    stream = chain.NativeStream(0, GENESIS_HASH)
    for start in range(0, len(data), chunk):
        stream.feed(data[start : start + chunk])
    return stream.end()


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(records=st.lists(RECORDS, min_size=1, max_size=6), chunk=st.integers(1, 700))
def test_the_native_text_is_pythons(records: list[dict[str, Any]], chunk: int) -> None:
    """Records Python hashed, with any text (quotes, backslashes, control characters,
    letters outside ASCII and past U+FFFF), in chunks of any size (a record split
    anywhere): every one passes, none is left to Python's check."""
    rows = _chain(records)
    found = _check(_stream(rows), chunk)
    assert found.problems == []
    assert (found.count, found.last_seq, found.last_hash) == (len(rows), len(rows), rows[-1][3])


@SETTINGS
@given(
    records=st.lists(RECORDS, min_size=1, max_size=4),
    data=st.data(),
)
def test_a_changed_field_never_passes(records: list[dict[str, Any]], data: st.DataObject) -> None:
    """Any field of any record changed after hashing: the native check reports that
    record as not matching its hash, and checks no further."""
    rows = _chain(records)
    index = data.draw(st.integers(0, len(rows) - 1))
    name = data.draw(st.sampled_from(chain.BODY_FIELDS))
    seq, fields, prev, stored = rows[index]
    changed = data.draw(_field(name).filter(lambda v: v != fields[name]))
    tampered = {**fields, name: changed}
    rows[index] = (seq, tampered, prev, stored)
    problems = _check(_stream(rows), data.draw(st.integers(1, 700))).problems
    assert [(p[0], p[1]) for p in problems] == [(seq, UNHASHED)]


def test_text_that_reads_as_pythons_escapes_is_not_taken_as_them() -> None:
    """``a\\"b`` stored where ``a"b`` was hashed: written unescaped it would read as
    Python's text of the original, so the native check must escape it."""
    fields = _record(reason='a"b\\c')
    rows = _chain([fields])
    seq, _, prev, stored = rows[0]
    looks_escaped = {**fields, "reason": 'a\\"b\\\\c'}
    found = _check(_stream([(seq, looks_escaped, prev, stored)]), 64)
    assert [(p[0], p[1]) for p in found.problems] == [(1, UNHASHED)]
    assert chain.record_hash(prev, seq, chain.canonical_body(looks_escaped)) != stored


def test_links_and_gaps_are_reported_with_the_record_before() -> None:
    fields = _record(actor_roles="caseworker", individual_id=uuid.UUID(int=7))
    rows = _chain([fields, fields, fields])
    assert _check(_stream(rows), 50).problems == []
    gap = [rows[0], rows[2]]
    assert _check(_stream(gap), 50).problems == [(3, GAP, 1, 2, "gap: expected seq 2, found 3")]
    seq, f, _, stored = rows[1]
    unlinked = [rows[0], (seq, f, GENESIS_HASH, stored), rows[2]]
    assert _check(_stream(unlinked), 50).problems == [
        (2, UNLINKED, 1, 2, "prev_hash does not match the previous record")
    ]


def test_what_it_cannot_write_as_python_is_left_to_python() -> None:
    """A time before the year 1000 (Python's strftime writes the year with fewer digits)
    and text that is not UTF-8 are left to Python's check, not failed."""
    fields = _record()
    rows = _chain([fields, fields | {"at": datetime(999, 1, 1, tzinfo=UTC)}, fields])
    seq, f, prev, stored = rows[2]
    rows[2] = (seq, f | {"reason": b"\xff"}, prev, stored)
    found = _check(_stream(rows), 64)
    assert [(p[0], p[1]) for p in found.problems] == [(2, UNSURE), (3, UNSURE)]


def test_more_records_to_tell_about_than_one_call_holds() -> None:
    """A chunk with more records for Python's check than the native check notes at once
    (256): it is read in several calls, every record told, none lost."""
    fields = _record(
        at=datetime(999, 12, 2, tzinfo=UTC),
        action="consent.withdraw",
        reason="Återkallat av vårdnadshavare",
    )
    rows = _chain([fields] * 600)
    found = _check(_stream(rows), 10**7)
    assert [(p[0], p[1]) for p in found.problems] == [(seq, UNSURE) for seq in range(1, 601)]
    assert (found.count, found.last_hash) == (600, rows[-1][3])
