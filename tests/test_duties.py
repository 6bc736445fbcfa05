"""Separation of duties (finding 2 of the 2026-11 outside test), decided in
policies/duties.cedar: administrator and auditor are never one account; nobody reviews a
record of what they did or of their own account; an account change that can open case
content is flagged for review.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit.models import AuditEvent
from app.users.models import Role, User
from tests.factories import audit_events_after, audit_head, bearer, make_agency, make_user

API = "/api/v1"


@pytest.fixture
async def staff(session: AsyncSession) -> dict[str, User]:
    agency = await make_agency(session)
    return {
        "admin": await make_user(session, roles={Role.ADMIN}, agency=agency),
        "auditor": await make_user(session, roles={Role.AUDITOR}, agency=agency),
        "other_auditor": await make_user(session, roles={Role.AUDITOR}, agency=agency),
        "caseworker": await make_user(session, roles={Role.CASEWORKER}, agency=agency),
    }


async def _as(
    client: httpx.AsyncClient, app: FastAPI, user: User, method: str, path: str, **kw: Any
) -> httpx.Response:
    return await client.request(method, API + path, headers=bearer(app, user), **kw)


@pytest.mark.parametrize("target", ["admin", "auditor"])
async def test_admin_and_auditor_are_never_one_account(
    client: httpx.AsyncClient,
    app: FastAPI,
    staff: dict[str, User],
    session: AsyncSession,
    connection: AsyncConnection,
    target: str,
) -> None:
    """The admin may not give itself (or anyone) the other role: 422, nothing changed,
    one audit record."""
    user = staff[target]
    before = await audit_head(connection)
    response = await _as(
        client,
        app,
        staff["admin"],
        "PATCH",
        f"/users/{user.id}",
        json={"roles": ["admin", "auditor"]},
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["body.roles"]
    assert len(await audit_events_after(connection, before)) == 1
    await session.refresh(user)
    assert "auditor" not in user.roles or "admin" not in user.roles


async def test_no_account_is_created_with_both(
    client: httpx.AsyncClient, app: FastAPI, staff: dict[str, User], session: AsyncSession
) -> None:
    response = await _as(
        client,
        app,
        staff["admin"],
        "POST",
        "/users",
        json={
            "username": "dubbel.roll",
            "display_name": "Dubbel Roll",
            "agency_id": str(staff["admin"].agency_id),
            "roles": ["auditor", "admin"],
            "password": "a long enough password",
        },
    )
    assert response.status_code == 422
    found = await session.execute(select(User).where(User.username == "dubbel.roll"))
    assert found.first() is None


async def test_an_account_that_holds_both_from_before_does_nothing(
    client: httpx.AsyncClient, app: FastAPI, session: AsyncSession
) -> None:
    both = await make_user(session, roles={Role.ADMIN, Role.AUDITOR})
    for path in ("/audit/events", "/users", "/clients"):
        assert (await _as(client, app, both, "GET", path)).status_code == 403, path


async def _record_of(connection: AsyncConnection, **where: Any) -> int:
    rows = await connection.execute(
        select(AuditEvent.seq).filter_by(**where).order_by(AuditEvent.seq.desc()).limit(1)
    )
    seq = rows.scalar_one_or_none()
    assert seq is not None, where
    return int(seq)


async def test_nobody_reviews_their_own_records(
    client: httpx.AsyncClient,
    app: FastAPI,
    staff: dict[str, User],
    connection: AsyncConnection,
) -> None:
    auditor = staff["auditor"]
    await _as(client, app, auditor, "GET", "/audit/events")  # writes audit.search by them
    own = await _record_of(connection, actor_user_id=auditor.id, action="audit.search")
    before = await audit_head(connection)
    path = f"/audit/events/{own}/review"
    refused = await _as(client, app, auditor, "POST", path, json={"note": "Inget att anmärka."})
    assert refused.status_code == 403
    [denial] = await audit_events_after(connection, before)
    assert (denial.decision, denial.policy_id) == ("deny", "duties.no_review_of_own_records")
    # another auditor may
    done = await _as(client, app, staff["other_auditor"], "POST", path, json={"note": "Granskad."})
    assert done.status_code == 201, done.text


async def test_nobody_reviews_a_record_about_their_own_account(
    client: httpx.AsyncClient,
    app: FastAPI,
    staff: dict[str, User],
    connection: AsyncConnection,
) -> None:
    auditor = staff["auditor"]
    changed = await _as(
        client,
        app,
        staff["admin"],
        "PATCH",
        f"/users/{auditor.id}",
        json={"display_name": "Granskare Ny"},
    )
    assert changed.status_code == 200
    about = await _record_of(connection, action="user.update", resource_id=str(auditor.id))
    refused = await _as(
        client, app, auditor, "POST", f"/audit/events/{about}/review", json={"note": "Ok."}
    )
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("change", "flagged"),
    [
        ({"password": "a new long enough password"}, True),  # the admin could sign in as them
        ({"roles": ["caseworker", "coordinator"]}, True),  # a new content role
        ("move", True),  # another agency's cases
        ({"display_name": "Nytt Namn"}, False),
    ],
    ids=["password-reset", "content-role", "agency-move", "display-name"],
)
async def test_account_changes_that_open_content_are_flagged_for_review(
    client: httpx.AsyncClient,
    app: FastAPI,
    staff: dict[str, User],
    session: AsyncSession,
    connection: AsyncConnection,
    change: Any,
    flagged: bool,
) -> None:
    if change == "move":
        change = {"agency_id": str((await make_agency(session)).id)}
    before = await audit_head(connection)
    response = await _as(
        client, app, staff["admin"], "PATCH", f"/users/{staff['caseworker'].id}", json=change
    )
    assert response.status_code == 200, response.text
    [record] = await audit_events_after(connection, before)
    assert ("account_change" in record.flags) is flagged


async def test_a_new_content_account_is_flagged(
    client: httpx.AsyncClient, app: FastAPI, staff: dict[str, User], connection: AsyncConnection
) -> None:
    before = await audit_head(connection)
    response = await _as(
        client,
        app,
        staff["admin"],
        "POST",
        "/users",
        json={
            "username": f"hjalpkonto.{uuid.uuid4().hex[:6]}",
            "display_name": "Hjälpkonto",
            "agency_id": str(staff["admin"].agency_id),
            "roles": ["caseworker"],
            "password": "a long enough password",
        },
    )
    assert response.status_code == 201
    [record] = await audit_events_after(connection, before)
    assert "account_change" in record.flags
