"""Token attacks: every forged, altered, stale or misused token is a 401, all alike."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import multiprocessing
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from jose import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from app import security
from app.audit.checkpoints import CheckpointSigner
from app.security import InvalidToken, TokenService, TokenType
from app.users.models import Role, User
from tests.conftest import make_settings
from tests.factories import factory_sign_in, make_user

ME = "/api/v1/auth/me"


def _b64(data: dict[str, object] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _claims(tokens: TokenService, user: User, **changes: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": f"user:{user.id}",
        "typ": "access",
        "jti": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "iss": tokens.issuer,
        "aud": tokens.audience,
        "sid": str(factory_sign_in(user.id)),
    }
    for key, value in changes.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def _sign(tokens: TokenService, claims: dict[str, object], **header: object) -> str:
    headers = {"kid": tokens.key_id, **header}
    return jwt.encode(claims, tokens._signing_key, algorithm=tokens.algorithm, headers=headers)


@pytest.fixture
async def user(session: AsyncSession) -> User:
    return await make_user(session, roles={Role.CASEWORKER})


@pytest.fixture
def tokens(app: FastAPI) -> TokenService:
    service: TokenService = app.state.tokens
    return service


async def _status(client: httpx.AsyncClient, token: str) -> int:
    response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    if response.status_code == 401:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "The access token is invalid or expired."
    return response.status_code


async def test_a_genuine_token_works(
    client: httpx.AsyncClient, tokens: TokenService, user: User
) -> None:
    assert await _status(client, _sign(tokens, _claims(tokens, user))) == 200


async def test_alg_none_is_refused(
    client: httpx.AsyncClient, tokens: TokenService, user: User
) -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': tokens.key_id})}."
    token += f"{_b64(_claims(tokens, user))}."
    assert await _status(client, token) == 401


@pytest.mark.parametrize("encoding", ["pem", "der"])
async def test_hs256_signed_with_the_public_key_is_refused(
    client: httpx.AsyncClient, tokens: TokenService, user: User, encoding: str
) -> None:
    """Algorithm confusion: the RSA public key used as an HMAC secret."""
    assert tokens.public_key_pem is not None
    public = serialization.load_pem_public_key(tokens.public_key_pem.encode())
    secret = (
        tokens.public_key_pem.encode()
        if encoding == "pem"
        else public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    header = _b64({"alg": "HS256", "typ": "JWT", "kid": tokens.key_id})
    payload = _b64(_claims(tokens, user))
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert await _status(client, f"{header}.{payload}.{_b64(signature)}") == 401


async def test_edited_payload_is_refused(
    client: httpx.AsyncClient, tokens: TokenService, user: User, session: AsyncSession
) -> None:
    admin = await make_user(session, roles={Role.ADMIN})
    header, _, signature = _sign(tokens, _claims(tokens, user)).split(".")
    forged = _b64(_claims(tokens, user, sub=f"user:{admin.id}"))
    assert await _status(client, f"{header}.{forged}.{signature}") == 401


@pytest.mark.parametrize("claim", ["exp", "aud", "iss", "iat", "sub", "jti", "typ", "sid"])
async def test_a_missing_required_claim_is_refused(
    client: httpx.AsyncClient, tokens: TokenService, user: User, claim: str
) -> None:
    assert await _status(client, _sign(tokens, _claims(tokens, user, **{claim: None}))) == 401


@pytest.mark.parametrize(
    "change",
    [
        {"aud": "someone-else"},
        {"iss": "https://evil.example"},
        {"exp": int(time.time()) - 120},
        {"nbf": int(time.time()) + 3600},
        {"iat": int(time.time()) + 3600},
        {"typ": "refresh"},
        {"sub": "user:not-a-uuid"},
        {"sub": f"user:{uuid.uuid4()}"},
        {"sub": f"robot:{uuid.uuid4()}"},
    ],
    ids=lambda c: next(iter(c)),
)
async def test_wrong_claims_are_refused(
    client: httpx.AsyncClient, tokens: TokenService, user: User, change: dict[str, object]
) -> None:
    assert await _status(client, _sign(tokens, _claims(tokens, user, **change))) == 401


@pytest.mark.parametrize("kid", ["unknown-key", "", None])
async def test_unknown_or_missing_kid_is_refused(
    client: httpx.AsyncClient, tokens: TokenService, user: User, kid: str | None
) -> None:
    claims = _claims(tokens, user)
    headers = {} if kid is None else {"kid": kid}
    token = jwt.encode(claims, tokens._signing_key, algorithm=tokens.algorithm, headers=headers)
    assert await _status(client, token) == 401


async def test_refresh_token_is_not_an_access_token(
    client: httpx.AsyncClient, tokens: TokenService, user: User
) -> None:
    refresh = tokens.issue(subject=f"user:{user.id}", token_type=TokenType.REFRESH, ttl_seconds=60)
    assert await _status(client, refresh.token) == 401


async def test_oversize_token_is_refused_before_parsing(
    client: httpx.AsyncClient, tokens: TokenService, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = _sign(tokens, _claims(tokens, user, padding="x" * (tokens.max_bytes + 1)))

    def must_not_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an oversize token was parsed")

    monkeypatch.setattr(jwt, "get_unverified_header", must_not_parse)
    assert await _status(client, big) == 401


@pytest.mark.parametrize(
    "garbage", ["", "abc", "a.b.c", "eyJ.eyJ.", "Bearer", "\u00e5\u00e4\u00f6.x.y"]
)
async def test_garbage_is_refused(client: httpx.AsyncClient, garbage: str) -> None:
    headers = {"Authorization": f"Bearer {garbage}".encode()}
    assert (await client.get(ME, headers=headers)).status_code == 401


async def test_no_token_is_401_with_www_authenticate(client: httpx.AsyncClient) -> None:
    response = await client.get(ME)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


UserChange = Callable[[User], None]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda u: setattr(u, "active", False), 401),
        (lambda u: setattr(u, "roles", "auditor"), 200),
    ],
    ids=["deactivated", "roles-changed"],
)
async def test_account_changes_apply_at_the_next_request(
    client: httpx.AsyncClient,
    tokens: TokenService,
    user: User,
    session: AsyncSession,
    change: UserChange,
    expected: int,
) -> None:
    token = _sign(tokens, _claims(tokens, user))
    assert await _status(client, token) == 200
    change(user)
    await session.flush()
    response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == expected
    if expected == 200:
        assert response.json()["roles"] == ["auditor"]


def test_token_service_rejects_tokens_of_another_deployment(app: FastAPI) -> None:
    other = TokenService(make_settings("sqlite+aiosqlite://", jwt_algorithm="HS256"))
    foreign = other.issue(subject="user:x", token_type=TokenType.ACCESS, ttl_seconds=60).token
    with pytest.raises(InvalidToken):
        app.state.tokens.decode(foreign, expected_type=TokenType.ACCESS)


def _key_ids(data_dir: str) -> tuple[str, str]:
    """What a worker process starting on ``data_dir`` makes of the development keys."""
    settings = make_settings("sqlite+aiosqlite://", data_dir=Path(data_dir))
    return TokenService(settings).key_id, CheckpointSigner(settings).key_id


def test_workers_starting_together_on_a_fresh_directory_share_one_set_of_keys(
    tmp_path: Path,
) -> None:
    """`serve --workers N` on a fresh data directory: every worker makes or reads the
    development keys at once; each must get whole files and the same keys (CI once saw a
    worker read the audit signing key half written)."""
    with ProcessPoolExecutor(
        max_workers=6, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        results = list(pool.map(_key_ids, [str(tmp_path / "data")] * 12))
    assert len(set(results)) == 1


async def test_a_verified_token_is_checked_again_at_every_use(
    client: httpx.AsyncClient, tokens: TokenService, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service keeps what it verified (the signature check is the costly part), but a
    token kept that has since expired is refused, a refresh token kept is still not an
    access token, and an edited copy of a token kept is checked from scratch."""
    now = int(time.time())
    token = _sign(tokens, _claims(tokens, user, exp=now + 60))
    assert await _status(client, token) == 200
    header, payload, signature = token.split(".")
    edited = json.loads(base64.urlsafe_b64decode(payload + "=="))
    edited["sub"] = f"user:{uuid.uuid4()}"
    assert await _status(client, f"{header}.{_b64(edited)}.{signature}") == 401
    refresh = tokens.issue(subject=f"user:{user.id}", token_type=TokenType.REFRESH, ttl_seconds=60)
    assert tokens.decode(refresh.token, expected_type=TokenType.REFRESH).subject
    with pytest.raises(InvalidToken):
        tokens.decode(refresh.token, expected_type=TokenType.ACCESS)
    later = SimpleNamespace(time=lambda: now + 60 + 60)  # well past the 30 s of clock skew
    monkeypatch.setattr(security, "time", later)
    assert await _status(client, token) == 401
    with pytest.raises(InvalidToken):
        tokens.decode(refresh.token, expected_type=TokenType.REFRESH)
