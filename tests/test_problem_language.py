"""Problem documents in Swedish where Accept-Language prefers it: every title and every
detail the code raises has a Swedish text in policies/messages.sv.yaml (found by reading the
code, so a new message cannot ship untranslated), and the API answers in it — 404s, 401s
and validation errors included — while the machine-readable parts stay as they are."""

from __future__ import annotations

import ast
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import app.errors as errors_module
from app.errors import AppError, in_swedish, preferred_language
from app.policy.engine import PolicyEngine
from tests.scenarios import Scenario, World, call
from tests.test_routes import ROUTES

APP = Path(__file__).resolve().parent.parent / "app"
MESSAGES = PolicyEngine().reference.messages_sv
# Calls whose text becomes a problem's detail: the error classes, a field's 422, the
# decision point's refusals (their ``detail=``), and the parsers whose messages are shown.
RAISING = {
    "AppError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "MethodNotAllowed",
    "Conflict", "PayloadTooLarge", "UnsupportedMediaType", "ValidationFailed",
    "TooManyRequests", "ServiceUnavailable", "InvalidPersonalNumber",
}  # fmt: skip
SECOND_ARGUMENT = {"for_field", "CsvProblem", "Refused"}


def _pattern(node: ast.expr) -> str | None:
    """A literal as it is, an f-string with ``{}`` for each value."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def raised_texts() -> dict[str, str]:
    """Every detail text the application can raise, with where."""
    found: dict[str, str] = {}
    for path in sorted(APP.rglob("*.py")):
        if path.name in {"cli.py", "bootstrap.py"}:  # a terminal's messages, not problems
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            texts: list[ast.expr] = []
            if name in RAISING:
                texts += node.args[:1]
            elif name in SECOND_ARGUMENT:
                texts += node.args[1:2]
            texts += [k.value for k in node.keywords if k.arg == "detail"]
            for text in texts:
                pattern = _pattern(text)
                if pattern:
                    found[pattern] = f"{path.relative_to(APP.parent)}:{node.lineno}"
    return found


def test_the_code_raises_texts_to_translate() -> None:
    texts = raised_texts()
    assert len(texts) > 80
    assert "The case is closed: reopen it first." in texts


def test_every_text_the_code_raises_has_a_swedish_text() -> None:
    missing = [
        f"{where}: {text!r}"
        for text, where in raised_texts().items()
        if text not in MESSAGES.details
    ]
    assert missing == []
    titles = {cls.title for cls in [AppError, *_subclasses(AppError)]}
    assert titles - set(MESSAGES.titles) == set()
    assert all(MESSAGES.details[t] != t for t in MESSAGES.details if re.search("[a-z]{4}", t))


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("sv", "sv"),
        ("sv-SE,sv;q=0.9,en;q=0.8", "sv"),
        ("en-GB,en;q=0.9,sv;q=0.8", "en"),
        ("da, sv;q=0.5", "sv"),
        ("de", "en"),
        (None, "en"),
        ("sv;q=0", "en"),
        ("sv;q=bad", "en"),
    ],
)
def test_the_language_a_caller_prefers(header: str | None, language: str) -> None:
    assert preferred_language(header) == language


def test_details_with_values_are_translated_with_the_values() -> None:
    assert in_swedish("Conflict", "A case cannot go from open to paused.") == (
        "Konflikt",
        "Ett ärende kan inte gå från open till paused.",
    )
    assert in_swedish("Invalid input", "3 field(s) failed validation; see 'errors'.")[1] == (
        "3 fält är ogiltiga; se 'errors'."
    )


async def test_the_api_answers_in_swedish_when_asked(
    client: httpx.AsyncClient, app: FastAPI, world: World, scenario: Scenario
) -> None:
    sv = {"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.5"}
    missing = await call(
        client, app, world.soc_coordinator, "GET", f"/cases/{uuid.uuid4()}", headers=sv
    )
    assert (missing.status_code, missing.json()["title"], missing.json()["detail"]) == (
        404,
        "Hittades inte",
        "Hittades inte",
    )
    assert missing.json()["type"] == "urn:samverkan:problem:not-found"
    anonymous = await call(client, app, None, "GET", "/cases", headers=sv)
    assert anonymous.json()["title"] == "Inloggning krävs"
    case = scenario.case["id"]
    moved = await call(
        client,
        app,
        world.soc_coordinator,
        "PATCH",
        f"/cases/{case}",
        headers=sv,
        json={"status": "paused"},
    )
    assert moved.json()["detail"] == "Ett ärende kan inte gå från open till paused."
    invalid = await call(
        client, app, world.soc_coordinator, "POST", "/cases", headers=sv, json={"programme": "x"}
    )
    body = invalid.json()
    assert body["title"] == "Ogiltiga uppgifter"
    assert body["detail"].endswith("fält är ogiltiga; se 'errors'.")
    assert {e["field"] for e in body["errors"]} == {"body.individual_id", "body.programme"}
    english = await call(client, app, world.soc_coordinator, "GET", f"/cases/{uuid.uuid4()}")
    assert english.json()["title"] == "Not found"


async def test_every_route_refuses_in_swedish(
    client: httpx.AsyncClient,
    app: FastAPI,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every route of the app, with an id that does not exist and a body of the wrong
    shape, as a coordinator and as no one: each refusal in Swedish, nothing untranslated."""
    untranslated: list[Any] = []
    monkeypatch.setattr(errors_module.log, "warning", lambda *a, **k: untranslated.append((a, k)))
    swedish_titles = set(MESSAGES.titles.values())
    sv = {"Accept-Language": "sv"}
    refusals = 0
    for method, path in ROUTES:
        concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path).removeprefix("/api/v1")
        for user in (world.soc_coordinator, None):
            kwargs: dict[str, Any] = (
                {"json": ["not an object"]} if method in {"POST", "PUT", "PATCH"} else {}
            )
            if not path.startswith("/api/v1"):
                continue
            response = await call(client, app, user, method, concrete, headers=sv, **kwargs)
            if response.status_code >= 400:
                refusals += 1
                assert response.json()["title"] in swedish_titles, (method, path, response.text)
    assert refusals > 100
    assert untranslated == []
