"""Small-count suppression of a published table, so that no count under 5 about identifiable
young people can be read or worked out.

A table is cells (row, measure) → count, and *lines*: a total and the cells it is the sum
of (each measure's groups and its total row; the cases closed and their reasons). Primary
suppression hides every count from 1 to 4 (0 is shown). Secondary suppression then hides
more until, in every line, no hidden cell can be worked out:

- a line never has exactly one hidden cell (it would be the total minus the rest);
- where a line's total is shown, the hidden cells' sum is never the smallest or largest
  they could have if each were 1-4 (the sum n or 4n would give every one of them away);
- no hidden cell is determined by the lines together (linear algebra over all of them:
  a hidden cell is recoverable exactly when its unit vector lies in the row space of the
  equations restricted to the hidden cells).

Each extra cell hidden is the smallest non-zero shown one of the lines at fault (zeros stay
shown), or of any line where those show none: a cell can be worked out along a chain of
lines (two rows and a column), and hiding any count of the chain breaks it. Pure functions:
tests/test_suppression.py tries to recover hidden cells from every published total of
random tables.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

SMALL = range(1, 5)


@dataclass(frozen=True)
class Line:
    """``total`` is the sum of ``parts``."""

    total: Hashable
    parts: tuple[Hashable, ...]

    @property
    def cells(self) -> tuple[Hashable, ...]:
        return (self.total, *self.parts)


def _bounds_give_away(line: Line, values: Mapping[Hashable, int], hidden: set[Hashable]) -> bool:
    if line.total in hidden:
        return False
    shown = sum(values[p] for p in line.parts if p not in hidden)
    count = sum(1 for p in line.parts if p in hidden)
    rest = values[line.total] - shown
    return count > 0 and rest in {count, 4 * count}


def determined(
    lines: Sequence[Line], values: Mapping[Hashable, int], hidden: set[Hashable]
) -> set[Hashable]:
    """The hidden cells the lines determine, with every shown value known."""
    order = sorted(hidden, key=repr)
    index = {cell: i for i, cell in enumerate(order)}
    rows: list[list[Fraction]] = []
    for line in lines:
        row = [Fraction(0)] * len(order)
        for part in line.parts:
            if part in hidden:
                row[index[part]] += 1
        if line.total in hidden:
            row[index[line.total]] -= 1
        if any(row):
            rows.append(row)
    # reduced row echelon form
    pivot_row = 0
    pivots: list[int] = []
    for column in range(len(order)):
        found = next((r for r in range(pivot_row, len(rows)) if rows[r][column] != 0), None)
        if found is None:
            continue
        rows[pivot_row], rows[found] = rows[found], rows[pivot_row]
        lead = rows[pivot_row][column]
        rows[pivot_row] = [v / lead for v in rows[pivot_row]]
        for r in range(len(rows)):
            if r != pivot_row and rows[r][column] != 0:
                factor = rows[r][column]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[pivot_row], strict=True)]
        pivots.append(column)
        pivot_row += 1
        if pivot_row == len(rows):
            break
    return {
        order[column] for r, column in enumerate(pivots) if sum(1 for v in rows[r] if v != 0) == 1
    }


def suppress(values: Mapping[Hashable, int], lines: Sequence[Line]) -> set[Hashable]:
    """The cells to hide: every count 1-4, and as few more as keep them from being worked
    out (see the module's docstring)."""
    hidden = {cell for cell, value in values.items() if value in SMALL}
    while True:
        at_fault = [
            line
            for line in lines
            if sum(1 for c in line.cells if c in hidden) == 1
            or _bounds_give_away(line, values, hidden)
        ]
        if not at_fault:
            known = determined(lines, values, hidden)
            at_fault = [line for line in lines if known & set(line.cells)]
        if not at_fault:
            return hidden
        # the smallest shown count of a line at fault; where those lines show none (a cell
        # worked out along a chain of lines), of any line: each one hidden cuts a chain
        candidates = _shown(at_fault, values, hidden) or _shown(lines, values, hidden)
        if not candidates:
            # every count but the zeros is hidden: with the shown values all zero, no
            # hidden count (none is zero) can be determined any more
            return hidden
        hidden.add(min(candidates, key=lambda c: (values[c], repr(c))))


def _shown(
    lines: Sequence[Line], values: Mapping[Hashable, int], hidden: set[Hashable]
) -> list[Hashable]:
    return [c for line in lines for c in line.cells if c not in hidden and values[c] > 0]
