"""The one settings object, read from ``SAMVERKAN_*`` environment variables.

In ``prod`` the settings refuse to load when a secret is missing or still has a
development default: a deployment that forgot to configure itself must not start.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./samverkan.db"

# Passwords that show up in tutorials, compose files and docker images. A production
# database URL carrying one of these is treated as unconfigured.
_WELL_KNOWN_PASSWORDS = frozenset(
    {"", "postgres", "password", "secret", "changeme", "samverkan", "admin", "root"}
)


class Environment(StrEnum):
    DEV = "dev"
    PROD = "prod"


class Settings(BaseSettings):
    """Runtime configuration. Every field maps to ``SAMVERKAN_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="SAMVERKAN_", extra="ignore", frozen=True)

    env: Environment = Environment.DEV
    database_url: str = DEFAULT_DATABASE_URL
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] | None = Field(
        default=None, description="Defaults to console in dev and JSON in prod."
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    # No overflow by default: SQLAlchemy closes an overflow connection when it is returned
    # while the pool is full, so sustained load past the pool connected anew for a request
    # in every few (docs/performance.md, "Issue 21, sixth round"); past the pool, requests
    # wait for a connection instead (``db_pool_timeout_seconds``, then 503).
    db_max_overflow: int = Field(default=0, ge=0, le=200)
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    db_ping_after_idle_seconds: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="A pooled connection idle this long is pinged before use (0: always).",
    )
    audit_group_commit: bool = Field(
        default=True,
        description="PostgreSQL: the audit records of concurrent reads are appended together "
        "on a connection of their own, one statement and one commit for all of them; each "
        "read answers only once its records are durable (docs/performance.md).",
    )
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0, le=60_000)
    docs_enabled: bool = True

    data_dir: Path = Field(
        default=Path("./data"), description="Generated development keys live here."
    )
    jwt_algorithm: Literal["RS256", "ES256", "HS256"] = "RS256"
    jwt_private_key_file: Path | None = None
    jwt_public_key_file: Path | None = None
    jwt_secret: SecretStr | None = Field(default=None, description="HS256 only.")
    jwt_key_id: str | None = Field(
        default=None, description="Defaults to a thumbprint of the verification key."
    )
    audit_signing_key_file: Path | None = Field(
        default=None,
        description="Ed25519 private key (PKCS#8 PEM) that signs audit checkpoints.",
    )
    jwt_issuer: str = "samverkan"
    jwt_audience: str = "samverkan-api"
    audit_verify_jobs: int = Field(
        default=2,
        ge=1,
        le=32,
        description="Ranges of the audit chain `samverkan audit verify` checks at once on "
        "PostgreSQL, each on a connection of its own (about one per database CPU).",
    )
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    refresh_token_ttl_seconds: int = Field(default=8 * 3600, ge=300, le=7 * 24 * 3600)
    max_token_bytes: int = Field(default=8192, ge=1024, le=65536)
    password_max_bytes: int = Field(default=1024, ge=64, le=4096)
    login_max_failures_per_username: int = Field(default=5, ge=1, le=1000)
    login_max_failures_per_address: int = Field(default=30, ge=1, le=100_000)
    login_throttle_window_seconds: int = Field(default=900, ge=10, le=86_400)
    token_failures_recorded_per_address: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Invalid tokens recorded as auth.failure per client address and throttle "
        "window; beyond it the log does not grow (docs/audit.md).",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks of the reverse proxies whose "
        "X-Forwarded-For names the client (e.g. `10.0.0.5,10.1.0.0/16`). Empty: the peer "
        "address is the client, whatever a request's headers say.",
    )

    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhooks go to private, loopback and reserved addresses (tests, "
        "a closed municipal network). Off: such targets are refused (SSRF).",
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_retry_base_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="The first retry's delay; doubled each time."
    )
    webhook_retry_max_seconds: float = Field(default=6 * 3600, gt=0, le=86_400)
    webhook_give_up_after_seconds: int = Field(
        default=86_400,
        ge=60,
        le=7 * 86_400,
        description="A subscription failing this long is disabled (API.md: a day).",
    )
    webhook_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How long a worker holds a delivery it is sending; a worker that dies "
        "leaves it due again after this. Longer than webhook_timeout_seconds.",
    )
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    identity_providers_file: Path | None = Field(
        default=None,
        description="The identity providers file; default policies/identity_providers.yaml.",
    )
    worker_concurrency: int = Field(
        default=8, ge=1, le=64, description="Deliveries one worker sends at once."
    )
    oidc_ca_file: Path | None = Field(
        default=None,
        description="Extra CA certificates (PEM) trusted for the identity providers' "
        "discovery and JWKS, e.g. a municipality's own CA; the system's are trusted too.",
    )
    oidc_keys_cache_seconds: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description="How long a provider's discovery and JWKS are used before they are "
        "fetched again (a key the provider removed stops working after at most this).",
    )
    oidc_refresh_min_interval_seconds: int = Field(
        default=60,
        ge=0,
        le=3600,
        description="Fetches of one provider's keys are at least this far apart (a token "
        "with an unknown kid cannot make the API hammer the provider).",
    )
    oidc_fetch_timeout_seconds: float = Field(default=5.0, gt=0, le=30)

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [part.strip() for part in self.trusted_proxies.split(",") if part.strip()]

    @model_validator(mode="after")
    def _check(self) -> Settings:
        for proxy in self.trusted_proxy_list:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise ValueError(
                    f"SAMVERKAN_TRUSTED_PROXIES: {proxy!r} is not an address or a network"
                ) from exc
        try:
            url = make_url(self.database_url)
        except ArgumentError as exc:
            raise ValueError("SAMVERKAN_DATABASE_URL is not a valid database URL") from exc
        if url.drivername not in {"sqlite+aiosqlite", "postgresql+asyncpg"}:
            raise ValueError(
                "SAMVERKAN_DATABASE_URL must use sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        if self.env is Environment.PROD:
            self._refuse_unsafe_production_settings()
        return self

    def _refuse_unsafe_production_settings(self) -> None:
        self._refuse_missing_signing_keys()
        url = make_url(self.database_url)
        if not url.drivername.startswith("postgresql"):
            raise ValueError(
                "SAMVERKAN_ENV=prod requires PostgreSQL: the audit log's append-only "
                "guarantees rest on database roles and triggers that SQLite lacks"
            )
        if (url.password or "") in _WELL_KNOWN_PASSWORDS:
            raise ValueError(
                "SAMVERKAN_ENV=prod refuses a database password that is missing or a "
                "well-known default; set a real secret in SAMVERKAN_DATABASE_URL"
            )

    def _refuse_missing_signing_keys(self) -> None:
        if self.jwt_algorithm == "HS256":
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if len(secret.encode()) < 32 or secret.lower() in _WELL_KNOWN_PASSWORDS:
                raise ValueError(
                    "SAMVERKAN_ENV=prod with HS256 needs SAMVERKAN_JWT_SECRET of at least 32 bytes"
                )
        else:
            for name in ("jwt_private_key_file", "jwt_public_key_file"):
                self._require_key_file(name)
        self._require_key_file("audit_signing_key_file")

    def _require_key_file(self, name: str) -> None:
        path = getattr(self, name)
        if path is None or not path.is_file():
            raise ValueError(
                f"SAMVERKAN_ENV=prod needs SAMVERKAN_{name.upper()} pointing to a key file; "
                "keys are generated only in dev"
            )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def effective_log_format(self) -> Literal["json", "console"]:
        if self.log_format is not None:
            return self.log_format
        return "console" if self.env is Environment.DEV else "json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
