"""compose.yaml starts (issue 15, item 1): each service that runs Samverkan is given an
environment `Settings` accepts in production, every key file it names lies on a mounted
volume, and the file's own instructions make every one of those keys.

Docker cannot run on these machines: this test is what keeps compose honest. It makes the
keys the way the comment says (RSA 3072 and Ed25519, with `cryptography`), maps the mount
to a temporary directory, and builds `Settings` from the service's environment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from app.config import Settings

COMPOSE = Path(__file__).resolve().parent.parent / "compose.yaml"
SERVICES = ["migrate", "app", "worker"]


def _expand(value: str) -> str:
    """Compose's ${VAR:?message}, with a password as an operator would set one."""
    return re.sub(r"\$\{(\w+)(:\?[^}]*)?\}", "a-long-random-database-secret", value)


def _make_keys(directory: Path, text: str) -> set[str]:
    """The keys the comment's commands make, made here; their file names."""
    directory.mkdir()
    made = set(re.findall(r"-out keys/([\w.-]+)", text))
    for name in made:
        if "ed25519" in text.split(f"keys/{name}", maxsplit=1)[0].rsplit("\n", 1)[-1]:
            key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey = (
                ed25519.Ed25519PrivateKey.generate()
            )
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        if "public" in name:
            data = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        else:
            data = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        (directory / name).write_bytes(data)
    return made


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_gets_settings_production_accepts(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    spec = yaml.safe_load(text)
    keys = tmp_path / "keys"
    made = _make_keys(keys, text)
    given = spec["services"][service]
    mounts = {}
    for volume in given.get("volumes", []):
        source, target, *_ = volume.split(":")
        mounts[target.rstrip("/")] = source
    environment = {k: _expand(str(v)) for k, v in given["environment"].items()}
    assert environment["SAMVERKAN_ENV"] == "prod"
    for name, value in environment.items():
        here = value
        if name.endswith("_FILE"):
            folder, _, file_name = value.rpartition("/")
            assert mounts.get(folder) == "./keys", f"{name} is not on the keys volume"
            assert file_name in made, f"the comment makes no {file_name} for {name}"
            here = str(keys / file_name)
        monkeypatch.setenv(name, here)
    settings = Settings()  # raises if production would refuse to start
    assert settings.audit_signing_key_file is not None
    assert settings.audit_signing_key_file.is_file()
