"""The suite-wide log guard (tests/log_guard.py) recognises what it must: it is not a test
that cannot fail."""

from __future__ import annotations

import pytest

from tests.log_guard import problems_in


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ('{"event": "x", "pnr": "20100303-2388"}', "personal number"),
        ('{"q": "201003032388"}', "personal number"),
        ('{"q": "100303-2388"}', "personal number"),
        ('{"event": "read Kim Testsson"}', "name"),
        ('{"authorization": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.sig"}', "JWT"),
        ('{"body": "correct horse battery staple"}', "password"),
    ],
)
def test_the_guard_finds(line: str, kind: str) -> None:
    assert any(kind in problem for problem in problems_in(line))


@pytest.mark.parametrize(
    "line",
    [
        '{"request_id": "5383c376fa5b4e8f9f289eebb6fae5af", "pnr": "[REDACTED]"}',
        '{"actor_id": "00000000-0000-0000-0000-201003032388"}',  # inside a uuid
        '{"duration_ms": 1700000000123}',
        '{"seq": 2010030323}',  # not a valid number (checksum)
    ],
)
def test_the_guard_leaves_alone(line: str) -> None:
    assert problems_in(line) == []
