"""Hostile input, swept over every route that takes a JSON body (from the authorization
matrix, each with a body the route accepts and an actor it permits): a control character in
each text field in turn, and an extreme time in each time field in turn. Each must be a 422
that names the field and does not echo the value, change nothing, and leave one audit
record. Plus the query strings, cursors and the token endpoint the outside test used.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tests.factories import PASSWORD, audit_events_after, audit_head, make_user
from tests.scenarios import Scenario, World, call, register_consent
from tests.test_authorization_matrix import ROWS, Ctx, Row, _build

TIME_FIELDS = {"valid_from", "valid_until", "signed_at", "withdrawn_at"}
EXTREME_TIMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1899-12-31T23:59:59Z"]
BAD_TEXT = ["\x00", "a\x00b", "\x1b[31m", "\x7f", "\r"]
WITH_BODY = [row for row in ROWS if row.body is not None and row.method in {"POST", "PATCH"}]


def _strings(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))


def _replaced(value: Any, path: tuple[Any, ...], new: str) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return copy


async def _permitted(row: Row, ctx: Ctx) -> str | None:
    from tests.test_authorization_matrix import ACTORS  # noqa: PLC0415 - the matrix's order

    return next((a for a in ACTORS if row.rule(a, ctx).status in {200, 201, 204}), None)


async def test_no_text_field_takes_control_characters_and_no_time_field_takes_extremes(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
    connection: AsyncConnection,
) -> None:
    ctx = await _build(client, app, world, scenario, session, "active")
    report: list[str] = []
    tried = 0
    for row in WITH_BODY:
        actor = await _permitted(row, ctx)
        if actor is None:
            continue
        assert row.body is not None
        body = row.body(actor, ctx)
        path = re.sub(r"\{(\w+)\}", lambda m: ctx.ids[m.group(1)], row.template)
        for where, value in _strings(body):
            field = ".".join(str(p) for p in ("body", *where))
            is_time = where and where[-1] in TIME_FIELDS
            for bad in EXTREME_TIMES if is_time else [value + b for b in BAD_TEXT[:2]]:
                savepoint = await connection.begin_nested()
                try:
                    before = await audit_head(connection)
                    response = await call(
                        client,
                        app,
                        getattr(world, actor),
                        row.method,
                        path,
                        json=_replaced(body, where, bad),
                    )
                    events = await audit_events_after(connection, before)
                finally:
                    await savepoint.rollback()
                tried += 1
                label = f"{row.method} {row.template} {field}={bad!r} as {actor}"
                if response.status_code != 422:
                    report.append(f"{label}: {response.status_code} {response.text[:200]}")
                    continue
                fields = {e.get("field") for e in response.json().get("errors", [])}
                if not any(f and f.startswith(field.rsplit(".", 1)[0]) for f in fields):
                    report.append(f"{label}: names {sorted(map(str, fields))}")
                if "\\u0000" in response.text or bad in response.text:
                    report.append(f"{label}: the value is echoed")
                if len(events) != 1:
                    report.append(f"{label}: {len(events)} audit records")
    assert tried > 50
    assert report == [], "\n".join(report)


@pytest.mark.parametrize("bad", BAD_TEXT)
async def test_every_control_character_is_refused(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario, bad: str
) -> None:
    response = await call(
        client,
        app,
        world.soc_caseworker,
        "POST",
        f"/cases/{scenario.case['id']}/entries",
        json={"category": "contact", "title": f"Ti{bad}tel", "body": "Tab\tand\nnewline pass."},
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.title"]


async def test_tab_and_newline_are_text(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    response = await call(
        client,
        app,
        world.soc_caseworker,
        "POST",
        f"/cases/{scenario.case['id']}/entries",
        json={"category": "contact", "title": "Titel", "body": "Rad ett\n\tRad två"},
    )
    assert response.status_code == 201, response.text


def _cursor(*key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("user", "path"),
    [
        ("soc_auditor", "/audit/events?from=0001-01-01T00:00:00%2B01:00"),
        ("soc_auditor", "/audit/events?to=9999-12-31T23:59:59-01:00"),
        ("soc_auditor", "/audit/events?action=%00"),
        ("soc_auditor", "/audit/export?action=entry%00.read"),
        ("soc_auditor", "/audit/events?cursor=" + _cursor("1" + "0" * 29)),
        ("soc_auditor", "/audit/events?cursor=" + _cursor("-5")),
        ("soc_coordinator", "/cases?cursor=" + _cursor("0001-01-01T00:00:00+01:00", "x")),
        (
            "soc_coordinator",
            "/cases?cursor="
            + _cursor("9999-12-31T23:59:59-01:00", "00000000-0000-0000-0000-000000000000"),
        ),
        ("soc_coordinator", "/individuals?personal_number=20100303%002388"),
    ],
)
async def test_queries_and_cursors_are_range_checked(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    connection: AsyncConnection,
    user: str,
    path: str,
) -> None:
    before = await audit_head(connection)
    response = await call(client, app, getattr(world, user), "GET", path)
    assert response.status_code == 422, response.text
    assert "\\u0000" not in response.text
    assert len(await audit_events_after(connection, before)) == 1


@pytest.mark.parametrize("name", ["nul\x00name", "\x00", "esc\x1b"])
async def test_a_username_with_control_characters_is_a_failed_sign_in(
    client: httpx.AsyncClient,
    app: FastAPI,
    session: AsyncSession,
    connection: AsyncConnection,
    name: str,
) -> None:
    """Counted by the throttle and recorded like any unknown user, not a 500."""
    await make_user(session, password=PASSWORD)
    before = await audit_head(connection)
    response = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": name, "password": PASSWORD},
    )
    assert response.status_code == 401, response.text
    [event] = await audit_events_after(connection, before)
    assert (event.action, event.reason) == ("auth.login_failed", "unknown user")


@pytest.mark.parametrize(("user", "status"), [("pol_caseworker", 403), ("skola_coordinator", 404)])
async def test_an_upload_is_decided_before_its_body_is_read(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    user: str,
    status: int,
) -> None:
    """10 MiB offered by someone who may not store the form: refused after the first
    chunk at most, not after the server took it all in."""
    consent = await register_consent(client, app, world, scenario)
    assert consent.status_code == 201, consent.text
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(160):  # 160 x 64 KiB
            sent += 1
            yield b"%PDF" + b"\0" * (65536 - 4)

    response = await call(
        client,
        app,
        getattr(world, user),
        "PUT",
        f"/consents/{consent.json()['id']}/document",
        content=body(),
    )
    assert response.status_code == status
    assert sent <= 1


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", None], ids=str
)
async def test_every_json_route_refuses_another_media_type(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    scenario: Scenario,
    session: AsyncSession,
    connection: AsyncConnection,
    content_type: str | None,
) -> None:
    """415, not "Input should be a valid dictionary"; nothing changed; one record."""
    ctx = await _build(client, app, world, scenario, session, "active")
    report = []
    for row in WITH_BODY:
        actor = await _permitted(row, ctx)
        if actor is None:
            continue
        assert row.body is not None
        path = re.sub(r"\{(\w+)\}", lambda m: ctx.ids[m.group(1)], row.template)
        headers = {"content-type": content_type} if content_type else {}
        savepoint = await connection.begin_nested()
        try:
            before = await audit_head(connection)
            response = await call(
                client,
                app,
                getattr(world, actor),
                row.method,
                path,
                content=json.dumps(row.body(actor, ctx)).encode(),
                headers=headers,
            )
            events = await audit_events_after(connection, before)
        finally:
            await savepoint.rollback()
        if response.status_code != 415 or len(events) != 1 or events[0].flags != "invalid":
            report.append(f"{row.method} {row.template}: {response.status_code}, {events}")
    assert report == [], "\n".join(report)


async def test_the_token_endpoint_refuses_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/token", json={"grant_type": "password", "username": "a", "password": "b"}
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_form_can_be_uploaded_as_multipart(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    """What a browser sends: multipart/form-data with the file in `file`."""
    consent = await register_consent(client, app, world, scenario)
    path = f"/consents/{consent.json()['id']}/document"
    pdf = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
    missing = await call(
        client, app, world.soc_coordinator, "PUT", path, files={"other": ("a.pdf", pdf)}
    )
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == ["body.file"]
    stored = await call(
        client,
        app,
        world.soc_coordinator,
        "PUT",
        path,
        files={"file": ("samtycke.pdf", pdf, "application/octet-stream")},
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["media_type"] == "application/pdf"  # by its content
    read = await call(client, app, world.soc_coordinator, "GET", path)
    assert read.content == pdf
