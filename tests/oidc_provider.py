"""A real OpenID Connect provider process for the tests (issue 17): oauth2-mock-server from
npm, run by the machine's Node.js (tests/oidc/provider.js). It serves discovery and JWKS
over HTTPS (a certificate from a test CA made with trustme, which the app is told to
trust) and signs tokens with its own keys; a test asks it for a token with the claims it
needs, rotates its key, or restarts it without an old key (the key leaves the JWKS).

``agency_providers`` (one per test session) stands for two organisations: the
municipality's provider, serving its social services and its school (one issuer, one
audience per agency), and the Police's. ``sign_in`` runs a test module twice, the second
time with every user of the shared world signed in through those providers (opt in with
``pytestmark = pytest.mark.usefixtures("sign_in")``).

Installed on first use into tests/oidc/node_modules (`npm install`, pinned version). Without
Node.js or npm the tests that need it are skipped, except in CI, where that is a failure.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import yaml
from fastapi import FastAPI

from app.users.models import Role, User

HERE = Path(__file__).resolve().parent / "oidc"


def _install() -> None:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Node.js and npm are needed for the OpenID Connect provider tests")
        pytest.skip("Node.js and npm are not installed")
    # The test workers (pytest-xdist) install one at a time: the second waits on the lock
    # for the first's install to finish, then finds npm's record of it (node_modules'
    # hidden lock file) and installs nothing.
    with (HERE / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (HERE / "node_modules" / ".package-lock.json").is_file():
            return
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"],
            cwd=HERE,
            check=True,
            timeout=300,
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Tls:
    """The test CA (the app trusts ``ca_file``) and the providers' certificate."""

    ca_file: Path
    key_file: Path
    cert_file: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_tls(directory: Path) -> Tls:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    tls = Tls(directory / "ca.pem", directory / "server-key.pem", directory / "server-cert.pem")
    ca.cert_pem.write_to_path(str(tls.ca_file))
    server.private_key_pem.write_to_path(str(tls.key_file))
    server.cert_chain_pems[0].write_to_path(str(tls.cert_file))
    return tls


class OidcProvider:
    """One provider process; :meth:`restart` keeps its port (and so its issuer)."""

    def __init__(self, directory: Path, tls: Tls) -> None:
        self.port = _free_port()
        self.tls = tls
        self.keys_file = directory / f"provider-keys-{self.port}.json"
        self.process: subprocess.Popen[str] | None = None
        self.issuer = ""
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "node",
                str(HERE / "provider.js"),
                str(self.port),
                str(self.keys_file),
                str(self.tls.key_file),
                str(self.tls.cert_file),
            ],
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"the OpenID Connect provider did not start: {line!r}")
        self.issuer = line.split()[1]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, *, drop_kids: frozenset[str] | set[str] = frozenset()) -> None:
        """Stop, remove ``drop_kids`` from its keys, and start again on the same port."""
        self.stop()
        keys = json.loads(self.keys_file.read_text())
        self.keys_file.write_text(json.dumps([k for k in keys if k["kid"] not in drop_kids]))
        deadline = time.monotonic() + 10
        while True:
            try:
                self.start()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def token(self, claims: dict[str, Any], **options: Any) -> str:
        """A token the provider signs: ``claims`` on top of its own iss, iat, nbf, exp."""
        body = {"claims": claims, **options}
        response = httpx.post(
            f"{self.issuer}/test/token", json=body, timeout=10, verify=self.tls.context()
        )
        response.raise_for_status()
        return str(response.json()["token"])

    def rotate(self, alg: str = "RS256", count: int = 1) -> str:
        """New keys, added to the JWKS (the old ones stay until a restart drops them);
        the kid of the last."""
        response = httpx.post(
            f"{self.issuer}/test/rotate",
            json={"alg": alg, "count": count},
            timeout=60,
            verify=self.tls.context(),
        )
        response.raise_for_status()
        return str(response.json()["kid"])

    def kids(self) -> list[str]:
        jwks_uri = self.discovery()["jwks_uri"]
        jwks = httpx.get(jwks_uri, timeout=10, verify=self.tls.context()).json()
        return [key["kid"] for key in jwks["keys"]]

    def jwks(self) -> dict[str, Any]:
        response = httpx.get(self.discovery()["jwks_uri"], timeout=10, verify=self.tls.context())
        return dict(response.json())

    def discovery(self) -> dict[str, Any]:
        response = httpx.get(
            f"{self.issuer}/.well-known/openid-configuration",
            timeout=10,
            verify=self.tls.context(),
        )
        response.raise_for_status()
        return dict(response.json())


@pytest.fixture(scope="session")
def oidc_tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("oidc-tls"))


@pytest.fixture
def oidc_provider(tmp_path: Path, oidc_tls: Tls) -> Iterator[OidcProvider]:
    """A provider of this test's own (its keys may be rotated, it may be stopped)."""
    _install()
    provider = OidcProvider(tmp_path, oidc_tls)
    try:
        yield provider
    finally:
        provider.stop()


# The groups claim a provider puts in a token, per role (the entries map them back).
GROUP_OF = {role: f"samverkan-{role.value}" for role in Role}
LOA3 = "http://id.elegnamnden.se/loa/1.0/loa3"
MUNICIPALITY_NUMBER = "2120000142"  # tests.factories.make_agency's default


def provider_entry(
    provider_id: str, issuer: str, audience: str, agency_kind: str, **overrides: Any
) -> dict[str, Any]:
    """An identity_providers.yaml entry mapping ``groups`` to every role."""
    entry: dict[str, Any] = {
        "id": provider_id,
        "name": provider_id,
        "issuer": issuer,
        "agency": MUNICIPALITY_NUMBER,
        "agency_kind": agency_kind,
        "audience": audience,
        "roles": [{"claim": "groups", "value": GROUP_OF[r], "role": r.value} for r in Role],
        "allow_admin": True,
        "acr_values": [LOA3],
    }
    entry.update(overrides)
    return entry


def write_providers(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"providers": entries}), encoding="utf-8")
    return path


@dataclass
class AgencyProviders:
    """The municipality's provider (social services and school) and the Police's."""

    municipality: OidcProvider
    police: OidcProvider
    file: Path
    ca_file: Path

    def entries(self) -> dict[str, dict[str, Any]]:
        """The entry for each agency kind of the shared world."""
        muni, police = self.municipality.issuer, self.police.issuer
        return {
            "socialtjanst": provider_entry("kommun-soc", muni, "samverkan-soc", "socialtjanst"),
            "skola": provider_entry("kommun-skola", muni, "samverkan-skola", "skola"),
            "polis": provider_entry("polisen", police, "samverkan-pol", "polis"),
        }

    def provider_of(self, entry: dict[str, Any]) -> OidcProvider:
        return self.municipality if entry["issuer"] == self.municipality.issuer else self.police

    def link(self, user: User, agency_kind: str) -> None:
        """Link ``user`` (of an agency of ``agency_kind``) to its agency's provider, as an
        administrator does."""
        entry = self.entries().get(agency_kind)
        if entry is None:
            return
        user.identity_provider = entry["id"]
        user.identity_issuer = entry["issuer"]
        user.identity_subject = f"sub-{user.id}"


@pytest.fixture(scope="session")
def agency_providers(
    tmp_path_factory: pytest.TempPathFactory, oidc_tls: Tls
) -> Iterator[AgencyProviders]:
    _install()
    directory = tmp_path_factory.mktemp("agency-providers")
    municipality = OidcProvider(directory, oidc_tls)
    police = OidcProvider(directory, oidc_tls)
    providers = AgencyProviders(
        municipality, police, directory / "providers.yaml", oidc_tls.ca_file
    )
    write_providers(providers.file, list(providers.entries().values()))
    try:
        yield providers
    finally:
        municipality.stop()
        police.stop()


@pytest.fixture(params=["password", "oidc"])
def sign_in(request: pytest.FixtureRequest) -> str:
    """How the shared world's users sign in: local accounts, or their agency's provider."""
    return str(request.param)


def signs_in_through_providers(request: pytest.FixtureRequest) -> AgencyProviders | None:
    """The providers, when this test runs its ``oidc`` variant."""
    if "sign_in" not in request.fixturenames or request.getfixturevalue("sign_in") != "oidc":
        return None
    providers: AgencyProviders = request.getfixturevalue("agency_providers")
    return providers


class ProviderTokens:
    """Mints each linked user's access token at their agency's provider (cached per user):
    the groups of the user's roles, the display name, a strong authentication level."""

    def __init__(self, providers: AgencyProviders) -> None:
        self.providers = providers
        self.entries = {e["id"]: e for e in providers.entries().values()}
        self._tokens: dict[Any, str] = {}

    def token_for(self, user: User) -> str | None:
        entry = self.entries.get(user.identity_provider or "")
        if entry is None:
            return None
        key = (user.id, user.roles)
        if key not in self._tokens:
            self._tokens[key] = self.providers.provider_of(entry).token(
                {
                    "sub": user.identity_subject,
                    "aud": entry["audience"],
                    "groups": sorted(GROUP_OF[Role(r)] for r in user.roles.split(",") if r),
                    "name": user.display_name,
                    "acr": LOA3,
                },
                expires_in=3600,
            )
        return self._tokens[key]


def provider_tokens_of(app: FastAPI) -> ProviderTokens | None:
    tokens: ProviderTokens | None = getattr(app.state, "test_provider_tokens", None)
    return tokens
