"""Schemathesis against the running service, as each role with a valid token, on each
database backend (PostgreSQL refuses what SQLite quietly takes: a NUL in text, year 1).

`samverkan demo` serves a fresh database with the demo agencies, users and case;
schemathesis reads /api/v1/openapi.json and runs against every operation, checking: no
5xx, responses (status, content type, headers, body) conform to the schema, and invalid
input is refused. Every run is the bounded one (examples, fuzzing and stateful phases, 5
examples per operation: about 40 s); the long run adds the coverage phase and more
examples (about 3 minutes per role):

    SAMVERKAN_TEST_SCHEMATHESIS_PHASES=examples,coverage,fuzzing,stateful \
    SAMVERKAN_TEST_SCHEMATHESIS_EXAMPLES=50 .venv/bin/pytest tests/test_schemathesis.py

Its last result is in docs/security-testing.md.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_ADMIN_URL, postgres_admin_execute
from tests.test_cli import SAMVERKAN, _env, _free_port

EXAMPLES = os.environ.get("SAMVERKAN_TEST_SCHEMATHESIS_EXAMPLES", "5")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)
# The administrator last: its run may deactivate the other demo users.
ROLES = ["demo.samordnare", "demo.polis", "demo.granskare", "demo.admin"]


@pytest.fixture(scope="module")
def demo(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """The demo service on its own port and database (a SQLite file, or a throwaway
    PostgreSQL database): its URL and the logins it printed."""
    directory = tmp_path_factory.mktemp("schemathesis")
    port = _free_port()
    database: dict[str, str] = {}
    name = f"samverkan_test_{uuid.uuid4().hex[:12]}"
    if backend == "postgresql":
        asyncio.run(postgres_admin_execute(f'CREATE DATABASE "{name}"'))
        database["SAMVERKAN_DATABASE_URL"] = (
            make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        )
    env = _env(
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
        SAMVERKAN_DATA_DIR=str(directory / "data"),
        SAMVERKAN_LOG_LEVEL="WARNING",
        **database,
    )
    if database:  # the operator migrates PostgreSQL first (SQLite migrates on start)
        subprocess.run([*SAMVERKAN, "migrate"], cwd=directory, env=env, check=True, timeout=120)
    process = subprocess.Popen(
        [*SAMVERKAN, "demo", "--port", str(port)],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    base = f"http://127.0.0.1:{port}"
    try:
        logins: dict[str, str] = {}
        for line in process.stdout:
            found = re.match(r"\s+(demo\.\w+)\s+(\S+)\s", line)
            if found:
                logins[found.group(1)] = found.group(2)
            if "auth/token" in line:
                break
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.2)
        yield base, logins
    finally:
        process.terminate()
        process.wait(timeout=30)
        if database:
            asyncio.run(postgres_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.parametrize("username", ROLES)
def test_schemathesis_finds_nothing(
    demo: tuple[str, dict[str, str]], username: str, tmp_path: Path
) -> None:
    base, logins = demo
    token = httpx.post(
        f"{base}/api/v1/auth/token",
        data={"grant_type": "password", "username": username, "password": logins[username]},
        timeout=30,
    ).json()["access_token"]
    command = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert command is not None, "schemathesis is in the test extras"
    result = subprocess.run(
        [
            command,
            "run",
            f"{base}/api/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--max-examples",
            EXAMPLES,
            "--phases",
            os.environ.get("SAMVERKAN_TEST_SCHEMATHESIS_PHASES", "examples,fuzzing,stateful"),
            "--checks",
            CHECKS,
            "--exclude-path",
            "/api/v1/auth/revoke",  # would revoke the token the run is using
            "--seed",
            "20261123",
            "--warnings",
            "off",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=tmp_path,  # its reports directory stays out of the checkout
        env={**_env(), "SCHEMATHESIS_HOOKS": ""},
    )
    assert result.returncode == 0, result.stdout[-6000:]
