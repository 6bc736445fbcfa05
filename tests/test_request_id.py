"""X-Request-ID: kept when it is a sane token, generated otherwise, on every response."""

from __future__ import annotations

import re

import httpx
import pytest

GENERATED = re.compile(r"^[0-9a-f]{32}$")


async def test_generated_when_absent(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert GENERATED.match(response.headers["x-request-id"])


async def test_each_request_gets_its_own(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize(
    "given", ["abc-123", "trace:7f3a.b_9", "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "x" * 128]
)
async def test_sane_id_is_kept(client: httpx.AsyncClient, given: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": given})
    assert response.headers["x-request-id"] == given


@pytest.mark.parametrize(
    "given",
    [
        "",
        "has space",
        "x" * 129,
        "semi;colon",
        '{"json":1}',
        "-leading-dash",
        "199001011234",  # shaped like a personnummer: would end up in audit records
        "900101-1234",
    ],
)
async def test_insane_id_is_replaced(client: httpx.AsyncClient, given: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": given})
    assert response.headers["x-request-id"] != given
    assert GENERATED.match(response.headers["x-request-id"])


async def test_present_on_errors(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope", headers={"X-Request-ID": "err-check-1"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "err-check-1"
    assert response.json()["request_id"] == "err-check-1"


async def test_responses_are_not_cacheable(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
