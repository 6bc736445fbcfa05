"""Operations endpoints: liveness, readiness, metrics, OpenAPI and the self-hosted docs."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import Settings
from app.db import Database
from app.main import create_app
from app.migrate import head_revisions, upgrade_connection
from tests.conftest import client_for, make_settings, throwaway_database


async def test_healthz_answers_without_the_database(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path}/no/such/dir.db")
    database = Database.from_settings(settings)
    async with client_for(create_app(settings, database=database)) as client:
        response = await client.get("/healthz")
    await database.dispose()
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "database": "ok",
        "schema_revision": sorted(head_revisions()),
    }


async def test_readyz_is_503_on_an_unmigrated_database(backend: str, tmp_path: Path) -> None:
    async with throwaway_database(backend, tmp_path) as url:
        settings = make_settings(url)
        database = Database.from_settings(settings)
        try:
            async with client_for(create_app(settings, database=database)) as client:
                before = await client.get("/readyz")
                async with database.engine.connect() as connection:
                    await upgrade_connection(connection)
                    await connection.commit()
                after = await client.get("/readyz")
        finally:
            await database.dispose()
    assert before.status_code == 503
    body = before.json()
    assert body["type"] == "urn:samverkan:problem:service-unavailable"
    assert body["schema_revision"] == []
    assert body["expected_revision"] == sorted(head_revisions())
    assert after.status_code == 200


async def test_readyz_is_503_when_the_schema_is_behind(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    await connection.execute(text("UPDATE alembic_version SET version_num = 'older_revision'"))
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["schema_revision"] == ["older_revision"]


async def test_readyz_is_503_when_the_database_is_unreachable(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/missing-dir/none.db"
    else:
        url = "postgresql+asyncpg://postgres@127.0.0.1:1/none"
    settings = make_settings(url, db_connect_timeout_seconds=1)
    database = Database.from_settings(settings)
    try:
        async with client_for(create_app(settings, database=database)) as client:
            response = await client.get("/readyz")
    finally:
        await database.dispose()
    assert response.status_code == 503
    assert response.json()["detail"] == "The database is unreachable."


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    await client.get("/api/v1/nowhere/19900101-1234")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    assert re.search(
        r'samverkan_http_requests_total\{method="GET",route="/healthz",status="200"\} \d', body
    )
    assert 'route="<unmatched>",status="404"' in body
    assert "samverkan_http_request_duration_seconds_bucket" in body
    assert "19900101-1234" not in body


async def test_metrics_name_starlette_routes_and_mounts_by_template(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/api/v1/openapi.json")
    await client.get("/docs/assets/swagger-ui.css")
    body = (await client.get("/metrics")).text
    assert 'route="/api/v1/openapi.json",status="200"' in body
    assert 'route="/docs/assets/{path}",status="200"' in body
    assert "swagger-ui.css" not in body


async def test_metrics_and_logs_name_prefixed_routes_in_full(client: httpx.AsyncClient) -> None:
    await client.get(f"/api/v1/agencies/{uuid.uuid4()}")
    body = (await client.get("/metrics")).text
    assert 'route="/api/v1/agencies/{agency_id}",status="401"' in body


async def test_openapi_document_is_3_1_under_api_v1(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.1")
    assert {"/healthz", "/readyz", "/metrics"} <= spec["paths"].keys()


async def test_docs_page_loads_nothing_from_outside(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    page = response.text
    assert "http://" not in page
    assert "https://" not in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(assets) >= 3
    for asset in assets:
        assert asset.startswith("/docs/assets/")
        fetched = await client.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 0
    assert "validatorUrl" in page


async def test_docs_page_csp_allows_only_this_server(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    sources = " ".join(
        part.split(" ", 1)[1] for part in csp.split("; ") if " " in part.strip()
    ).split()
    assert all(s.startswith("'") or s == "data:" for s in sources), "no host may be named"
    for script in re.findall(r"<script>(.*?)</script>", response.text, flags=re.S):
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp


async def test_docs_can_be_disabled(settings: Settings, connection: AsyncConnection) -> None:
    disabled = make_settings(settings.database_url, docs_enabled=False)
    app: FastAPI = create_app(disabled, database=Database.bound_to(connection))
    async with client_for(app) as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/api/v1/openapi.json")).status_code == 404


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"])
async def test_operations_need_no_token(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200


async def test_openapi_documents_problem_bodies_not_fastapis_default(
    probe_client: httpx.AsyncClient,
) -> None:
    spec = (await probe_client.get("/api/v1/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"Problem", "ValidationProblem", "FieldError"} <= schemas.keys()
    invalid = spec["paths"]["/test/probe"]["post"]["responses"]["422"]
    assert invalid["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/ValidationProblem"}}
    }
    not_ready = spec["paths"]["/readyz"]["get"]["responses"]["503"]
    assert "application/problem+json" in not_ready["content"]
