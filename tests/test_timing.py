"""A hidden object and a missing one answer alike in time too (finding 9 of the 2026-11
outside test: 5-7 ms against 3 ms told a caller with a guessed id that it exists).

Both take the same path: a missing id is decided like a hidden one, with the same
statements (app.individuals.service.decoy_decision). The test interleaves a few hundred
calls of each and compares medians; it has no time bound of its own, and fails only if the
hidden one is consistently slower than the missing one by more than RATIO.
"""

from __future__ import annotations

import statistics
import time
import uuid

import httpx
import pytest
from fastapi import FastAPI

from app.users.models import User
from tests.scenarios import Scenario, World, call

CALLS = 300
WARM_UP = 20
RATIO = 1.25


async def _timed(client: httpx.AsyncClient, app: FastAPI, user: User, path: str) -> float:
    started = time.perf_counter()
    response = await call(client, app, user, "GET", path)
    elapsed = time.perf_counter() - started
    assert response.status_code == 404
    return elapsed


@pytest.mark.parametrize("kind", ["entries", "individuals", "cases"])
async def test_a_hidden_object_is_not_slower_than_a_missing_one(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario, kind: str
) -> None:
    if kind == "entries":
        created = await call(
            client,
            app,
            world.soc_caseworker,
            "POST",
            f"/cases/{scenario.case['id']}/entries",
            json={"category": "social_services", "title": "Hembesök", "body": "Samtal."},
        )
        hidden = created.json()["id"]
    else:
        hidden = scenario.individual["id"] if kind == "individuals" else scenario.case["id"]
    outsider = world.skola_coordinator  # takes part in nothing: both are a 404
    hidden_s, missing_s = [], []
    for i in range(WARM_UP + CALLS):  # pairwise, so that a busy moment hits both alike
        h = await _timed(client, app, outsider, f"/{kind}/{hidden}")
        m = await _timed(client, app, outsider, f"/{kind}/{uuid.uuid4()}")
        if i >= WARM_UP:
            hidden_s.append(h)
            missing_s.append(m)
    ratio = statistics.median(hidden_s) / statistics.median(missing_s)
    assert ratio < RATIO, (
        f"hidden {statistics.median(hidden_s) * 1000:.2f} ms against missing "
        f"{statistics.median(missing_s) * 1000:.2f} ms"
    )
