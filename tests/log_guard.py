"""No personal data in application logs: every line the app's log handler writes during the
whole suite is checked (a pytest plugin, loaded from tests/conftest.py).

A line fails if it holds something shaped like a valid personnummer or samordningsnummer, a
surname the tests give individuals, a JWT, or a password the tests use. Failures are listed
at the end of the run with the test that caused them, and the run fails.

Tests that feed the logger such values on purpose, to show that they are masked, still pass:
what they check is the *written* line, which is what this guard reads too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from stdnum.se import personnummer

import app.logging as app_logging

_NUMBER = re.compile(r"(?<![0-9A-Za-z-])((?:19|20)?\d{6}[-+]?\d{4})(?![0-9A-Za-z-])")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.")
# Names the tests give individuals and guardians; none may ever reach a log line.
_NAMES = re.compile(r"\b(Testsson|Demosson|Hemlig|Hemligsson)\b")
_PASSWORDS = ("correct horse battery staple", "a long enough password")


def _valid_number(candidate: str) -> bool:
    digits = re.sub(r"[-+]", "", candidate)
    if len(digits) == 10:
        digits = "20" + digits
    day = int(digits[6:8])
    if day > 60:  # samordningsnummer: day + 60
        digits = digits[:6] + f"{day - 60:02d}" + digits[8:]
    return bool(personnummer.is_valid(digits))


def problems_in(line: str) -> list[str]:
    found = [f"personal number {m}" for m in _NUMBER.findall(line) if _valid_number(m)]
    found += [f"name {m}" for m in _NAMES.findall(line)]
    if _JWT.search(line):
        found.append("a JWT")
    found += [f"password {p!r}" for p in _PASSWORDS if p in line]
    return found


@dataclass
class _Guard:
    current: str = "(collection)"
    lines: int = 0
    violations: list[str] = field(default_factory=list)


GUARD = _Guard()
_original_format = app_logging._StderrHandler.format


def _checked_format(self: app_logging._StderrHandler, record: object) -> str:
    line: str = _original_format(self, record)  # type: ignore[arg-type]
    GUARD.lines += 1
    for problem in problems_in(line):
        GUARD.violations.append(f"{GUARD.current}: {problem}: {line[:300]}")
    return line


def pytest_configure(config: pytest.Config) -> None:
    app_logging._StderrHandler.format = _checked_format  # type: ignore[method-assign]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    GUARD.current = item.nodeid


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if GUARD.violations:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = [f"personal data or secrets in {len(GUARD.violations)} log line(s):"]
        lines += GUARD.violations[:50]
        if reporter is not None:
            reporter.write_line("\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
