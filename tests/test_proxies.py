"""The client address in audit records and the login throttle: taken from X-Forwarded-For
only when the peer is a configured proxy (SAMVERKAN_TRUSTED_PROXIES, empty by default).

The outside test set X-Forwarded-For from 127.0.0.1 and uvicorn believed it: any local
client chose the address the audit log recorded, and escaped the per-address throttle.
These tests run the real server (`samverkan serve`), as that finding did, on each backend.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from tests.conftest import (
    POSTGRES_ADMIN_URL,
    _asyncpg_dsn,
    make_settings,
    postgres_admin_execute,
)
from tests.test_cli import SAMVERKAN, _env, _free_port

FORGED = "203.0.113.7"


@dataclass
class Served:
    """Where the server under test keeps its data: its environment and its audit log."""

    directory: Path
    env: dict[str, str]
    url: str | None = None  # PostgreSQL

    def addresses(self) -> set[str]:
        query = "SELECT client_address FROM audit_event WHERE action LIKE 'auth.%'"
        if self.url is None:
            with sqlite3.connect(self.directory / "samverkan.db") as db:
                return {row[0] for row in db.execute(query)}

        async def read() -> set[str]:
            connection = await asyncpg.connect(self.url)
            try:
                return {row[0] for row in await connection.fetch(query)}
            finally:
                await connection.close()

        return asyncio.run(read())


@pytest.fixture
def served(backend: str, tmp_path: Path) -> Iterator[Served]:
    """A fresh database for the server: a SQLite file, or a migrated PostgreSQL database."""
    if backend == "sqlite":
        yield Served(tmp_path, {})
        return
    name = f"samverkan_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(postgres_admin_execute(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    env = {"SAMVERKAN_DATABASE_URL": url}
    try:
        subprocess.run(
            [*SAMVERKAN, "migrate"], cwd=tmp_path, env=_env(**env), check=True, timeout=120
        )
        yield Served(tmp_path, env, _asyncpg_dsn(url))
    finally:
        asyncio.run(postgres_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def _server(served: Served, **env: str) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [*SAMVERKAN, "serve", "--port", str(port)],
        cwd=served.directory,
        env=_env(PYTHONPATH=str(Path(__file__).resolve().parent.parent), **served.env, **env),
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


def test_a_forwarded_header_is_ignored_unless_the_peer_is_a_trusted_proxy(
    served: Served,
) -> None:
    with _server(served, SAMVERKAN_LOGIN_MAX_FAILURES_PER_ADDRESS="3") as base:
        # a new forged address every time: the throttle still counts the one real peer
        statuses = _failed_logins(base, 5, "198.51.100.{i}")
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429]
    assert served.addresses() == {"127.0.0.1"}


def test_a_trusted_proxy_names_the_client(served: Served) -> None:
    with _server(served, SAMVERKAN_TRUSTED_PROXIES="127.0.0.1") as base:
        assert _failed_logins(base, 1, FORGED) == [401]
    assert served.addresses() == {FORGED}


def test_a_proxy_outside_the_list_is_not_believed(served: Served) -> None:
    with _server(served, SAMVERKAN_TRUSTED_PROXIES="10.0.0.0/8") as base:
        assert _failed_logins(base, 1, FORGED) == [401]
    assert served.addresses() == {"127.0.0.1"}


@pytest.mark.parametrize("value", ["not-an-address", "10.0.0.1,,300.1.1.1"])
def test_an_invalid_proxy_list_stops_the_start(value: str) -> None:
    with pytest.raises(ValidationError, match="TRUSTED_PROXIES"):
        make_settings("sqlite+aiosqlite://", trusted_proxies=value)
