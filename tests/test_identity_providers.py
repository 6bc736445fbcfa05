"""Identity providers as configuration (issue 17, first part): the file is validated at
start-up (a broken one stops the app) and the sign-in page lists the providers whose agency
is registered, without a token. Token verification against a real provider comes next."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Environment
from app.db import Database
from app.main import create_app
from app.oidc.providers import ProviderFileError, load_providers, providers_file
from tests.conftest import make_settings
from tests.factories import make_agency
from tests.oidc_provider import OidcProvider

GOOD: dict[str, Any] = {
    "id": "solna-entra",
    "name": "Solna stad",
    "issuer": "https://login.example.se/solna/v2.0",
    "agency": "212000-0142",
    "audience": "api://samverkan",
    "roles": [{"claim": "groups", "value": "samverkan-handlaggare", "role": "caseworker"}],
}


def _write(tmp_path: Path, providers: Any) -> Path:
    path = tmp_path / "identity_providers.yaml"
    path.write_text(
        providers if isinstance(providers, str) else yaml.safe_dump({"providers": providers}),
        encoding="utf-8",
    )
    return path


def test_the_shipped_file_is_valid() -> None:
    settings = make_settings("sqlite+aiosqlite://")
    assert providers_file(settings).name == "identity_providers.yaml"
    assert load_providers(settings) == {}


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, [GOOD])
    loaded = load_providers(make_settings("sqlite+aiosqlite://", identity_providers_file=path))
    assert loaded["solna-entra"].agency == "2120000142"
    assert loaded["solna-entra"].provisioning == "pre_registered"


@pytest.mark.parametrize(
    ("providers", "says"),
    [
        ("providers: [unclosed", "identity_providers.yaml"),
        ([GOOD | {"colour": "blue"}], "providers.0.colour"),
        ([GOOD | {"id": "Solna Entra"}], "providers.0.id"),
        ([GOOD | {"agency": "212000-0143"}], "providers.0.agency"),
        ([GOOD | {"roles": []}], "providers.0.roles"),
        ([GOOD | {"roles": [{"claim": "g", "value": "v", "role": "chief"}]}], "role"),
        ([GOOD | {"roles": [{"claim": "g", "value": "v", "role": "admin"}]}], "allow_admin"),
        ([GOOD, GOOD | {"name": "Again"}], "repeats"),
        ([GOOD, GOOD | {"id": "solna-two"}], "repeats"),
        ([GOOD | {"agency_kind": "bank"}], "providers.0.agency_kind"),
        ([GOOD | {"issuer": "ftp://login.example.se/"}], "https"),
    ],
    ids=[
        "yaml",
        "unknown-key",
        "id",
        "orgnr",
        "no-roles",
        "role",
        "admin",
        "twice",
        "same-issuer-and-audience",
        "agency-kind",
        "scheme",
    ],
)
def test_a_broken_file_stops_the_app(tmp_path: Path, providers: Any, says: str) -> None:
    settings = make_settings(
        "sqlite+aiosqlite://", identity_providers_file=_write(tmp_path, providers)
    )
    with pytest.raises(ProviderFileError, match=says):
        create_app(settings)


def test_one_issuer_may_serve_several_agencies_with_an_audience_each(tmp_path: Path) -> None:
    school = GOOD | {
        "id": "solna-skola",
        "audience": "api://samverkan-skola",
        "agency_kind": "skola",
    }
    path = _write(tmp_path, [GOOD | {"agency_kind": "socialtjanst"}, school])
    loaded = load_providers(make_settings("sqlite+aiosqlite://", identity_providers_file=path))
    assert set(loaded) == {"solna-entra", "solna-skola"}


def test_an_http_issuer_is_for_dev_only(tmp_path: Path) -> None:
    path = _write(tmp_path, [GOOD | {"issuer": "http://localhost:9400"}])
    dev = make_settings("sqlite+aiosqlite://", identity_providers_file=path)
    assert "solna-entra" in load_providers(dev)
    production = dev.model_copy(update={"env": Environment.PROD})
    with pytest.raises(ProviderFileError, match="https"):
        load_providers(production)


async def test_the_sign_in_page_lists_providers_of_registered_agencies(
    tmp_path: Path, database_url: str, connection: Any, session: AsyncSession
) -> None:
    other = GOOD | {
        "id": "polisen",
        "issuer": "https://idp.polisen.example/",
        "agency": "202100-0076",
    }
    settings = make_settings(database_url, identity_providers_file=_write(tmp_path, [GOOD, other]))
    agency = await make_agency(session, organisation_number="2120000142")
    app = create_app(settings, database=Database.bound_to(connection))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/api/v1/auth/providers")  # no token
    assert response.status_code == 200
    assert response.json() == [
        {
            "id": "solna-entra",
            "name": "Solna stad",
            "agency_id": str(agency.id),
            "issuer": "https://login.example.se/solna/v2.0",
        }
    ]


def test_the_test_provider_is_a_real_openid_connect_provider(oidc_provider: OidcProvider) -> None:
    """The provider process the token tests run against: discovery, JWKS, signed tokens,
    key rotation, and a key that leaves the JWKS on a restart."""
    discovery = oidc_provider.discovery()
    assert discovery["issuer"] == oidc_provider.issuer
    first = oidc_provider.kids()
    assert len(first) == 1
    token = oidc_provider.token({"sub": "anna", "aud": "api://samverkan"})
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert header["kid"] == first[0]
    assert header["alg"] == "RS256"
    assert (claims["iss"], claims["sub"], claims["aud"]) == (
        oidc_provider.issuer,
        "anna",
        "api://samverkan",
    )
    new = oidc_provider.rotate()
    assert set(oidc_provider.kids()) == {first[0], new}
    oidc_provider.restart(drop_kids={first[0]})
    assert oidc_provider.kids() == [new]
    assert oidc_provider.discovery()["issuer"] == oidc_provider.issuer  # the same port
