"""Consent status at its boundaries, and the signatory rule, without a database."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from app.consents.models import ConsentStatus, SignatoryRole
from app.consents.rules import GuardianFact, Signature, age_on, check_signatories, status_at
from app.errors import ValidationFailed
from app.policy.reference import ConsentSettings

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FROM, UNTIL = T0, T0 + timedelta(days=90)
ALL = ConsentSettings(
    age_of_consent=18, minor_signatories="all_custodial_guardians", max_validity_days=365
)
ANY = ConsentSettings(
    age_of_consent=18, minor_signatories="any_custodial_guardian", max_validity_days=365
)


@pytest.mark.parametrize(
    ("now", "withdrawn_at", "expected"),
    [
        (FROM - timedelta(microseconds=1), None, ConsentStatus.PENDING),
        (FROM, None, ConsentStatus.ACTIVE),
        (UNTIL - timedelta(microseconds=1), None, ConsentStatus.ACTIVE),
        (UNTIL, None, ConsentStatus.EXPIRED),
        (FROM + timedelta(days=1), FROM + timedelta(days=1), ConsentStatus.WITHDRAWN),
        (FROM + timedelta(days=1), FROM + timedelta(days=2), ConsentStatus.ACTIVE),
        (FROM - timedelta(days=1), FROM - timedelta(days=2), ConsentStatus.WITHDRAWN),
        (UNTIL + timedelta(days=1), FROM + timedelta(days=1), ConsentStatus.WITHDRAWN),
    ],
    ids=[
        "just-before-from",
        "at-from",
        "just-before-until",
        "at-until",
        "withdrawn-this-instant",
        "withdrawal-dated-later",
        "withdrawn-before-start",
        "withdrawn-beats-expired",
    ],
)
def test_status_at_the_boundaries(
    now: datetime, withdrawn_at: datetime | None, expected: ConsentStatus
) -> None:
    assert (
        status_at(valid_from=FROM, valid_until=UNTIL, withdrawn_at=withdrawn_at, now=now)
        is expected
    )


def test_naive_times_are_utc() -> None:
    naive = FROM.replace(tzinfo=None)
    assert (
        status_at(valid_from=naive, valid_until=UNTIL, withdrawn_at=None, now=FROM)
        is ConsentStatus.ACTIVE
    )


MOTHER, FATHER, AUNT, STRANGER = (uuid.uuid4() for _ in range(4))
GUARDIANS = [
    GuardianFact(MOTHER, True),
    GuardianFact(FATHER, True),
    GuardianFact(AUNT, False),
]
SIGNED = datetime(2026, 5, 10, 9, 0, tzinfo=UTC)


def _guardian(guardian_id: uuid.UUID, at: datetime = SIGNED) -> Signature:
    return Signature(SignatoryRole.GUARDIAN, guardian_id, at)


def _self(at: datetime = SIGNED) -> Signature:
    return Signature(SignatoryRole.INDIVIDUAL, None, at)


def _check(
    birth: date,
    signatures: list[Signature],
    settings: ConsentSettings = ALL,
    guardians: list[GuardianFact] = GUARDIANS,
) -> None:
    check_signatories(
        birth_date=birth, guardians=guardians, signatures=signatures, settings=settings, now=T0
    )


MINOR = date(2010, 3, 3)
ADULT = date(2000, 3, 3)


def test_both_custodial_guardians_sign_for_a_minor() -> None:
    _check(MINOR, [_guardian(MOTHER), _guardian(FATHER)])


def test_one_of_two_custodial_guardians_is_not_enough() -> None:
    with pytest.raises(ValidationFailed, match="every guardian with custody"):
        _check(MINOR, [_guardian(MOTHER)])


def test_one_of_two_is_enough_when_the_local_rule_says_so() -> None:
    _check(MINOR, [_guardian(FATHER)], settings=ANY)


def test_a_guardian_without_custody_does_not_count() -> None:
    with pytest.raises(ValidationFailed):
        _check(MINOR, [_guardian(AUNT)], settings=ANY)


def test_a_guardian_of_another_individual_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="registered guardian of this individual"):
        _check(MINOR, [_guardian(MOTHER), _guardian(FATHER), _guardian(STRANGER)])


def test_a_minor_without_guardians_cannot_consent() -> None:
    with pytest.raises(ValidationFailed, match="no guardian with custody"):
        _check(MINOR, [_self()], guardians=[])


def test_a_minors_own_signature_is_not_enough() -> None:
    with pytest.raises(ValidationFailed):
        _check(MINOR, [_self()])


def test_an_adult_signs_for_themselves() -> None:
    _check(ADULT, [_self()])


def test_guardians_cannot_sign_for_an_adult() -> None:
    with pytest.raises(ValidationFailed, match="the individual signs"):
        _check(ADULT, [_guardian(MOTHER), _guardian(FATHER)])


def test_the_18th_birthday_on_the_signing_date_makes_an_adult() -> None:
    birthday = date(2008, 5, 10)
    _check(birthday, [_self()])
    with pytest.raises(ValidationFailed):
        _check(birthday, [_self(SIGNED - timedelta(days=1))])


def test_the_latest_signature_dates_the_consent() -> None:
    birthday = date(2008, 5, 10)
    _check(birthday, [_self(SIGNED), _guardian(MOTHER, SIGNED - timedelta(days=3))])


def test_a_signature_in_the_future_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="future"):
        _check(ADULT, [_self(T0 + timedelta(minutes=5))])


def test_an_individual_signature_takes_no_guardian_id() -> None:
    with pytest.raises(ValidationFailed):
        _check(ADULT, [Signature(SignatoryRole.INDIVIDUAL, MOTHER, SIGNED)])


@pytest.mark.parametrize(
    ("birth", "day", "age"),
    [
        (date(2008, 2, 29), date(2026, 2, 28), 17),
        (date(2008, 2, 29), date(2026, 3, 1), 18),
        (date(2008, 2, 29), date(2028, 2, 29), 20),
        (date(2008, 12, 31), date(2026, 12, 30), 17),
    ],
)
def test_age_on(birth: date, day: date, age: int) -> None:
    assert age_on(birth, day) == age
