"""What schemathesis found (2026-11-23): values pydantic's lax mode would have converted,
a number too large for the audit log's seq, and a null the database refused with a 409.
Each is a 422 now, and nothing changes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.scenarios import Scenario, World, call, consent_body, individual_body


@pytest.mark.parametrize(
    ("actor", "method", "path", "body"),
    [
        ("soc_auditor", "GET", "/audit/events/186040687600257623878812041216", None),
        ("soc_auditor", "GET", "/audit/events?to=0.5", None),
        ("soc_auditor", "GET", "/audit/export?from=1700000000", None),
        ("soc_admin", "PATCH", "/users/{user}", {"active": 0}),
        ("soc_admin", "PATCH", "/agencies/{agency}", {"kind": None}),
        ("soc_admin", "PATCH", "/agencies/{agency}", {"name": None}),
        ("soc_coordinator", "POST", "/individuals", individual_body(protected_identity=1)),
    ],
)
async def test_lax_or_out_of_range_input_is_refused(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    actor: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    concrete = path.format(user=world.soc_caseworker.id, agency=world.skola.id)
    response = await call(client, app, getattr(world, actor), method, concrete, json=body)
    assert response.status_code == 422, response.text
    if method == "PATCH":
        again = await call(client, app, world.soc_admin, "GET", concrete)
        assert again.status_code == 200
        unchanged = again.json()
        assert unchanged["active"] is True if "users" in concrete else unchanged["kind"]


async def test_a_consent_valid_from_a_unix_timestamp_is_refused(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    body = consent_body(scenario, world) | {"valid_from": 1700000000}
    response = await call(
        client,
        app,
        world.soc_coordinator,
        "POST",
        f"/cases/{scenario.case['id']}/consents",
        json=body,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.valid_from"


def test_every_body_documents_400_and_413_and_every_api_route_503(app: FastAPI) -> None:
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if "requestBody" in operation:
                assert {"400", "413"} <= responses.keys(), f"{method} {path}"
            if path.startswith("/api/"):
                assert "503" in responses, f"{method} {path}"
