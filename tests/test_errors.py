"""Every error is an RFC 9457 problem with the request id, and echoes nothing it was sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import Conflict, NotFound, status_of

PROBLEM_KEYS = {"type", "title", "status", "detail", "request_id"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    assert str(body["type"]).startswith("urn:samverkan:problem:")
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/nothing-here"), 404)


async def test_wrong_method_is_a_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.post("/healthz")
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]


async def test_validation_error_lists_fields_without_echoing_values(
    probe_client: httpx.AsyncClient,
) -> None:
    secret_password = "hunter2-very-secret"
    personal_number = "19900101-1234"
    response = await probe_client.post(
        "/test/probe",
        json={
            "id": "not-a-number",
            "note": "x" * 51,
            "personal_number": personal_number,
            "password": secret_password,
        },
    )
    body = assert_problem(response, 422)
    fields = {e["field"] for e in body["errors"]}  # type: ignore[attr-defined]
    assert fields == {"body.id", "body.note", "body.personal_number", "body.password"}
    for error in body["errors"]:  # type: ignore[attr-defined]
        assert set(error) == {"field", "loc", "type", "message"}
    text = response.text
    for value in (secret_password, personal_number, "not-a-number", "x" * 51):
        assert value not in text


async def test_missing_body_and_wrong_types_are_422(probe_client: httpx.AsyncClient) -> None:
    body = assert_problem(await probe_client.post("/test/probe"), 422)
    assert body["errors"] == [
        {"field": "body", "loc": ["body"], "type": "missing", "message": "Field required"}
    ]


async def test_malformed_json_is_a_422_without_the_document(
    probe_client: httpx.AsyncClient,
) -> None:
    raw = b'{"id": 1, "note": "199001011234 secret'
    response = await probe_client.post(
        "/test/probe", content=raw, headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["type"] == "json_invalid"  # type: ignore[index]
    assert "199001011234" not in response.text
    assert "secret" not in response.text


async def test_invalid_query_parameter_is_not_echoed(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/test/search", params={"personal_number": "19900101-12"})
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "query.personal_number"  # type: ignore[index]
    assert "19900101-12" not in response.text


async def test_declared_body_over_the_limit_is_413_before_reading(
    probe_client: httpx.AsyncClient, app: FastAPI
) -> None:
    limit = app.state.settings.max_body_bytes
    response = await probe_client.post(
        "/test/probe",
        content=b"{" + b" " * limit + b"}",
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 413)


async def test_streamed_body_over_the_limit_is_413(
    probe_client: httpx.AsyncClient, app: FastAPI
) -> None:
    """A chunked body has no Content-Length; the limit is enforced while reading."""
    limit = app.state.settings.max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"id": 1, "note": "'
        for _ in range(limit // 4096 + 2):
            yield b"a" * 4096
        yield b'"}'

    response = await probe_client.post(
        "/test/probe", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


async def test_body_at_the_limit_is_accepted_by_the_limiter(
    probe_client: httpx.AsyncClient, app: FastAPI
) -> None:
    limit = app.state.settings.max_body_bytes
    doc = json.dumps({"id": 1, "note": "ok"}).encode()
    padded = doc[:-1] + b" " * (limit - len(doc)) + b"}"
    assert len(padded) == limit
    response = await probe_client.post(
        "/test/probe", content=padded, headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text


async def test_unhandled_error_is_a_500_problem_without_internals(
    probe_client: httpx.AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    response = await probe_client.post("/test/probe-then-crash", json={"id": 1, "note": "Kalle"})
    body = assert_problem(response, 500)
    text = response.text
    for leak in ("Traceback", "RuntimeError", "boom", "INSERT", "probe", "Kalle"):
        assert leak not in text
    assert "request id" in str(body["detail"])
    err = capfd.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    failures = [line for line in lines if line.get("request_id") == body["request_id"]]
    assert any("Traceback" in line.get("exception", "") for line in failures), err
    assert "199001011234" not in err


@pytest.mark.parametrize(
    "error",
    [
        NotFound(),
        Conflict(),
        RequestValidationError([]),
        StarletteHTTPException(405),
        StarletteHTTPException(418),
        IntegrityError("INSERT", {}, Exception("duplicate")),
        OperationalError("SELECT", {}, Exception("gone")),
        ConnectionRefusedError(),
        RuntimeError("bug"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_status_of_names_what_the_handlers_answer(app: FastAPI, error: Exception) -> None:
    """The audit record of a failed request names the status the client got: the mapping
    in ``status_of`` must agree with the registered handlers (an unhandled error is 500)."""
    handler = next(
        (app.exception_handlers[c] for c in type(error).__mro__ if c in app.exception_handlers),
        None,
    )
    if handler is None:
        status, slug = 500, "internal-error"
    else:
        request = Request({"type": "http", "headers": [], "state": {}})
        response = await handler(request, error)
        status = response.status_code
        slug = str(json.loads(bytes(response.body))["type"]).rsplit(":", 1)[1]
    assert status_of(error) == (status, slug)
