"""The samverkan command, run as a newcomer would: migrate, version, serve."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from app import __version__
from app.db import create_engine
from app.migrate import current_revisions, head_revisions
from tests.conftest import make_settings, throwaway_database

SAMVERKAN = [sys.executable, "-m", "app.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMVERKAN_")}
    env.update(extra)
    return env


def test_version() -> None:
    result = subprocess.run(
        [*SAMVERKAN, "version"], capture_output=True, text=True, check=True, env=_env()
    )
    assert result.stdout.strip() == f"samverkan {__version__}"


async def test_migrate_brings_an_empty_database_to_head(backend: str, tmp_path: Path) -> None:
    async with throwaway_database(backend, tmp_path) as url:
        result = await asyncio.to_thread(
            subprocess.run,
            [*SAMVERKAN, "migrate"],
            capture_output=True,
            text=True,
            env=_env(SAMVERKAN_DATABASE_URL=url, SAMVERKAN_LOG_FORMAT="json"),
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        engine = create_engine(make_settings(url))
        try:
            async with engine.connect() as conn:
                assert await current_revisions(conn) == head_revisions()
                assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
        finally:
            await engine.dispose()


def test_invalid_configuration_exits_2_without_echoing_secrets() -> None:
    result = subprocess.run(
        [*SAMVERKAN, "migrate"],
        capture_output=True,
        text=True,
        env=_env(
            SAMVERKAN_ENV="prod",
            SAMVERKAN_DATABASE_URL="postgresql+asyncpg://app:changeme@db/samverkan",
        ),
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr
    assert "changeme" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_on_a_fresh_directory_answers_healthz_and_readyz(
    tmp_path: Path, workers: int
) -> None:
    """README command (a): nothing but the default SQLite settings, in an empty directory."""
    port = _free_port()
    process = subprocess.Popen(
        [*SAMVERKAN, "serve", "--port", str(port), "--workers", str(workers)],
        cwd=tmp_path,
        env=_env(PYTHONPATH=str(Path(__file__).resolve().parent.parent)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert health.status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert 'route="/healthz"' in metrics.text
        assert (tmp_path / "samverkan.db").is_file()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so a supervisor sees why.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "Traceback" not in output
