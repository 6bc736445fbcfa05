"""Swedish personal identity numbers: personnummer and samordningsnummer.

A thin wrapper around python-stdnum. stdnum validates a personnummer but rejects a
samordningsnummer (the day of birth plus 60), which agencies meet daily; this module
accepts both, checks the Luhn digit and the date, infers the century of a ten-digit
number from its separator (``-`` under 100 years old, ``+`` from 100), and normalises to
twelve digits, ``YYYYMMDDNNNN``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from stdnum import luhn
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.se import personnummer

_FORM = re.compile(
    r"^(?P<century>\d{2})?(?P<yy>\d{2})(?P<mm>\d{2})(?P<dd>\d{2})(?P<sep>[-+]?)(?P<rest>\d{4})$"
)
COORDINATION_OFFSET = 60


class NumberKind(StrEnum):
    PERSONNUMMER = "personnummer"
    SAMORDNINGSNUMMER = "samordningsnummer"


@dataclass(frozen=True, slots=True)
class PersonalNumber:
    value: str  # twelve digits
    kind: NumberKind
    birth_date: date

    @property
    def formatted(self) -> str:
        return f"{self.value[:8]}-{self.value[8:]}"


class InvalidPersonalNumber(ValueError):
    pass


def _year(yy: int, month: int, day: int, separator: str, today: date) -> int:
    year = today.year - (today.year - yy) % 100
    try:
        if date(year, month, day) > today:
            year -= 100
    except ValueError as exc:
        raise InvalidPersonalNumber("not a valid date of birth") from exc
    return year - 100 if separator == "+" else year


def parse_personal_number(text: str, *, today: date) -> PersonalNumber:
    """Validate ``text`` and return it normalised; :class:`InvalidPersonalNumber` otherwise."""
    match = _FORM.match(text.strip().replace(" ", ""))
    if match is None:
        raise InvalidPersonalNumber("use YYMMDD-NNNN, YYMMDD+NNNN or YYYYMMDDNNNN")
    century, separator = match["century"], match["sep"]
    if century and separator == "+":
        raise InvalidPersonalNumber("a twelve-digit number takes no '+'")
    ten = match["yy"] + match["mm"] + match["dd"] + match["rest"]
    if not luhn.is_valid(ten):
        raise InvalidPersonalNumber("the check digit does not match")
    day, kind = int(match["dd"]), NumberKind.PERSONNUMMER
    if day > COORDINATION_OFFSET:
        day, kind = day - COORDINATION_OFFSET, NumberKind.SAMORDNINGSNUMMER
    month = int(match["mm"])
    if century:
        year = int(century + match["yy"])
    else:
        year = _year(int(match["yy"]), month, day, separator, today)
    try:
        born = date(year, month, day)
    except ValueError as exc:
        raise InvalidPersonalNumber("not a valid date of birth") from exc
    if born > today:
        raise InvalidPersonalNumber("the date of birth is in the future")
    value = f"{year:04d}{match['mm']}{match['dd']}{match['rest']}"
    if kind is NumberKind.PERSONNUMMER:
        try:  # the reference implementation must agree
            personnummer.validate(value)
        except StdnumError as exc:
            raise InvalidPersonalNumber("not a valid personnummer") from exc
    return PersonalNumber(value=value, kind=kind, birth_date=born)
