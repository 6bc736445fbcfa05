"""Small-count suppression, tried as an attacker would: from every published total of
random tables, work out hidden cells — exactly (the lines solved together) or by bounds
(each hidden count taken as 1-4). The property fails if any hidden cell can be."""

from __future__ import annotations

from collections.abc import Hashable

from hypothesis import given, settings
from hypothesis import strategies as st

from app.statistics.suppression import Line, determined, suppress

# mostly small counts, as a district's are
COUNT = st.one_of(st.integers(0, 6), st.integers(0, 40))


@st.composite
def tables(draw: st.DrawFn) -> tuple[dict[Hashable, int], list[Line]]:
    """Groups x measures with a total row; the first measure is the sum of the next ones
    in every row (cases closed and their reasons), as the statistics table has it."""
    groups = draw(st.integers(1, 5))
    reasons = draw(st.integers(2, 4))
    others = draw(st.integers(0, 3))
    measures = [
        "closed",
        *(f"reason{i}" for i in range(reasons)),
        *(f"m{i}" for i in range(others)),
    ]
    values: dict[Hashable, int] = {}
    for g in range(groups):
        for m in measures[1:]:
            values[(g, m)] = draw(COUNT)
        values[(g, "closed")] = sum(values[(g, f"reason{i}")] for i in range(reasons))
    for m in measures:
        values[("total", m)] = sum(values[(g, m)] for g in range(groups))
    lines = [Line(("total", m), tuple((g, m) for g in range(groups))) for m in measures]
    lines += [
        Line((row, "closed"), tuple((row, f"reason{i}") for i in range(reasons)))
        for row in [*range(groups), "total"]
    ]
    return values, lines


def _recover_by_bounds(
    values: dict[Hashable, int], lines: list[Line], hidden: set[Hashable]
) -> set[Hashable]:
    """What an attacker pins down by taking every hidden count to be 1-4."""
    pinned = set()
    for line in lines:
        if line.total in hidden:
            continue
        parts = [p for p in line.parts if p in hidden]
        if not parts:
            continue
        rest = values[line.total] - sum(values[p] for p in line.parts if p not in hidden)
        for part in parts:
            low = max(1, rest - 4 * (len(parts) - 1))
            high = min(4, rest - (len(parts) - 1))
            if low == high:
                pinned.add(part)
    return pinned


@settings(max_examples=1000, deadline=None)
@given(table=tables())
def test_no_hidden_cell_can_be_worked_out_from_the_published_totals(
    table: tuple[dict[Hashable, int], list[Line]],
) -> None:
    values, lines = table
    hidden = suppress(values, lines)
    assert {c for c, v in values.items() if 1 <= v <= 4} <= hidden  # every small count
    assert all(values[c] > 0 for c in hidden)  # 0 is shown as 0
    for line in lines:  # never one hidden cell alone in a line
        assert sum(1 for c in line.cells if c in hidden) != 1
    assert determined(lines, values, hidden) == set()
    assert _recover_by_bounds(values, lines, hidden) == set()


def test_a_cell_worked_out_along_a_chain_of_lines_is_protected() -> None:
    """Found by the property test: the total of reason 2 follows from rows 0 and 1 (each
    closed for reason 2 only) and the column of closed cases, whose total is shown."""
    rows, measures = [0, 1, 2, "total"], ["closed", "reason0", "reason1", "reason2", "reason3"]
    values: dict[Hashable, int] = {(r, m): 0 for r in rows for m in measures}
    values |= {
        (0, "reason2"): 2, (0, "closed"): 2, (1, "reason2"): 1, (1, "closed"): 1,
        (2, "reason1"): 1, (2, "reason3"): 4, (2, "closed"): 5, ("total", "closed"): 8,
        ("total", "reason1"): 1, ("total", "reason2"): 3, ("total", "reason3"): 4,
    }  # fmt: skip
    lines = [Line(("total", m), tuple((g, m) for g in rows[:3])) for m in measures]
    lines += [Line((r, "closed"), tuple((r, f"reason{i}") for i in range(4))) for r in rows]
    primary = {c for c, v in values.items() if 1 <= v <= 4}
    assert determined(lines, values, primary) == {("total", "reason2")}
    hidden = suppress(values, lines)
    assert determined(lines, values, hidden) == set()
    assert _recover_by_bounds(values, lines, hidden) == set()


def test_the_attacker_finds_what_primary_suppression_alone_leaves_open() -> None:
    """The test's attacker is not toothless: without secondary suppression it recovers."""
    values: dict[Hashable, int] = {(0, "m"): 3, (1, "m"): 12, ("total", "m"): 15}
    lines = [Line(("total", "m"), ((0, "m"), (1, "m")))]
    primary = {(0, "m")}
    assert determined(lines, values, primary) == {(0, "m")}
    assert suppress(values, lines) == {(0, "m"), (1, "m")}
    two_ones: dict[Hashable, int] = {(0, "m"): 1, (1, "m"): 1, (2, "m"): 9, ("total", "m"): 11}
    lines = [Line(("total", "m"), ((0, "m"), (1, "m"), (2, "m")))]
    assert _recover_by_bounds(two_ones, lines, {(0, "m"), (1, "m")}) == {(0, "m"), (1, "m")}
    assert _recover_by_bounds(two_ones, lines, suppress(two_ones, lines)) == set()
