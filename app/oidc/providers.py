"""The identity providers: ``policies/identity_providers.yaml``, validated at start-up.

Each agency brings its own provider (the municipality's, the Police's, Kriminalvården's).
A provider speaks for one agency, names the audience its tokens must carry, maps claims to
roles (``admin`` only where the entry says so), and says whether users are pre-registered
by an administrator (the default) or provisioned at their first sign-in. A broken file
stops the app, as a broken policy file does.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from stdnum.se import orgnr

from app.agencies.models import AgencyKind
from app.config import Environment, Settings
from app.users.models import Role

FILE_NAME = "identity_providers.yaml"


class ProviderFileError(RuntimeError):
    """The providers file does not parse or validate: the app must not start."""


class Provisioning(StrEnum):
    PRE_REGISTERED = "pre_registered"
    ON_FIRST_SIGN_IN = "on_first_sign_in"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleMapping(_Strict):
    """A claim holding ``value`` (or a list containing it) gives ``role``."""

    claim: Annotated[str, Field(min_length=1, max_length=100)]
    value: Annotated[str, Field(min_length=1, max_length=200)]
    role: Role


class Provider(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    issuer: Annotated[str, Field(min_length=8, max_length=500)]
    agency: Annotated[str, Field(description="The organisationsnummer of its agency.")]
    # A municipality is one organisation with several agencies (social services, school,
    # leisure): the kind says which of them this provider speaks for.
    agency_kind: AgencyKind | None = None
    audience: Annotated[str, Field(min_length=1, max_length=500)]
    roles: Annotated[list[RoleMapping], Field(min_length=1)]
    display_name_claim: str = "name"
    acr_values: list[str] = Field(default_factory=list)
    provisioning: Provisioning = Provisioning.PRE_REGISTERED
    allow_admin: bool = False

    @field_validator("agency")
    @classmethod
    def _organisation_number(cls, value: str) -> str:
        if not orgnr.is_valid(value):
            raise ValueError("not a valid organisationsnummer")
        return orgnr.compact(value)

    @model_validator(mode="after")
    def _admin_only_where_allowed(self) -> Provider:
        if not self.allow_admin and any(m.role is Role.ADMIN for m in self.roles):
            raise ValueError(
                f"provider {self.id}: maps a claim to admin without allow_admin: true "
                "(administrators are local accounts unless an entry says otherwise)"
            )
        return self

    @property
    def auth_method(self) -> str:
        """As audit records name sign-ins through this provider."""
        return f"oidc:{self.id}"

    def roles_from(self, claims: dict[str, object]) -> frozenset[Role]:
        """The roles the token's claims map to (a claim holding the value, or a list of
        values containing it)."""
        found: set[Role] = set()
        for mapping in self.roles:
            held = claims.get(mapping.claim)
            values = held if isinstance(held, list) else [held]
            if mapping.value in values:
                found.add(mapping.role)
        return frozenset(found)

    def mappable_roles(self) -> frozenset[Role]:
        return frozenset(m.role for m in self.roles)


class _ProviderFile(_Strict):
    providers: list[Provider] = Field(default_factory=list)


def providers_file(settings: Settings) -> Path:
    from app.policy.engine import policies_dir  # noqa: PLC0415 - the policy package's path

    return settings.identity_providers_file or policies_dir() / FILE_NAME


def load_providers(settings: Settings) -> dict[str, Provider]:
    """The providers by id; :class:`ProviderFileError` saying what is wrong otherwise."""
    path = providers_file(settings)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        parsed = _ProviderFile.model_validate(raw if raw is not None else {})
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ProviderFileError(f"{path}: {_short(exc)}") from exc
    seen_ids: set[str] = set()
    seen_targets: set[tuple[str, str]] = set()
    for provider in parsed.providers:
        # One issuer may serve several agencies (a municipality's tenant with one app
        # registration, so one audience, per agency): issuer and audience pick the entry.
        target = (provider.issuer, provider.audience)
        if provider.id in seen_ids or target in seen_targets:
            raise ProviderFileError(
                f"{path}: provider {provider.id} repeats an id, or an issuer with its audience"
            )
        seen_ids.add(provider.id)
        seen_targets.add(target)
        issuer = urlsplit(provider.issuer)
        schemes = {"https"} if settings.env is not Environment.DEV else {"https", "http"}
        if issuer.scheme not in schemes or not issuer.hostname:
            raise ProviderFileError(
                f"{path}: provider {provider.id}: the issuer must be an https URL"
            )
    return {p.id: p for p in parsed.providers}


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}"
    return re.sub(r"\s+", " ", str(exc))[:300]


def provider_for(
    providers: dict[str, Provider], issuer: object, audience: object
) -> Provider | None:
    """The configured provider a token names by its (not yet verified) ``iss`` and ``aud``;
    verification then requires exactly these."""
    audiences = audience if isinstance(audience, list) else [audience]
    for provider in providers.values():
        if provider.issuer == issuer and provider.audience in audiences:
            return provider
    return None
