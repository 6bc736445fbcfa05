"""Personnummer and samordningsnummer: the project's wrapper around python-stdnum."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import luhn

from app.individuals.numbers import InvalidPersonalNumber, NumberKind, parse_personal_number

TODAY = date(2026, 11, 23)


def _number(born: date, serial: int, *, coordination: bool = False) -> tuple[str, str]:
    """(ten-digit body with check digit, twelve-digit normalised form)."""
    day = born.day + (60 if coordination else 0)
    nine = f"{born:%y%m}{day:02d}{serial:03d}"
    ten = nine + luhn.calc_check_digit(nine)
    return ten, f"{born:%Y}{ten[2:]}"


@pytest.mark.parametrize(
    ("text", "value", "kind", "born"),
    [
        ("19900101-1239", "199001011239", NumberKind.PERSONNUMMER, date(1990, 1, 1)),
        ("900101-1239", "199001011239", NumberKind.PERSONNUMMER, date(1990, 1, 1)),
        ("9001011239", "199001011239", NumberKind.PERSONNUMMER, date(1990, 1, 1)),
        ("199001011239", "199001011239", NumberKind.PERSONNUMMER, date(1990, 1, 1)),
        (" 900101 1239 ", "199001011239", NumberKind.PERSONNUMMER, date(1990, 1, 1)),
        ("121212+1212", "191212121212", NumberKind.PERSONNUMMER, date(1912, 12, 12)),
        ("121212-1212", "201212121212", NumberKind.PERSONNUMMER, date(2012, 12, 12)),
        ("900161-1236", "199001611236", NumberKind.SAMORDNINGSNUMMER, date(1990, 1, 1)),
        ("19900161-1236", "199001611236", NumberKind.SAMORDNINGSNUMMER, date(1990, 1, 1)),
    ],
)
def test_valid_numbers_are_normalised(text: str, value: str, kind: NumberKind, born: date) -> None:
    number = parse_personal_number(text, today=TODAY)
    assert (number.value, number.kind, number.birth_date) == (value, kind, born)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("900101-1238", "check digit"),
        ("19900230-1234", "check digit|date"),
        ("abc", "use YYMMDD"),
        ("19900101+1239", "takes no"),
        ("9001011", "use YYMMDD"),
        ("20301231-0000", "check digit|future"),
    ],
)
def test_invalid_numbers_are_refused(text: str, reason: str) -> None:
    with pytest.raises(InvalidPersonalNumber, match=reason):
        parse_personal_number(text, today=TODAY)


def test_a_future_birth_date_is_refused() -> None:
    _, twelve = _number(date(2027, 1, 5), 123)
    with pytest.raises(InvalidPersonalNumber, match="future"):
        parse_personal_number(twelve, today=TODAY)


def test_an_impossible_date_with_a_valid_check_digit_is_refused() -> None:
    nine = "900230123"
    with pytest.raises(InvalidPersonalNumber, match="date"):
        parse_personal_number(nine + luhn.calc_check_digit(nine), today=TODAY)


@given(
    born=st.dates(min_value=date(1927, 1, 1), max_value=TODAY),
    serial=st.integers(min_value=0, max_value=999),
    coordination=st.booleans(),
    form=st.sampled_from(["ten", "dash", "twelve", "twelve-dash"]),
)
def test_every_valid_number_is_accepted_in_every_form(
    born: date, serial: int, coordination: bool, form: str
) -> None:
    ten, twelve = _number(born, serial, coordination=coordination)
    text = {
        "ten": ten,
        "dash": f"{ten[:6]}-{ten[6:]}",
        "twelve": twelve,
        "twelve-dash": f"{twelve[:8]}-{twelve[8:]}",
    }[form]
    if form in {"ten", "dash"} and TODAY.year - born.year >= 100:
        text = f"{ten[:6]}+{ten[6:]}"
    number = parse_personal_number(text, today=TODAY)
    assert number.value == twelve
    assert number.birth_date == born
    expected = NumberKind.SAMORDNINGSNUMMER if coordination else NumberKind.PERSONNUMMER
    assert number.kind is expected


@given(
    born=st.dates(min_value=date(1930, 1, 1), max_value=TODAY),
    serial=st.integers(min_value=0, max_value=999),
    wrong=st.integers(min_value=1, max_value=9),
)
def test_any_other_check_digit_is_refused(born: date, serial: int, wrong: int) -> None:
    _, twelve = _number(born, serial)
    altered = twelve[:-1] + str((int(twelve[-1]) + wrong) % 10)
    with pytest.raises(InvalidPersonalNumber):
        parse_personal_number(altered, today=TODAY)
