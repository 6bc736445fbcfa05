"""A real OpenID Connect provider process for the tests (issue 17): oauth2-mock-server from
npm, run by the machine's Node.js (tests/oidc/provider.js). It serves discovery and JWKS
and signs tokens with its own keys; a test asks it for a token with the claims it needs,
rotates its key, or restarts it without an old key (the key leaves the JWKS).

Installed on first use into tests/oidc/node_modules (`npm install`, pinned version). Without
Node.js or npm the tests that need it are skipped, except in CI, where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).resolve().parent / "oidc"


def _install() -> None:
    if (HERE / "node_modules" / "oauth2-mock-server").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Node.js and npm are needed for the OpenID Connect provider tests")
        pytest.skip("Node.js and npm are not installed")
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


class OidcProvider:
    """One provider process; :meth:`restart` keeps its port (and so its issuer)."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.keys_file = directory / "provider-keys.json"
        self.process: subprocess.Popen[str] | None = None
        self.issuer = ""
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["node", str(HERE / "provider.js"), str(self.port), str(self.keys_file)],
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
        response = httpx.post(f"{self.issuer}/test/token", json=body, timeout=10)
        response.raise_for_status()
        return str(response.json()["token"])

    def rotate(self) -> str:
        """A new key, added to the JWKS (the old ones stay until a restart drops them)."""
        response = httpx.post(f"{self.issuer}/test/rotate", timeout=10)
        response.raise_for_status()
        return str(response.json()["kid"])

    def kids(self) -> list[str]:
        jwks_uri = self.discovery()["jwks_uri"]
        return [key["kid"] for key in httpx.get(jwks_uri, timeout=10).json()["keys"]]

    def discovery(self) -> dict[str, Any]:
        response = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10)
        response.raise_for_status()
        return dict(response.json())


@pytest.fixture
def oidc_provider(tmp_path: Path) -> Iterator[OidcProvider]:
    _install()
    provider = OidcProvider(tmp_path)
    try:
        yield provider
    finally:
        provider.stop()
