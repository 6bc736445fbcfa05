"""Every route of the app, enumerated: none is reachable without a token unless it is
meant to be public, so a new endpoint cannot ship open by accident."""

from __future__ import annotations

import inspect
import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.main import create_app
from tests.conftest import make_settings

PUBLIC = {
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/revoke"),
    ("GET", "/api/v1/auth/providers"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
}


def _routes() -> list[tuple[str, str]]:
    app = create_app(make_settings("sqlite+aiosqlite://"))
    spec = app.openapi()
    found = {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}
    found |= {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    return sorted(found)


ROUTES = _routes()


def test_the_api_has_the_routes_of_the_contract() -> None:
    paths = {p for _, p in ROUTES}
    for expected in (
        "/api/v1/individuals/{individual_id}",
        "/api/v1/cases/{case_id}/consents",
        "/api/v1/consents/{consent_id}/withdrawal",
        "/api/v1/cases/{case_id}/entries",
        "/api/v1/entries/{entry_id}/corrections",
        "/api/v1/cases/{case_id}/emergency-access",
    ):
        assert expected in paths


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_no_route_answers_without_a_token_unless_public(
    client: httpx.AsyncClient, app: FastAPI, method: str, path: str
) -> None:
    concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
    response = await client.request(method, concrete, json={})
    if (method, path) in PUBLIC:
        assert response.status_code != 401
    else:
        assert response.status_code == 401, f"{method} {path} answered {response.status_code}"
        assert response.headers["content-type"] == "application/problem+json"


def operations(app: FastAPI) -> list[Any]:
    """Every API route as FastAPI serves it: ``methods``, ``path``, ``dependant``,
    ``status_code``, ``endpoint`` (routes of included routers live in private contexts)."""
    found: list[Any] = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "effective_route_contexts"):
            found += [c for c in route.effective_route_contexts() if c.dependant is not None]
    return found


def _dependants(app: FastAPI) -> list[tuple[str, Any]]:
    """Each route's path and its dependency tree as FastAPI solves it, router-level
    dependencies included (FastAPI keeps those of included routers in private contexts)."""
    found = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            found.append((route.path, route.dependant))
        elif hasattr(route, "effective_route_contexts"):
            found += [
                (context.path, context.dependant)
                for context in route.effective_route_contexts()
                if context.dependant is not None
            ]
    return found


def test_no_dependency_or_handler_of_the_api_runs_in_the_threadpool() -> None:
    """A plain ``def`` dependency or handler is run in a worker thread by FastAPI: two such
    hops cost every request more than a SQL statement does (measured, docs/performance.md).
    Blocking work has no place in a request here anyway."""
    app = create_app(make_settings("sqlite+aiosqlite://"))
    dependants = _dependants(app)
    assert {path for path, _ in dependants} >= {path for _, path in ROUTES if "/api/" in path}
    sync = set()
    for path, root in dependants:
        pending = [root]
        while pending:
            dependant = pending.pop()
            pending.extend(dependant.dependencies)
            call = dependant.call
            if call is None:
                continue
            target = call if inspect.isfunction(call) else type(call).__call__
            if not (inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)):
                sync.add(f"{path}: {getattr(call, '__qualname__', repr(call))}")
    assert not sync, sorted(sync)


def _methods_by_path() -> dict[str, set[str]]:
    by_path: dict[str, set[str]] = {}
    for method, path in ROUTES:
        by_path.setdefault(path, set()).add(method)
    return by_path


@pytest.mark.parametrize(
    ("path", "methods"),
    sorted(_methods_by_path().items()),
    ids=[p for p, _ in sorted(_methods_by_path().items())],
)
async def test_a_405_names_every_method_of_the_path(
    client: httpx.AsyncClient, path: str, methods: set[str]
) -> None:
    """`Allow` lists every method the app answers there, not only the first route's."""
    concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
    wrong = next(m for m in ("DELETE", "PUT", "PATCH", "POST", "GET") if m not in methods)
    response = await client.request(wrong, concrete)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) - {"HEAD"} == methods


def test_every_list_is_a_page_and_every_answer_has_a_schema() -> None:
    """API.md: lists answer `{items, next_cursor}`; configuration from policies/ (categories,
    legal bases, identity providers: API.md gives the last as an array) is the exception.
    Every JSON answer is described by a schema."""
    spec = create_app(make_settings("sqlite+aiosqlite://")).openapi()
    arrays, undescribed = [], []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            ok = operation["responses"].get("200") or operation["responses"].get("201")
            if ok is None or "content" not in ok:
                continue
            for media, body in ok["content"].items():
                schema = body.get("schema")
                if not schema:
                    undescribed.append(f"{method.upper()} {path} {media}")
                elif (
                    media == "application/json"
                    and method == "get"
                    and (schema.get("type") == "array")
                ):
                    arrays.append(path)
    assert sorted(arrays) == [
        "/api/v1/auth/providers",
        "/api/v1/categories",
        "/api/v1/legal-bases",
    ]
    assert undescribed == []


async def test_checkpoints_come_in_pages(
    client: httpx.AsyncClient, app: FastAPI, world: Any
) -> None:
    from tests.scenarios import call  # noqa: PLC0415 - the shared world's helper

    for _ in range(3):
        made = await call(client, app, world.soc_auditor, "POST", "/audit/checkpoints")
        assert made.status_code == 201
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await call(
            client, app, world.soc_auditor, "GET", "/audit/checkpoints", params=params
        )
        seen += [c["seq"] for c in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 3
    assert seen == sorted(seen, reverse=True)
