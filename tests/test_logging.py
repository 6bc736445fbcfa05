"""Log lines are JSON, carry the request id, and never carry personal numbers or secrets."""

from __future__ import annotations

import datetime as dt
import json
import logging

import httpx
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn

from app import logging as logging_module
from app.logging import REDACTED, configure_logging, redact_text, redact_value


def _json_lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("199001011234", "199001011234"),
        ("19900101-1234", "19900101-1234"),
        ("900101-1234", "900101-1234"),
        ("9001011234", "9001011234"),
        ("121212+1212", "121212+1212"),  # a centenarian's separator
        ("19900161-1234", "19900161-1234"),  # samordningsnummer: day + 60
        ("900191-1234", "900191-1234"),
        ("pnr=200512312399&x=1", "200512312399"),
        ("Kalle (19900101 1234) moved", "19900101 1234"),
    ],
)
def test_personal_numbers_are_masked(text: str, number: str) -> None:
    masked = redact_text(text)
    assert number not in masked
    assert masked == text.replace(number, REDACTED)


@pytest.mark.parametrize(
    "text",
    [
        "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        "took 1795000000 ns",  # an epoch-like counter: month 95 is no date
        "2026-11-23T10:00:00Z",
        "seq 4242 of 100000",
        "amount 19995",
    ],
)
def test_ordinary_values_are_left_alone(text: str) -> None:
    assert redact_text(text) == text


@given(
    birth=st.dates(min_value=dt.date(1850, 1, 1), max_value=dt.date(2099, 12, 31)),
    serial=st.integers(min_value=0, max_value=999),
    coordination=st.booleans(),
    separator=st.sampled_from(["", "-", "+"]),
    long_form=st.booleans(),
    prefix=st.text(alphabet=" abc:=(", max_size=5),
)
def test_every_valid_personal_number_is_masked(
    birth: dt.date,
    serial: int,
    coordination: bool,
    separator: str,
    long_form: bool,
    prefix: str,
) -> None:
    day = birth.day + (60 if coordination else 0)
    body = f"{birth:%y%m}{day:02d}{serial:03d}"
    check = luhn.calc_check_digit(body)
    year = f"{birth:%Y}" if long_form else f"{birth:%y}"
    number = f"{year}{birth:%m}{day:02d}{separator}{serial:03d}{check}"
    masked = redact_text(f"{prefix}{number} end")
    assert number not in masked
    assert f"{serial:03d}{check}" not in masked


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl here", "eyJzdWIiOiJ4In0"),
        ("postgresql+asyncpg://app:s3cr3t@db/samverkan", "s3cr3t"),
        ("password=hunter2&user=x", "hunter2"),
        ('client_secret: "abc123"', "abc123"),
        ("GET /api/v1/cases?external_ref=treserva:2026-0412&limit=5", "2026-0412"),
    ],
)
def test_secrets_in_text_are_masked(text: str, secret: str) -> None:
    assert secret not in redact_text(text)


def test_secret_named_fields_are_masked_whatever_their_value() -> None:
    redacted = redact_value(
        {"password": "pw", "nested": {"refresh_token": 42, "ok": "fine"}, "list": ["900101-1234"]}
    )
    assert redacted == {
        "password": REDACTED,
        "nested": {"refresh_token": REDACTED, "ok": "fine"},
        "list": [REDACTED],
    }


def test_integer_personal_numbers_are_masked() -> None:
    assert redact_value(199001011234) == REDACTED
    assert redact_value(42) == 42


def test_every_logger_goes_through_redaction(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", fmt="json")
    structlog.get_logger("t").info("looked up", personal_number="199001011234")
    logging.getLogger("third.party").warning("user 19900101-1234 failed password=abc")
    try:
        raise ValueError("bad 900101-1234")
    except ValueError:
        structlog.get_logger("t").exception("failed")
    err = capfd.readouterr().err
    lines = _json_lines(err)
    assert len(lines) == 3
    for forbidden in ("199001011234", "19900101-1234", "900101-1234", "password=abc"):
        assert forbidden not in err
    assert "Traceback" in str(lines[2]["exception"])


async def test_access_line_has_route_status_and_request_id_but_no_query(
    probe_client: httpx.AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    response = await probe_client.get(
        "/test/search", params={"personal_number": "199001011234"}, headers={"X-Request-ID": "r-1"}
    )
    assert response.status_code == 200
    err = capfd.readouterr().err
    access = [line for line in _json_lines(err) if line.get("logger") == "app.access"]
    assert access == [
        {
            "event": "request",
            "method": "GET",
            "route": "/test/search",
            "status": 200,
            "duration_ms": access[0]["duration_ms"],
            "client_ip": "127.0.0.1",
            "request_id": "r-1",
            "level": "info",
            "logger": "app.access",
            "timestamp": access[0]["timestamp"],
        }
    ]
    assert "199001011234" not in err
    app_lines = [line for line in _json_lines(err) if str(line.get("logger")).startswith("app")]
    assert "personal_number" not in json.dumps(app_lines)


async def test_access_line_for_unmatched_path_is_redacted(
    client: httpx.AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    await client.get("/api/v1/nowhere/19900101-1234")
    err = capfd.readouterr().err
    access = [line for line in _json_lines(err) if line.get("logger") == "app.access"]
    assert access[0]["route"] == "<unmatched>"
    assert access[0]["path"] == f"/api/v1/nowhere/{REDACTED}"
    for number in ("19900101-1234", "900101-1234", "199001011234"):
        assert number not in err


def _redact_every_pattern(text: str) -> str:
    """Every pattern over every text, as redact_text did before it skipped the patterns
    whose necessary part is absent."""
    text = logging_module._JWT.sub(REDACTED, text)
    text = logging_module._BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = logging_module._URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}:{REDACTED}@", text)
    text = logging_module._KEY_VALUE_SECRET.sub(
        lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text
    )
    return logging_module._PERSONAL_NUMBER.sub(REDACTED, text)


_PIECES = st.sampled_from(
    [
        "19121212-1212",
        "121212+1212",
        "201212121212",
        "12345",
        "-",
        " ",
        "=",
        ":",
        "&",
        "Bearer ",
        "BASIC ",
        "eyJhbGciOi.eyJzdWIiOi.sig",
        "postgresql://u:pw@h/db",
        "password",
        "PassWd",
        "client_secret",
        "Token",
        "access_token",
        "external_ref",
        "'x y'",
        '"q"',
        "route",
        "/api/v1/entries/25c5245a-5ab9-487f-98a7-b95562d04854",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=8).map("".join))
def test_redaction_skips_only_patterns_that_cannot_match(text: str) -> None:
    assert redact_text(text) == _redact_every_pattern(text)
