"""Tokens and secrets. The only module that imports python-jose and passlib.

Tokens (JWT, python-jose), hardened beyond the library's defaults:
- exactly one algorithm per deployment; HMAC and RSA/EC are never accepted side by side,
  so a token signed with the public key as an HMAC secret is refused by construction;
- ``exp``, ``iat``, ``sub``, ``aud``, ``iss``, ``jti`` and ``typ`` are required
  (python-jose accepts a token without ``aud`` or ``exp`` unless told to require them);
- ``iat`` and ``nbf`` in the future are refused, ``kid`` must name the configured key;
- a token over the size cap is refused before it is parsed.

Tokens of the agencies' own OpenID Connect providers (:class:`ProviderTokenVerifier`): the
provider's discovery document and JWKS are fetched over HTTPS (64 KiB at most each), cached,
and fetched again when a token names an unknown ``kid`` (at most once a minute); only the
asymmetric algorithms the provider's metadata lists are accepted (never ``none``, never HMAC,
and the key's type must fit the algorithm); ``iss``, ``aud``, ``exp``, ``nbf``, ``iat`` and
``sub`` are required. A provider that cannot be reached: tokens its cached keys verify still
work, every other gets :class:`ProviderUnavailable` (a 503), never a pass.

Passwords and client secrets: argon2id (m=19 MiB, t=2, p=1, the OWASP baseline) through
passlib's ``CryptContext`` from the maintained ``libpass`` fork. Hashing runs in a worker
thread so it does not stall the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import secrets
import ssl
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jwt
from jose.exceptions import JOSEError
from passlib.context import CryptContext

from app.config import Environment, Settings

log = structlog.get_logger("app.security")

_CLOCK_SKEW_SECONDS = 30
# Verified token payloads kept (TokenService.decode): a few MB at most.
_VERIFIED_KEPT = 4096
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
        self._signing_key = _construct(signing_key, self.algorithm)
        self._verification_key = _construct(verification_key, self.algorithm)
        # What a relying party needs to check our tokens (never the HMAC secret).
        self.public_key_pem: str | None = (
            None if self.algorithm == "HS256" else str(verification_key)
        )
        self.key_id = settings.jwt_key_id or thumbprint
        # Payloads whose signature and fixed claims (alg, kid, iss, aud) this service has
        # verified, by the token's digest: a client sends the same token with every
        # request, and the RS256 check costs 0.4 ms of CPU (docs/performance.md). The
        # times are checked again at every use; revocation is the sign-in's, read from
        # the database at every request (app.auth.service.load_actor).
        self._verified: OrderedDict[bytes, dict[str, Any]] = OrderedDict()

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
        raw = token.encode("utf-8", "replace")
        if not raw or len(raw) > self.max_bytes:
            raise InvalidToken("token missing or too large")
        digest = hashlib.sha256(raw).digest()
        payload = self._verified.get(digest)
        if payload is not None:
            self._verified.move_to_end(digest)
            if not isinstance(payload["exp"], int | float) or (
                payload["exp"] + _CLOCK_SKEW_SECONDS < time.time()
            ):
                raise InvalidToken("expired")
            return _claims_from(payload, expected_type)
        payload = self._verify(token)
        self._verified[digest] = payload
        if len(self._verified) > _VERIFIED_KEPT:
            self._verified.popitem(last=False)
        return _claims_from(payload, expected_type)

    def _verify(self, token: str) -> dict[str, Any]:
        header = _header_within(token, self.max_bytes)
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
        if not isinstance(payload, dict):
            raise InvalidToken("malformed payload")
        return payload


def _header_within(token: str, max_bytes: int) -> dict[str, Any]:
    """The token's header, unverified, once the token is known to be within the size cap."""
    if not token or len(token.encode("utf-8", "replace")) > max_bytes:
        raise InvalidToken("token missing or too large")
    try:
        header: dict[str, Any] = jwt.get_unverified_header(token)
    except JOSEError as exc:
        raise InvalidToken("malformed token") from exc
    return header


def unverified_claims(token: str, max_bytes: int) -> dict[str, Any] | None:
    """The claims of ``token`` **before** any check, to tell which issuer should check it;
    ``None`` if it does not parse. Never trusted for anything else."""
    if not token or len(token.encode("utf-8", "replace")) > max_bytes:
        return None
    try:
        claims = jwt.get_unverified_claims(token)
    except JOSEError:
        return None
    return claims if isinstance(claims, dict) else None


class ProviderUnavailable(Exception):
    """The provider's keys could not be fetched and none cached verifies the token: 503."""


# Signature algorithms a provider's token may use: asymmetric only (python-jose's), and of
# those only what the provider's metadata lists. HMAC would let anyone holding the public
# key sign; ``none`` signs nothing.
PROVIDER_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"})
_KEY_TYPE = {"RS": "RSA", "ES": "EC"}
PROVIDER_DOCUMENT_MAX_BYTES = 64 * 1024
_PROVIDER_REQUIRED = ("iss", "aud", "exp", "nbf", "iat", "sub")


class _FetchFailed(Exception):
    pass


@dataclass(slots=True)
class _ProviderKeys:
    """One provider's signing keys (public JWKs by kid) and the algorithms it announces."""

    keys: dict[str, dict[str, Any]]
    algorithms: frozenset[str]
    fetched_at: float
    constructed: dict[tuple[str, str], Any] = field(default_factory=dict)


class ProviderTokenVerifier:
    """Checks access tokens of the configured identity providers; one per process.

    ``clock`` is the monotonic clock the cache ages by (a test may set its own);
    ``fetches`` counts fetches of discovery and JWKS per issuer, for operators and tests.
    """

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = settings.max_token_bytes
        self.cache_seconds = settings.oidc_keys_cache_seconds
        self.min_interval = settings.oidc_refresh_min_interval_seconds
        self.timeout = settings.oidc_fetch_timeout_seconds
        self.plain_http = settings.env is Environment.DEV
        self.clock = clock
        self.fetches: dict[str, int] = {}
        self._cache: dict[str, _ProviderKeys] = {}
        self._last_attempt: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._ca_file = settings.oidc_ca_file
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def verify(self, token: str, *, issuer: str, audience: str) -> dict[str, Any]:
        """The verified claims of a token ``issuer`` signed for ``audience``;
        :class:`InvalidToken` (401) or :class:`ProviderUnavailable` (503) otherwise."""
        header = _header_within(token, self.max_bytes)
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in PROVIDER_ALGORITHMS:
            raise InvalidToken(f"algorithm {str(algorithm)[:20]!r} is not accepted")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("no key id (kid)")
        provider_keys = await self._keys_for(issuer, kid)
        if algorithm not in provider_keys.algorithms:
            raise InvalidToken(f"the provider does not announce {algorithm}")
        key = self._key(provider_keys, kid, algorithm)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=audience,
                issuer=issuer,
                options={
                    "require_aud": True,
                    "require_iat": True,
                    "require_exp": True,
                    "require_nbf": True,
                    "require_iss": True,
                    "require_sub": True,
                    "leeway": _CLOCK_SKEW_SECONDS,
                },
            )
        except (JOSEError, ValueError, TypeError) as exc:
            raise InvalidToken(f"signature or claims rejected: {str(exc)[:80]}") from exc
        if any(payload.get(claim) is None for claim in _PROVIDER_REQUIRED):
            raise InvalidToken("required claim missing")
        iat = payload["iat"]
        if not isinstance(iat, int | float) or iat > time.time() + _CLOCK_SKEW_SECONDS:
            raise InvalidToken("iat in the future")
        if not isinstance(payload["sub"], str) or not 0 < len(payload["sub"]) <= 255:
            raise InvalidToken("malformed subject")
        return dict(payload)

    @staticmethod
    def _key(provider_keys: _ProviderKeys, kid: str, algorithm: str) -> Any:
        cached = provider_keys.constructed.get((kid, algorithm))
        if cached is not None:
            return cached
        jwk_data = provider_keys.keys.get(kid)
        if jwk_data is None:
            raise InvalidToken("unknown key id")
        if jwk_data.get("kty") != _KEY_TYPE[algorithm[:2]] or jwk_data.get("alg", algorithm) != (
            algorithm
        ):
            raise InvalidToken(f"key {kid[:40]!r} is not a {algorithm} key")
        try:
            key = jwk.construct(jwk_data, algorithm)
        except (JOSEError, ValueError, TypeError) as exc:
            raise InvalidToken("the provider's key does not parse") from exc
        provider_keys.constructed[(kid, algorithm)] = key
        return key

    async def _keys_for(self, issuer: str, kid: str) -> _ProviderKeys:
        """The provider's keys, fetched when there are none, when they are older than the
        cache period, or when ``kid`` is unknown; never more often than the minimum
        interval. A failed fetch leaves the cached keys in use."""
        cached = self._cache.get(issuer)
        if cached is not None and kid in cached.keys and not self._stale(cached):
            return cached
        lock = self._locks.setdefault(issuer, asyncio.Lock())
        async with lock:
            cached = self._cache.get(issuer)
            if cached is not None and kid in cached.keys and not self._stale(cached):
                return cached  # another request fetched them meanwhile
            last = self._last_attempt.get(issuer)
            if last is not None and self.clock() - last < self.min_interval:
                if cached is None:
                    raise ProviderUnavailable(f"{issuer}: keys not available (fetch failed)")
                return cached  # an unknown kid stays unknown until the interval has passed
            self._last_attempt[issuer] = self.clock()
            try:
                fresh = await self._fetch(issuer)
            except _FetchFailed as exc:
                log.warning("identity provider keys not fetched", issuer=issuer, reason=str(exc))
                if cached is not None and kid in cached.keys:
                    return cached
                raise ProviderUnavailable(f"{issuer}: {exc}") from exc
            self._cache[issuer] = fresh
            return fresh

    def _stale(self, keys: _ProviderKeys) -> bool:
        return self.clock() - keys.fetched_at >= self.cache_seconds

    def _check_url(self, url: object, what: str) -> str:
        parts = urlsplit(url) if isinstance(url, str) else None
        schemes = {"https", "http"} if self.plain_http else {"https"}
        if parts is None or parts.scheme not in schemes or not parts.hostname:
            raise _FetchFailed(f"{what} is not an https URL")
        return str(url)

    async def _fetch(self, issuer: str) -> _ProviderKeys:
        self.fetches[issuer] = self.fetches.get(issuer, 0) + 1
        discovery = await self._get_json(
            issuer.rstrip("/") + "/.well-known/openid-configuration", "discovery document"
        )
        if discovery.get("issuer") != issuer:
            raise _FetchFailed("the discovery document names another issuer")
        jwks = await self._get_json(self._check_url(discovery.get("jwks_uri"), "jwks_uri"), "JWKS")
        announced = discovery.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = frozenset(a for a in announced if a in PROVIDER_ALGORITHMS)
        raw_keys = jwks.get("keys")
        if not isinstance(raw_keys, list):
            raise _FetchFailed("the JWKS has no keys")
        keys = {
            k["kid"]: k
            for k in raw_keys
            if isinstance(k, dict)
            and isinstance(k.get("kid"), str)
            and k.get("use", "sig") == "sig"
            and "d" not in k  # a private key published by mistake is not used
        }
        return _ProviderKeys(keys=keys, algorithms=algorithms, fetched_at=self.clock())

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        """GET ``url`` (no redirects) and parse at most 64 KiB of JSON."""
        self._check_url(url, what)
        if self._client is None:
            # Made at the first fetch: loading the system's CAs costs about 0.5 s of CPU,
            # which an app with no provider (or a test) should not pay at start-up.
            tls = ssl.create_default_context()
            if self._ca_file is not None:
                tls.load_verify_locations(cafile=str(self._ca_file))
            self._client = httpx.AsyncClient(
                verify=tls, timeout=self.timeout, follow_redirects=False
            )
        body = bytearray()
        try:
            async with self._client.stream(
                "GET", url, headers={"Accept": "application/json"}
            ) as response:
                if response.status_code != 200:
                    raise _FetchFailed(f"{what}: HTTP {response.status_code}")
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > PROVIDER_DOCUMENT_MAX_BYTES:
                        raise _FetchFailed(f"{what} is larger than 64 KiB")
        except httpx.HTTPError as exc:
            raise _FetchFailed(f"{what}: {type(exc).__name__}") from exc
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise _FetchFailed(f"{what} is not JSON") from exc
        if not isinstance(document, dict):
            raise _FetchFailed(f"{what} is not a JSON object")
        return document


@functools.lru_cache(maxsize=16)
def _construct(key_material: str, algorithm: str) -> Any:
    """A parsed key, shared by every TokenService of the process that uses the same key
    (python-jose keys are not changed once made). Parsing an RSA private key validates it,
    about 80 ms of CPU: once per process, not once per app made (the tests make one per
    test)."""
    return jwk.construct(key_material, algorithm)


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


@contextlib.contextmanager
def dev_keys_lock(data_dir: Path) -> Iterator[None]:
    """Development keys are made once per data directory. Worker processes starting together
    (``--workers 2`` on a fresh directory) take turns here, so that none reads a key file
    another is still writing, nor pairs its own private key with another's public one."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / ".dev-keys.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _dev_key_pair(data_dir: Path, algorithm: str) -> tuple[Path, Path]:
    """A key pair generated once into the data directory (development only)."""
    suffix = algorithm.lower()
    private_file = data_dir / f"jwt-{suffix}-private.pem"
    public_file = data_dir / f"jwt-{suffix}-public.pem"
    with dev_keys_lock(data_dir):
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
        private_file.unlink(missing_ok=True)  # half a pair left by a crash
        _write_private(private_file, private_pem)
        public_file.write_bytes(public_pem)
    return private_file, public_file


def _dev_secret(data_dir: Path) -> str:
    path = data_dir / "jwt-hs256.secret"
    with dev_keys_lock(data_dir):
        if not path.is_file():
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
