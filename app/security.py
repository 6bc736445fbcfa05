"""Tokens and secrets. The only module that imports python-jose and passlib.

Tokens (JWT, python-jose), hardened beyond the library's defaults:
- exactly one algorithm per deployment; HMAC and RSA/EC are never accepted side by side,
  so a token signed with the public key as an HMAC secret is refused by construction;
- ``exp``, ``iat``, ``sub``, ``aud``, ``iss``, ``jti`` and ``typ`` are required
  (python-jose accepts a token without ``aud`` or ``exp`` unless told to require them);
- ``iat`` and ``nbf`` in the future are refused, ``kid`` must name the configured key;
- a token over the size cap is refused before it is parsed.

Passwords and client secrets: argon2id (m=19 MiB, t=2, p=1, the OWASP baseline) through
passlib's ``CryptContext`` from the maintained ``libpass`` fork. Hashing runs in a worker
thread so it does not stall the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jwt
from jose.exceptions import JOSEError
from passlib.context import CryptContext

from app.config import Environment, Settings

_CLOCK_SKEW_SECONDS = 30
_REQUIRED_CLAIMS = ("exp", "iat", "sub", "aud", "iss", "jti", "typ")

_hasher = CryptContext(
    schemes=["argon2"],
    argon2__type="ID",
    argon2__memory_cost=19 * 1024,
    argon2__rounds=2,
    argon2__parallelism=1,
)
# Verified against when the username is unknown, so that "no such user" and "wrong
# password" cost the same time and give the same answer.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class TokenType(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


class InvalidToken(Exception):
    """The token is not one this deployment issued, or not for this use. Always a 401."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    token_type: TokenType
    token_id: str
    issued_at: int
    expires_at: int
    extra: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    claims: TokenClaims


class TokenService:
    """Issues and checks this deployment's JWTs with its one algorithm and key."""

    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.max_bytes = settings.max_token_bytes
        signing_key, verification_key, thumbprint = _load_keys(settings)
        # Parsed once: loading an RSA private key from PEM validates it, which costs about
        # 150 ms of CPU; python-jose would otherwise do that for every token it signs.
        self._signing_key = jwk.construct(signing_key, self.algorithm)
        self._verification_key = jwk.construct(verification_key, self.algorithm)
        # What a relying party needs to check our tokens (never the HMAC secret).
        self.public_key_pem: str | None = (
            None if self.algorithm == "HS256" else str(verification_key)
        )
        self.key_id = settings.jwt_key_id or thumbprint

    def issue(
        self,
        *,
        subject: str,
        token_type: TokenType,
        ttl_seconds: int,
        extra: dict[str, Any] | None = None,
        token_id: str | None = None,
    ) -> IssuedToken:
        now = int(time.time())
        claims = TokenClaims(
            subject=subject,
            token_type=token_type,
            token_id=token_id or str(uuid.uuid4()),
            issued_at=now,
            expires_at=now + ttl_seconds,
            extra=dict(extra or {}),
        )
        payload = {
            **claims.extra,
            "sub": subject,
            "typ": token_type.value,
            "jti": claims.token_id,
            "iat": now,
            "nbf": now,
            "exp": claims.expires_at,
            "iss": self.issuer,
            "aud": self.audience,
        }
        token = jwt.encode(
            payload, self._signing_key, algorithm=self.algorithm, headers={"kid": self.key_id}
        )
        return IssuedToken(token=token, claims=claims)

    def decode(self, token: str, *, expected_type: TokenType) -> TokenClaims:
        """The verified claims of ``token``; :class:`InvalidToken` for anything else."""
        if not token or len(token.encode("utf-8", "replace")) > self.max_bytes:
            raise InvalidToken("token missing or too large")
        try:
            header = jwt.get_unverified_header(token)
        except JOSEError as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") != self.algorithm or header.get("kid") != self.key_id:
            raise InvalidToken("unexpected algorithm or key id")
        try:
            payload = jwt.decode(
                token,
                self._verification_key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require_aud": True,
                    "require_iat": True,
                    "require_exp": True,
                    "require_iss": True,
                    "require_sub": True,
                    "require_jti": True,
                    "leeway": _CLOCK_SKEW_SECONDS,
                },
            )
        except (JOSEError, ValueError, TypeError) as exc:
            raise InvalidToken("signature or claims rejected") from exc
        return _claims_from(payload, expected_type)


def _claims_from(payload: dict[str, Any], expected_type: TokenType) -> TokenClaims:
    if any(claim not in payload for claim in _REQUIRED_CLAIMS):
        raise InvalidToken("required claim missing")
    if payload["typ"] != expected_type.value:
        # A refresh token is never an access token, and the other way round.
        raise InvalidToken("wrong token type")
    now = time.time()
    for claim in ("iat", "nbf"):
        value = payload.get(claim)
        if value is not None and (
            not isinstance(value, int | float) or value > now + _CLOCK_SKEW_SECONDS
        ):
            raise InvalidToken(f"{claim} in the future")
    if not isinstance(payload["sub"], str) or not isinstance(payload["jti"], str):
        raise InvalidToken("malformed subject")
    extra = {k: v for k, v in payload.items() if k not in {*_REQUIRED_CLAIMS, "nbf"}}
    return TokenClaims(
        subject=payload["sub"],
        token_type=TokenType(payload["typ"]),
        token_id=payload["jti"],
        issued_at=int(payload["iat"]),
        expires_at=int(payload["exp"]),
        extra=extra,
    )


def _load_keys(settings: Settings) -> tuple[Any, Any, str]:
    """(signing key, verification key, thumbprint) for the configured algorithm."""
    if settings.jwt_algorithm == "HS256":
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        if secret is None:
            if settings.env is Environment.PROD:
                raise RuntimeError("HS256 needs SAMVERKAN_JWT_SECRET")
            secret = _dev_secret(settings.data_dir)
        thumb = hashlib.sha256(b"samverkan-kid:" + secret.encode()).hexdigest()[:16]
        return secret, secret, thumb
    private_file, public_file = settings.jwt_private_key_file, settings.jwt_public_key_file
    if private_file is None or public_file is None:
        if settings.env is Environment.PROD:
            raise RuntimeError("prod needs configured JWT key files")
        private_file, public_file = _dev_key_pair(settings.data_dir, settings.jwt_algorithm)
    private_pem = private_file.read_bytes()
    public_pem = public_file.read_bytes()
    public_key = serialization.load_pem_public_key(public_pem)
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem.decode(), public_pem.decode(), hashlib.sha256(der).hexdigest()[:16]


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _dev_key_pair(data_dir: Path, algorithm: str) -> tuple[Path, Path]:
    """A key pair generated once into the data directory (development only)."""
    suffix = algorithm.lower()
    private_file = data_dir / f"jwt-{suffix}-private.pem"
    public_file = data_dir / f"jwt-{suffix}-public.pem"
    if private_file.is_file() and public_file.is_file():
        return private_file, public_file
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Another worker may have generated the pair first; then theirs is used.
    with contextlib.suppress(FileExistsError):
        _write_private(private_file, private_pem)
        public_file.write_bytes(public_pem)
    return private_file, public_file


def _dev_secret(data_dir: Path) -> str:
    path = data_dir / "jwt-hs256.secret"
    if not path.is_file():
        with contextlib.suppress(FileExistsError):
            _write_private(path, secrets.token_urlsafe(48).encode())
    return path.read_text().strip()


def hash_secret(secret: str) -> str:
    """argon2id hash of a password or client secret (blocking; see :func:`hash_secret_async`)."""
    result: str = _hasher.hash(secret)
    return result


async def hash_secret_async(secret: str) -> str:
    return await asyncio.to_thread(hash_secret, secret)


async def verify_secret(secret: str, hashed: str | None) -> bool:
    """Whether ``secret`` matches ``hashed``; with no hash, the same work and ``False``."""

    def check() -> bool:
        try:
            ok = bool(_hasher.verify(secret, hashed or _DUMMY_HASH))
        except (ValueError, TypeError):
            ok = False
        return ok and hashed is not None

    return await asyncio.to_thread(check)


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


def new_client_id() -> str:
    return "cli_" + secrets.token_hex(12)


def fingerprint(value: str) -> str:
    """A stable digest for throttle keys, so usernames and addresses are not stored."""
    return base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()).decode()[:43]
