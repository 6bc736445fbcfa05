"""Sign-in through the agencies' own identity providers (issue 17), against a real OpenID
Connect provider process over HTTPS (tests/oidc_provider.py): key rotation, a provider that
is down, wrong issuer and audience, expiry, algorithm confusion, a token of one agency's
provider for another agency's account, local deactivation, claims that give no role,
provisioning at first sign-in, and the administrators' links. On SQLite and PostgreSQL.

Only the steering of the provider is test-made (which claims, which key); every token is
signed by the provider process and checked against what it serves.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, hmac
from fastapi import FastAPI
from jose import jwk
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.agencies.models import Agency, AgencyKind
from app.audit.chain import verify_chain
from app.audit.models import AuditEvent
from app.db import Database
from app.main import create_app
from app.security import ProviderTokenVerifier
from app.users.models import Role, User
from tests.conftest import client_for, make_settings
from tests.factories import audit_events_after, audit_head, bearer, make_agency, make_user
from tests.oidc_provider import (
    GROUP_OF,
    LOA3,
    AgencyProviders,
    OidcProvider,
    Tls,
    provider_entry,
    write_providers,
)

API = "/api/v1"
AUDIENCE = "samverkan-soc"


@dataclass
class Site:
    """An app whose providers file names ``provider`` (id ``kommun``) for ``agency``."""

    app: FastAPI
    client: httpx.AsyncClient
    provider: OidcProvider
    agency: Agency
    user: User  # caseworker, linked as subject "anna"
    verifier: ProviderTokenVerifier
    clock: list[float]

    def token(self, sub: str = "anna", **claims: Any) -> str:
        options = {k: claims.pop(k) for k in ("kid", "expires_in", "header") if k in claims}
        body = {
            "sub": sub,
            "aud": AUDIENCE,
            "groups": [GROUP_OF[Role.CASEWORKER]],
            "acr": LOA3,
            "name": "Anna Andersson",
        } | claims
        return self.provider.token(body, **options)

    async def get(self, token: str, path: str = "/auth/me") -> httpx.Response:
        return await self.client.get(API + path, headers={"Authorization": f"Bearer {token}"})

    def tick(self, seconds: float) -> None:
        self.clock[0] += seconds


async def _site(
    tmp_path: Path,
    database_url: str,
    connection: AsyncConnection,
    session: AsyncSession,
    provider: OidcProvider,
    tls: Tls,
    **entry: Any,
) -> AsyncIterator[Site]:
    agency = await make_agency(session, kind=AgencyKind.SOCIALTJANST.value)
    user = await make_user(session, roles={Role.CASEWORKER, Role.AUDITOR}, agency=agency)
    user.identity_provider, user.identity_issuer = "kommun", provider.issuer
    user.identity_subject = "anna"
    await session.flush()
    entries = [provider_entry("kommun", provider.issuer, AUDIENCE, "socialtjanst", **entry)]
    settings = make_settings(
        database_url,
        identity_providers_file=write_providers(tmp_path / "providers.yaml", entries),
        oidc_ca_file=tls.ca_file,
    )
    app = create_app(settings, database=Database.bound_to(connection))
    verifier: ProviderTokenVerifier = app.state.provider_tokens
    clock = [1000.0]
    verifier.clock = lambda: clock[0]
    async with client_for(app) as client:
        yield Site(app, client, provider, agency, user, verifier, clock)
    await verifier.aclose()


@pytest.fixture
async def site(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    database_url: str,
    connection: AsyncConnection,
    session: AsyncSession,
    oidc_provider: OidcProvider,
    oidc_tls: Tls,
) -> AsyncIterator[Site]:
    """The site; a test parametrizes it indirectly with changes to the provider entry."""
    entry: dict[str, Any] = getattr(request, "param", {})
    async for made in _site(
        tmp_path, database_url, connection, session, oidc_provider, oidc_tls, **entry
    ):
        yield made


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
    )


# --- the actor ------------------------------------------------------------------------------


async def test_a_provider_token_is_the_linked_account_with_roles_from_its_claims(
    site: Site, connection: AsyncConnection
) -> None:
    before = await audit_head(connection)
    me = await site.get(site.token())
    assert me.status_code == 200, me.text
    assert me.json() | {"id": str(site.user.id)} == {
        "id": str(site.user.id),
        "kind": "user",
        "username": site.user.username,
        "display_name": "Anna Andersson",  # the display_name_claim
        "agency_id": str(site.agency.id),  # the provider's agency
        "roles": ["caseworker"],  # the claims' roles, within the account's
        "scopes": [],
        "auth_method": "oidc:kommun",
    }
    # a personal-data read is audited naming the provider
    listed = await site.get(site.token(), "/cases")
    assert listed.status_code == 200, listed.text
    records = [e for e in await audit_events_after(connection, before) if e.action == "case.list"]
    assert [(r.actor_user_id, r.actor_roles, r.auth_method) for r in records] == [
        (site.user.id, "caseworker", "oidc:kommun")
    ]
    assert (await verify_chain(connection)).ok


async def test_a_role_the_account_does_not_hold_is_not_given_by_the_claims(site: Site) -> None:
    """The account's roles are the ceiling: a group claim for coordinator (which the
    administrator did not give) adds nothing."""
    token = site.token(groups=[GROUP_OF[Role.CASEWORKER], GROUP_OF[Role.COORDINATOR]])
    assert (await site.get(token)).json()["roles"] == ["caseworker"]


async def test_claims_that_map_to_no_role_are_a_recorded_403(
    site: Site, connection: AsyncConnection
) -> None:
    before = await audit_head(connection)
    response = await site.get(site.token(groups=["unrelated-group"]), "/cases")
    assert response.status_code == 403, response.text
    denied = await audit_events_after(connection, before)
    assert [(e.action, e.decision, e.actor_user_id, e.auth_method) for e in denied] == [
        ("auth.no_role", "deny", site.user.id, "oidc:kommun")
    ]


async def test_a_weak_authentication_level_gives_no_content_role(site: Site) -> None:
    """acr outside the entry's list: caseworker is withheld (403 when it was the only
    role); the auditor role, which opens no case content, is not."""
    weak = "http://id.elegnamnden.se/loa/1.0/loa2"
    assert (await site.get(site.token(acr=weak))).status_code == 403
    both = [GROUP_OF[Role.CASEWORKER], GROUP_OF[Role.AUDITOR]]
    me = await site.get(site.token(acr=weak, groups=both))
    assert me.status_code == 200
    assert me.json()["roles"] == ["auditor"]
    assert (await site.get(site.token(groups=both))).json()["roles"] == ["auditor", "caseworker"]


async def test_a_user_deactivated_locally_is_refused_at_the_next_request(
    site: Site, session: AsyncSession
) -> None:
    token = site.token()
    assert (await site.get(token)).status_code == 200
    admin = await make_user(session, roles={Role.ADMIN}, agency=site.agency)
    off = await site.client.patch(
        f"{API}/users/{site.user.id}", json={"active": False}, headers=bearer(site.app, admin)
    )
    assert off.status_code == 200, off.text
    assert (await site.get(token)).status_code == 401


async def test_a_subject_without_an_account_is_refused_when_accounts_are_pre_registered(
    site: Site, session: AsyncSession
) -> None:
    assert (await site.get(site.token(sub="someone-else"))).status_code == 401
    accounts = await session.execute(select(User).where(User.identity_subject == "someone-else"))
    assert accounts.first() is None


# --- keys -----------------------------------------------------------------------------------


async def test_key_rotation_old_kid_until_it_leaves_the_jwks_new_kid_picked_up(
    site: Site,
) -> None:
    old_kid = site.provider.kids()[0]
    old_token = site.token()
    assert (await site.get(old_token)).status_code == 200
    assert site.verifier.fetches == {site.provider.issuer: 1}

    new_kid = site.provider.rotate()
    site.tick(61)  # past the minimum interval between fetches
    new_token = site.token(kid=new_kid)
    assert _parts(new_token)[0]["kid"] == new_kid
    assert (await site.get(new_token)).status_code == 200  # unknown kid: fetched again
    assert (await site.get(old_token)).status_code == 200  # still in the JWKS
    assert site.verifier.fetches == {site.provider.issuer: 2}

    site.provider.restart(drop_kids={old_kid})  # the old key leaves the JWKS
    site.tick(site.verifier.cache_seconds)  # the cached keys are due for a fetch
    assert (await site.get(old_token)).status_code == 401
    assert (await site.get(new_token)).status_code == 200


async def test_an_unknown_kid_fetches_the_keys_at_most_once_a_minute(site: Site) -> None:
    assert (await site.get(site.token())).status_code == 200
    forged = site.token(header={"kid": "no-such-key"})
    site.tick(61)
    for _ in range(5):
        assert (await site.get(forged)).status_code == 401
    assert site.verifier.fetches == {site.provider.issuer: 2}  # the first + one
    site.tick(30)
    assert (await site.get(forged)).status_code == 401
    assert site.verifier.fetches == {site.provider.issuer: 2}
    site.tick(31)
    assert (await site.get(forged)).status_code == 401
    assert site.verifier.fetches == {site.provider.issuer: 3}


async def test_a_provider_that_is_down_cached_keys_still_verify_others_get_503(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    token = site.token()
    assert (await site.get(token)).status_code == 200
    unknown_kid = site.token(header={"kid": "rotated-while-down"})
    site.provider.stop()
    site.tick(site.verifier.cache_seconds + 61)  # stale: a fetch is tried, and fails
    assert (await site.get(token)).status_code == 200  # its key is cached
    site.tick(61)
    refused = await site.get(unknown_kid)
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "30"
    assert refused.json()["status"] == 503


async def test_a_provider_down_from_the_start_is_503_never_a_pass(site: Site) -> None:
    token = site.token()
    site.provider.stop()  # before the app ever asked it for its keys
    assert (await site.get(token)).status_code == 503
    assert (await site.get(token)).status_code == 503  # no second wait: within the interval
    assert site.verifier.fetches == {site.provider.issuer: 1}


async def test_a_jwks_over_64_kib_is_refused_with_a_clear_log_line(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    site.provider.rotate(alg="ES256", count=400)  # about 80 KiB of public keys
    assert len(json.dumps(site.provider.jwks())) > 64 * 1024
    with caplog.at_level(logging.WARNING):
        response = await site.get(site.token())
    assert response.status_code == 503
    assert "JWKS is larger than 64 KiB" in caplog.text


async def test_a_token_over_the_size_cap_is_401(site: Site) -> None:
    padded = site.token(padding="x" * 9000)
    assert (await site.get(padded)).status_code == 401


# --- claims ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"expires_in": -120}, "expired"),
        ({"aud": "another-api"}, "audience"),
        ({"aud": None}, "no audience"),
        ({"iss": "https://evil.example/"}, "issuer"),
        ({"nbf": None}, "no nbf"),
        ({"iat": None}, "no iat"),
        ({"nbf": 4_102_444_800}, "not yet valid"),
        ({"iat": 4_102_444_800}, "issued in the future"),
        ({"sub": None}, "no subject"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_claims_that_do_not_fit_are_401(site: Site, claims: dict[str, Any], why: str) -> None:
    changed = dict(claims)  # the parameter is shared by both backends' runs
    sub = changed.pop("sub", "anna")
    response = await site.get(site.token(sub=sub, **changed))
    assert response.status_code == 401, why


async def test_a_token_naming_the_issuer_but_signed_by_another_provider_is_401(
    site: Site, agency_providers: AgencyProviders
) -> None:
    """The Police's provider signs a token that claims to be the municipality's."""
    assert (await site.get(site.token())).status_code == 200
    site.tick(61)
    forged = agency_providers.police.token(
        {
            "iss": site.provider.issuer,
            "sub": "anna",
            "aud": AUDIENCE,
            "groups": [GROUP_OF[Role.CASEWORKER]],
            "acr": LOA3,
        }
    )
    assert (await site.get(forged)).status_code == 401


async def test_algorithm_confusion_is_refused(site: Site) -> None:
    """HS256 keyed with the provider's public key, ``none``, an algorithm the provider
    does not announce, and an RS256 header on an EC key: all 401."""
    genuine = site.token()
    assert (await site.get(genuine)).status_code == 200
    header, claims = _parts(genuine)
    public = site.provider.jwks()["keys"][0]
    pem = jwk.construct(public, "RS256").public_key().to_pem()

    def signed(alg: str, key: bytes | None) -> str:
        head = _b64(json.dumps(header | {"alg": alg}).encode())
        body = _b64(json.dumps(claims).encode())
        if key is None:
            return f"{head}.{body}."
        mac = hmac.HMAC(key, hashes.SHA256())
        mac.update(f"{head}.{body}".encode())
        return f"{head}.{body}.{_b64(mac.finalize())}"

    assert (await site.get(signed("HS256", pem))).status_code == 401
    assert (await site.get(signed("none", None))).status_code == 401
    assert (await site.get(signed("NONE", None))).status_code == 401

    ec_kid = site.provider.rotate(alg="ES256")
    site.tick(61)
    es256 = site.token(kid=ec_kid)
    assert _parts(es256)[0]["alg"] == "ES256"
    assert (await site.get(es256)).status_code == 401  # metadata announces RS256 only
    mixed = site.token(header={"kid": ec_kid})  # RS256-signed, naming the EC key
    assert (await site.get(mixed)).status_code == 401


async def test_a_token_of_one_agencys_provider_is_not_another_agencys_account(
    database_url: str,
    connection: AsyncConnection,
    session: AsyncSession,
    agency_providers: AgencyProviders,
) -> None:
    """Social services and the school share the municipality's provider (one audience
    each); the Police have their own. A token only ever reaches its own agency's
    account, whichever subject it names."""
    entries = agency_providers.entries()
    soc = await make_agency(session, kind=AgencyKind.SOCIALTJANST.value)
    skola = await make_agency(session, kind=AgencyKind.SKOLA.value)
    pol = await make_agency(session, kind=AgencyKind.POLIS.value)
    social_worker = await make_user(session, roles={Role.CASEWORKER}, agency=soc)
    agency_providers.link(social_worker, "socialtjanst")
    await session.flush()
    settings = make_settings(
        database_url,
        identity_providers_file=agency_providers.file,
        oidc_ca_file=agency_providers.ca_file,
    )
    app = create_app(settings, database=Database.bound_to(connection))
    sub = social_worker.identity_subject
    claims = {"sub": sub, "groups": [GROUP_OF[Role.CASEWORKER]], "acr": LOA3}
    async with client_for(app) as client:

        async def me(token: str) -> httpx.Response:
            return await client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {token}"})

        own = await me(agency_providers.municipality.token(claims | {"aud": "samverkan-soc"}))
        assert own.status_code == 200, own.text
        assert own.json()["agency_id"] == str(soc.id)
        # the same subject through the school's audience, or at the Police's provider
        school = agency_providers.municipality.token(claims | {"aud": "samverkan-skola"})
        assert (await me(school)).status_code == 401
        police = agency_providers.police.token(claims | {"aud": "samverkan-pol"})
        assert (await me(police)).status_code == 401
        # a claim naming another agency changes nothing: the agency is the provider's
        other = agency_providers.municipality.token(
            claims | {"aud": "samverkan-soc", "agency_id": str(pol.id), "agency": str(skola.id)}
        )
        assert (await me(other)).json()["agency_id"] == str(soc.id)
        # the sign-in page: each provider with the agency it speaks for
        listed = (await client.get(f"{API}/auth/providers")).json()
        assert {(p["id"], p["agency_id"]) for p in listed} == {
            (entries["socialtjanst"]["id"], str(soc.id)),
            (entries["skola"]["id"], str(skola.id)),
            (entries["polis"]["id"], str(pol.id)),
        }
    await app.state.provider_tokens.aclose()


# --- provisioning and links -----------------------------------------------------------------


@pytest.mark.parametrize("site", [{"provisioning": "on_first_sign_in"}], indirect=True)
async def test_on_first_sign_in_the_account_is_made_once_and_never_admin(
    site: Site, session: AsyncSession, connection: AsyncConnection
) -> None:
    before = await audit_head(connection)
    groups = [GROUP_OF[Role.COORDINATOR], GROUP_OF[Role.ADMIN]]
    first = await site.get(site.token(sub="new-person", groups=groups, name="Nils Ny"))
    assert first.status_code == 200, first.text
    assert first.json()["roles"] == ["coordinator"]  # admin is never provisioned
    again = await site.get(site.token(sub="new-person", groups=groups))
    assert again.json()["id"] == first.json()["id"]
    made = await session.get(User, uuid.UUID(first.json()["id"]))
    assert made is not None
    assert (made.agency_id, made.identity_subject, made.password_hash) == (
        site.agency.id,
        "new-person",
        None,
    )
    assert made.display_name == "Nils Ny"
    provisioned = [
        e for e in await audit_events_after(connection, before) if e.action == "user.provision"
    ]
    assert len(provisioned) == 1
    assert "account_change" in provisioned[0].flags.split(",")
    assert provisioned[0].auth_method == "oidc:kommun"


async def test_administrators_link_accounts_to_identities(
    site: Site, session: AsyncSession, connection: AsyncConnection
) -> None:
    admin = await make_user(session, roles={Role.ADMIN}, agency=site.agency)
    other_agency = await make_agency(session, kind=AgencyKind.POLIS.value)
    headers = bearer(site.app, admin)
    body = {
        "username": "berit.linked",
        "display_name": "Berit",
        "agency_id": str(site.agency.id),
        "roles": ["caseworker"],
        "identity": {"provider": "kommun", "subject": "berit"},
    }
    before = await audit_head(connection)
    made = await site.client.post(f"{API}/users", json=body, headers=headers)
    assert made.status_code == 201, made.text
    assert made.json()["identity"] == {
        "provider": "kommun",
        "issuer": site.provider.issuer,
        "subject": "berit",
    }
    created = [e for e in await audit_events_after(connection, before) if e.action == "user.create"]
    assert "account_change" in created[0].flags.split(",")
    assert (await site.get(site.token(sub="berit"))).json()["id"] == made.json()["id"]

    async def refused(payload: dict[str, Any], status: int, field: str | None = None) -> None:
        head = await audit_head(connection)
        response = await site.client.post(f"{API}/users", json=payload, headers=headers)
        assert response.status_code == status, response.text
        if field is not None:
            assert [e["field"] for e in response.json()["errors"]] == [field]
        assert not [e for e in await audit_events_after(connection, head) if e.decision == "permit"]

    again = body | {"username": "berit.two"}
    await refused(again, 409)  # the identity is another account's
    unknown = again | {"identity": {"provider": "nope", "subject": "x"}}
    await refused(unknown, 422, "body.identity.provider")
    elsewhere = again | {"agency_id": str(other_agency.id)}
    await refused(elsewhere | {"identity": {"provider": "kommun", "subject": "x"}}, 422)
    no_way_in = {k: v for k, v in again.items() if k != "identity"}
    await refused(no_way_in, 422)

    unlinked = await site.client.patch(
        f"{API}/users/{made.json()['id']}", json={"identity": None}, headers=headers
    )
    assert unlinked.status_code == 200, unlinked.text
    assert unlinked.json()["identity"] is None
    assert (await site.get(site.token(sub="berit"))).status_code == 401
    moved = await site.client.patch(
        f"{API}/users/{site.user.id}", json={"agency_id": str(other_agency.id)}, headers=headers
    )
    assert moved.status_code == 422  # its provider does not speak for the new agency


async def test_the_audit_chain_holds_records_with_and_without_auth_method(
    site: Site, connection: AsyncConnection
) -> None:
    assert (await site.get(site.token(), "/cases")).status_code == 200
    methods = set((await connection.execute(select(AuditEvent.auth_method))).scalars())
    assert "oidc:kommun" in methods
    assert (await verify_chain(connection)).ok
