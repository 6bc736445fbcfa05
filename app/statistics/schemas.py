from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field


class GroupBy(StrEnum):
    PROGRAMME = "programme"
    AGENCY = "agency"
    SEX = "sex"
    AGE_BAND = "age_band"


Count = int | str  # a count, or "<5" where it is suppressed


class Statistics(BaseModel):
    """Counts by group over the period, each 0, a number of 5 or more, or ``"<5"``; the row
    ``total`` sums the groups. ``suppressed``: how many cells are hidden, the counts under 5
    and those hidden so that no count under 5 can be worked out from the totals."""

    from_: date = Field(alias="from")
    to: date
    group_by: GroupBy
    programme: str | None
    rows: list[dict[str, Count]]
    suppressed: int

    model_config = {"populate_by_name": True}
