"""Settings: SAMVERKAN_* environment, safe defaults in dev, refusal of unsafe prod settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import DEFAULT_DATABASE_URL, Environment, Settings

GOOD_PROD_URL = "postgresql+asyncpg://samverkan:Xq3-long-and-random@db:5432/samverkan"


def test_defaults_run_on_embedded_sqlite() -> None:
    settings = Settings()
    assert settings.env is Environment.DEV
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.is_sqlite
    assert settings.effective_log_format == "console"
    assert settings.max_body_bytes == 1_048_576


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMVERKAN_DATABASE_URL", "postgresql+asyncpg://u:p@h/db")
    monkeypatch.setenv("SAMVERKAN_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("SAMVERKAN_MAX_BODY_BYTES", "2048")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://u:p@h/db"
    assert settings.log_level == "WARNING"
    assert settings.max_body_bytes == 2048
    assert not settings.is_sqlite


@pytest.mark.parametrize(
    "url",
    ["postgresql://u:p@h/db", "mysql+aiomysql://u:p@h/db", "sqlite:///x.db", "not a url"],
)
def test_refuses_drivers_the_app_does_not_run_on(url: str) -> None:
    with pytest.raises(ValidationError, match="database"):
        Settings(database_url=url)


def test_prod_refuses_sqlite() -> None:
    with pytest.raises(ValidationError, match="requires PostgreSQL"):
        Settings(env=Environment.PROD)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://samverkan@db/samverkan",
        "postgresql+asyncpg://samverkan:@db/samverkan",
        "postgresql+asyncpg://postgres:postgres@db/samverkan",
        "postgresql+asyncpg://samverkan:changeme@db/samverkan",
    ],
)
def test_prod_refuses_missing_or_default_database_password(url: str) -> None:
    with pytest.raises(ValidationError, match="password"):
        Settings(env=Environment.PROD, database_url=url)


def test_prod_starts_with_real_settings() -> None:
    settings = Settings(env=Environment.PROD, database_url=GOOD_PROD_URL)
    assert settings.effective_log_format == "json"


def test_refusal_does_not_echo_the_password() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(env=Environment.PROD, database_url="postgresql+asyncpg://u:changeme@db/x")
    errors = caught.value.errors(include_input=False, include_url=False)
    assert "changeme" not in str(errors)


@pytest.mark.parametrize("value", ["10", "999999999999"])
def test_body_limit_is_bounded(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMVERKAN_MAX_BODY_BYTES", value)
    with pytest.raises(ValidationError):
        Settings()
