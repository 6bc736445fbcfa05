"""Protected identity never leaves the registering agency: checked on every response of the
suite, not only in the tests written for it.

The ``client`` fixture installs :class:`ProtectedIdentityGuard` as an httpx response hook.
After every JSON or text response (exports, printable extracts included) it looks up the
individuals with protected identity in the test's database and the agency of the caller
(from the bearer token), and fails the request if the body holds the given name or the
personnummer (in any of its spellings) of a protected individual the caller's agency did
not register.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients.models import IntegrationClient
from app.individuals.models import Guardian, Individual
from app.security import InvalidToken, TokenService, TokenType, unverified_claims
from app.users.models import User


class ProtectedIdentityLeak(AssertionError):
    pass


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _spellings(number: str | None) -> set[str]:
    """A stored 12-digit number as it may be written: 201003032370, 20100303-2370,
    100303-2370, 1003032370."""
    if not number:
        return set()
    short = number[2:]
    return {number, f"{number[:8]}-{number[8:]}", f"{short[:6]}-{short[6:]}", short}


class ProtectedIdentityGuard:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.checked = 0

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        media = response.headers.get("content-type", "").split(";")[0]
        if media in {"application/json", "application/problem+json"}:
            values = list(_strings(response.json()))
        elif media.startswith("text/") or media == "application/x-ndjson":
            # exports and printable extracts: every word and number of the text
            values = [token for token in re.split(r"[^\w-]+", response.text) if token]
        else:
            return
        database = getattr(self.app.state, "database", None)
        if database is None:
            return
        async with database.sessionmaker() as session:
            secrets = await self._protected(session)
            if not secrets:
                return
            shown = {
                registering
                for registering, words in secrets.items()
                if any(
                    word == value or (len(word) >= 10 and word in value)
                    for word in words
                    for value in values
                )
            }
            if not shown:
                return
            caller = await self._caller_agency(session, response.request)
        self.checked += 1
        leaked = {agency for agency in shown if agency != caller}
        if leaked:
            request = response.request
            raise ProtectedIdentityLeak(
                f"{request.method} {request.url.path} showed a protected identity "
                f"registered by {sorted(map(str, leaked))} to agency {caller}"
            )

    async def _protected(self, session: AsyncSession) -> dict[uuid.UUID, set[str]]:
        """Registering agency -> the words that identify its protected individuals."""
        rows = await session.execute(
            select(Individual).where(Individual.protected_identity.is_(True))
        )
        words: dict[uuid.UUID, set[str]] = {}
        for individual in rows.scalars():
            found = words.setdefault(individual.registering_agency_id, set())
            found.add(individual.given_name)
            found |= _spellings(individual.personal_number)
            guardians = await session.execute(
                select(Guardian.personal_number).where(Guardian.individual_id == individual.id)
            )
            for number in guardians.scalars():
                found |= _spellings(number)
        return words

    @staticmethod
    async def _provider_user_agency(session: AsyncSession, token: str) -> uuid.UUID | None:
        """A token of an identity provider (tests/oidc_provider.py): the account linked to
        its issuer and subject. The guard trusts the test's own token unverified."""
        claims = unverified_claims(token, 65536) or {}
        found = await session.execute(
            select(User.agency_id).where(
                User.identity_issuer == claims.get("iss"),
                User.identity_subject == claims.get("sub"),
            )
        )
        return found.scalar_one_or_none()

    async def _caller_agency(
        self, session: AsyncSession, request: httpx.Request
    ) -> uuid.UUID | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        tokens: TokenService = self.app.state.tokens
        try:
            subject = tokens.decode(token, expected_type=TokenType.ACCESS).subject
        except InvalidToken:
            return await self._provider_user_agency(session, token)
        kind, _, raw_id = subject.partition(":")
        model = User if kind == "user" else IntegrationClient
        try:
            actor = await session.get(model, uuid.UUID(raw_id))
        except ValueError:
            return None
        return actor.agency_id if actor is not None else None
