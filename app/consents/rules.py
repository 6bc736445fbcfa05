"""Consent rules as pure functions: status at a moment, and who must sign.

Kept free of the database so that every boundary (valid_from, valid_until, withdrawal,
an 18th birthday on the signing date) is tested directly.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from app.consents.models import ConsentStatus, SignatoryRole
from app.errors import ValidationFailed
from app.policy.reference import ConsentSettings


def as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive value (SQLite, or a client omitting the zone) is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def status_at(
    *,
    valid_from: datetime,
    valid_until: datetime,
    withdrawn_at: datetime | None,
    now: datetime,
    superseded_at: datetime | None = None,
) -> ConsentStatus:
    """``active`` means valid_from <= now < valid_until, not withdrawn and not superseded by
    now. A withdrawal beats everything; a supersession (from the successor's valid_from)
    beats the consent's own window, as a withdrawal does."""
    now = as_utc(now)
    if withdrawn_at is not None and as_utc(withdrawn_at) <= now:
        return ConsentStatus.WITHDRAWN
    if superseded_at is not None and as_utc(superseded_at) <= now:
        return ConsentStatus.SUPERSEDED
    if now < as_utc(valid_from):
        return ConsentStatus.PENDING
    if now >= as_utc(valid_until):
        return ConsentStatus.EXPIRED
    return ConsentStatus.ACTIVE


def age_on(birth: date, day: date) -> int:
    """Completed years on ``day``. Born 29 February: of age on 1 March in common years."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


@dataclass(frozen=True, slots=True)
class GuardianFact:
    id: uuid.UUID
    has_custody: bool


@dataclass(frozen=True, slots=True)
class Signature:
    role: SignatoryRole
    guardian_id: uuid.UUID | None
    signed_at: datetime


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed.for_field("body.signatories", message, "signatory_rule")


def check_signatories(
    *,
    birth_date: date,
    guardians: Sequence[GuardianFact],
    signatures: Sequence[Signature],
    settings: ConsentSettings,
    now: datetime,
) -> None:
    """Raise a 422 naming the rule unless the right people signed.

    Under ``age_of_consent`` on the signing date (the latest signature's date) the
    guardians with custody sign, all of them by default (``minor_signatories`` in
    policies/settings.yaml); from that age the individual signs.
    """
    if any(as_utc(s.signed_at) > as_utc(now) for s in signatures):
        raise _refuse("A signature cannot be dated in the future.")
    known = {g.id for g in guardians}
    custodial = {g.id for g in guardians if g.has_custody}
    for signature in signatures:
        if signature.role is SignatoryRole.GUARDIAN:
            if signature.guardian_id is None or signature.guardian_id not in known:
                raise _refuse(
                    "A guardian signatory must be a registered guardian of this individual."
                )
        elif signature.guardian_id is not None:
            raise _refuse("The individual's own signature takes no guardian_id.")
    signing_date = max(as_utc(s.signed_at) for s in signatures).date()
    if age_on(birth_date, signing_date) >= settings.age_of_consent:
        if not any(s.role is SignatoryRole.INDIVIDUAL for s in signatures):
            raise _refuse(
                f"From {settings.age_of_consent} on the signing date the individual signs."
            )
        return
    if not custodial:
        raise _refuse(
            "The individual is a minor on the signing date and no guardian with custody is "
            "registered: register the guardians first."
        )
    signed = {s.guardian_id for s in signatures if s.role is SignatoryRole.GUARDIAN}
    if settings.minor_signatories == "all_custodial_guardians" and not custodial <= signed:
        raise _refuse("Under age on the signing date: every guardian with custody must sign.")
    if settings.minor_signatories == "any_custodial_guardian" and not custodial & signed:
        raise _refuse("Under age on the signing date: a guardian with custody must sign.")
