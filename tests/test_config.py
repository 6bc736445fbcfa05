"""Settings: SAMVERKAN_* environment, safe defaults in dev, refusal of unsafe prod settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from app.config import DEFAULT_DATABASE_URL, Environment, Settings

GOOD_PROD_URL = "postgresql+asyncpg://samverkan:Xq3-long-and-random@db:5432/samverkan"


@pytest.fixture
def prod_keys(tmp_path: Path) -> dict[str, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = tmp_path / "private.pem"
    public = tmp_path / "public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    audit_key = tmp_path / "audit-ed25519.pem"
    audit_key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {
        "jwt_private_key_file": private,
        "jwt_public_key_file": public,
        "audit_signing_key_file": audit_key,
    }


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


def test_prod_refuses_sqlite(prod_keys: dict[str, Path]) -> None:
    with pytest.raises(ValidationError, match="requires PostgreSQL"):
        Settings(env=Environment.PROD, jwt_algorithm="ES256", **prod_keys)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://samverkan@db/samverkan",
        "postgresql+asyncpg://samverkan:@db/samverkan",
        "postgresql+asyncpg://postgres:postgres@db/samverkan",
        "postgresql+asyncpg://samverkan:changeme@db/samverkan",
    ],
)
def test_prod_refuses_missing_or_default_database_password(
    url: str, prod_keys: dict[str, Path]
) -> None:
    with pytest.raises(ValidationError, match="password"):
        Settings(env=Environment.PROD, database_url=url, jwt_algorithm="ES256", **prod_keys)


def test_prod_starts_with_real_settings(prod_keys: dict[str, Path]) -> None:
    settings = Settings(
        env=Environment.PROD, database_url=GOOD_PROD_URL, jwt_algorithm="ES256", **prod_keys
    )
    assert settings.effective_log_format == "json"


def test_prod_refuses_to_generate_signing_keys() -> None:
    with pytest.raises(ValidationError, match="JWT_PRIVATE_KEY_FILE"):
        Settings(env=Environment.PROD, database_url=GOOD_PROD_URL)


@pytest.mark.parametrize("secret", [None, "short", "changeme"])
def test_prod_refuses_a_weak_hmac_secret(secret: str | None) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(
            env=Environment.PROD,
            database_url=GOOD_PROD_URL,
            jwt_algorithm="HS256",
            jwt_secret=secret,
        )


def test_refusal_does_not_echo_the_password(prod_keys: dict[str, Path]) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(
            env=Environment.PROD,
            database_url="postgresql+asyncpg://u:changeme@db/x",
            jwt_algorithm="ES256",
            **prod_keys,
        )
    errors = caught.value.errors(include_input=False, include_url=False)
    assert "changeme" not in str(errors)


@pytest.mark.parametrize("value", ["10", "999999999999"])
def test_body_limit_is_bounded(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMVERKAN_MAX_BODY_BYTES", value)
    with pytest.raises(ValidationError):
        Settings()


def test_prod_refuses_to_run_without_a_checkpoint_signing_key(
    prod_keys: dict[str, Path],
) -> None:
    keys = {k: v for k, v in prod_keys.items() if k != "audit_signing_key_file"}
    with pytest.raises(ValidationError, match="AUDIT_SIGNING_KEY_FILE"):
        Settings(env=Environment.PROD, database_url=GOOD_PROD_URL, jwt_algorithm="ES256", **keys)
