"""The client address in audit records and the login throttle: taken from X-Forwarded-For
only when the peer is a configured proxy (SAMVERKAN_TRUSTED_PROXIES, empty by default).

The outside test set X-Forwarded-For from 127.0.0.1 and uvicorn believed it: any local
client chose the address the audit log recorded, and escaped the per-address throttle.
These tests run the real server (`samverkan serve`), as that finding did.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from tests.conftest import make_settings
from tests.test_cli import SAMVERKAN, _env, _free_port

FORGED = "203.0.113.7"


@contextmanager
def _server(directory: Path, **env: str) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [*SAMVERKAN, "serve", "--port", str(port)],
        cwd=directory,
        env=_env(PYTHONPATH=str(Path(__file__).resolve().parent.parent), **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _failed_logins(base: str, count: int, forwarded: str) -> list[int]:
    return [
        httpx.post(
            f"{base}/api/v1/auth/token",
            data={"grant_type": "password", "username": f"nobody{i}", "password": "wrong"},
            headers={"X-Forwarded-For": forwarded.format(i=i)},
            timeout=30,
        ).status_code
        for i in range(count)
    ]


def _addresses(directory: Path) -> set[str]:
    with sqlite3.connect(directory / "samverkan.db") as db:
        rows = db.execute("SELECT client_address FROM audit_event WHERE action LIKE 'auth.%'")
        return {row[0] for row in rows}


def test_a_forwarded_header_is_ignored_unless_the_peer_is_a_trusted_proxy(
    tmp_path: Path,
) -> None:
    with _server(tmp_path, SAMVERKAN_LOGIN_MAX_FAILURES_PER_ADDRESS="3") as base:
        # a new forged address every time: the throttle still counts the one real peer
        statuses = _failed_logins(base, 5, "198.51.100.{i}")
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429]
    assert _addresses(tmp_path) == {"127.0.0.1"}


def test_a_trusted_proxy_names_the_client(tmp_path: Path) -> None:
    with _server(tmp_path, SAMVERKAN_TRUSTED_PROXIES="127.0.0.1") as base:
        assert _failed_logins(base, 1, FORGED) == [401]
    assert _addresses(tmp_path) == {FORGED}


def test_a_proxy_outside_the_list_is_not_believed(tmp_path: Path) -> None:
    with _server(tmp_path, SAMVERKAN_TRUSTED_PROXIES="10.0.0.0/8") as base:
        assert _failed_logins(base, 1, FORGED) == [401]
    assert _addresses(tmp_path) == {"127.0.0.1"}


@pytest.mark.parametrize("value", ["not-an-address", "10.0.0.1,,300.1.1.1"])
def test_an_invalid_proxy_list_stops_the_start(value: str) -> None:
    with pytest.raises(ValidationError, match="TRUSTED_PROXIES"):
        make_settings("sqlite+aiosqlite://", trusted_proxies=value)
