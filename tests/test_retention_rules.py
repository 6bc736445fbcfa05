"""A retention file that is wrong stops the app, naming the line; a second run while one
holds the lock exits with a clear message and culls nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.policy.engine import PolicyEngine, PolicyError, policies_dir
from app.retention import lock as retention_lock
from app.retention.rules import RetentionFileError, parse
from tests.conftest import migrated_database

GOOD = (policies_dir() / "retention.yaml").read_text(encoding="utf-8")
MINIMUM = 1826


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _replaced(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


BROKEN = {
    "an unknown kind": (_replaced("kind: meeting", "kind: meetings"), "kind: meetings", "kind"),
    "a negative period": (
        _replaced("period_days: 1096", "period_days: -30"),
        "period_days: -30",
        "greater than or equal to 1",
    ),
    "a missing period": (
        _replaced("    period_days: 90\n", ""),
        "id: outbox-90d",
        "period_days: required",
    ),
    "the audit log below its legal minimum": (
        _replaced("period_days: 3653", "period_days: 365"),
        "period_days: 365",
        "at least 1826 days",
    ),
    "a trigger the kind does not have": (
        _replaced("trigger: last_activity", "trigger: record_created"),
        "trigger: record_created",
        "not kept from record_created",
    ),
    "an agency kind on a kind no agency records": (
        _replaced("    kind: case\n", "    kind: case\n    agency_kind: polis\n"),
        "agency_kind: polis",
        "agency_kind does not apply",
    ),
    "a case's contents kept longer than the case": (
        _replaced("period_days: 1096", "period_days: 4000"),
        "id: entry-police-3y",
        "longer than its case",
    ),
    "an unknown field": (
        _replaced("period_days: 90", "period_days: 90\n    keep_forever: true"),
        "keep_forever",
        "keep_forever",
    ),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_retention_file_is_refused_naming_the_line(name: str, tmp_path: Path) -> None:
    text, at, message = BROKEN[name]
    with pytest.raises(RetentionFileError) as refused:
        parse(text, audit_minimum_days=MINIMUM)
    assert f"line {_line_of(text, at)}:" in str(refused.value)
    assert message in str(refused.value)
    # ... and the app does not start on it (the decision point loads it at start-up).
    directory = tmp_path / "policies"
    shutil.copytree(policies_dir(), directory)
    (directory / "retention.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match=f"line {_line_of(text, at)}"):
        PolicyEngine(directory)


def test_every_kind_needs_a_rule() -> None:
    start = GOOD.index("  - id: outbox-90d")
    with pytest.raises(RetentionFileError, match="no rule for outbox"):
        parse(GOOD[:start], audit_minimum_days=MINIMUM)


def test_the_shipped_file_is_valid_and_says_it_holds_examples() -> None:
    rules = parse(GOOD, audit_minimum_days=MINIMUM)
    assert len(rules.rules) >= 12
    assert "EXAMPLES ONLY" in GOOD


async def _retention_run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "retention", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_a_second_run_exits_while_one_holds_the_lock(backend: str, tmp_path: Path) -> None:
    async with migrated_database(backend, tmp_path) as (url, database):
        env = os.environ | {"SAMVERKAN_DATABASE_URL": url, "SAMVERKAN_DATA_DIR": str(tmp_path)}
        async with retention_lock.held(database.engine):
            blocked = await _retention_run(env)
        assert blocked.returncode == 4, blocked.stderr
        assert "another retention run holds the lock" in blocked.stderr
        done = await _retention_run(env)
        assert done.returncode == 0, done.stderr
        assert '"run_id"' in done.stdout
