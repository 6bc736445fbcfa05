"""The year table as it is kept today: CSV (``Vecka,<area>,…``, one row a week, empty where
no level was set) and an SVG heat map (weeks down, areas across, the level as colour, the
weeks with critical events marked, a legend). Plain SVG: a grid of rectangles needs no
plotting library, and the picture is served as is to a browser."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from xml.sax.saxutils import escape

from app.lagesbild.schemas import YearTable

HEADER = "Vecka"
# 1 normalt … 5 kritiskt: green to red, readable in grey scale too (lighter to darker)
COLOURS = {1: "#d9f0d3", 2: "#fee08b", 3: "#fdae61", 4: "#f46d43", 5: "#a50026"}
EMPTY = "#f4f4f4"


def to_csv(table: YearTable) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = [a.name for a in table.areas]
    writer.writerow([HEADER, *names])
    for row in table.weeks:
        writer.writerow(
            [row.week, *("" if row.levels[n] is None else row.levels[n] for n in names)]
        )
    return out.getvalue()


@dataclass(frozen=True)
class ParsedRow:
    week: int
    levels: dict[str, int | None]


class CsvProblem(ValueError):
    """What is wrong with an imported table, and where (``field``: ``line 7``, ``column
    Vällingby``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_csv(text: str, weeks_in_year: int) -> tuple[list[str], list[ParsedRow]]:
    """The area names of the header and the rows, all checked: a header that starts with
    ``Vecka`` and names each area once, weeks 1..``weeks_in_year`` each once, levels 1-5
    or empty, as many cells as the header. The first problem found is raised."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows or rows[0][0].strip() != HEADER or len(rows[0]) < 2:
        raise CsvProblem("line 1", f"The first line is the header: {HEADER},<area>,<area>,…")
    names = [cell.strip() for cell in rows[0][1:]]
    if any(not n for n in names):
        raise CsvProblem("line 1", "An area column has no name.")
    if len({n.casefold() for n in names}) != len(names):
        raise CsvProblem("line 1", "An area is named twice in the header.")
    parsed: list[ParsedRow] = []
    seen: set[int] = set()
    for number, cells in enumerate(rows[1:], start=2):
        where = f"line {number}"
        if len(cells) != len(names) + 1:
            raise CsvProblem(where, f"{len(names) + 1} cells expected, {len(cells)} found.")
        try:
            week = int(cells[0].strip())
        except ValueError:
            raise CsvProblem(where, "The week is not a number.") from None
        if not 1 <= week <= weeks_in_year:
            raise CsvProblem(where, f"The week must be 1-{weeks_in_year} in this year.")
        if week in seen:
            raise CsvProblem(where, f"Week {week} is given twice.")
        seen.add(week)
        levels: dict[str, int | None] = {}
        for name, cell in zip(names, cells[1:], strict=True):
            value = cell.strip()
            if not value:
                levels[name] = None
                continue
            if value not in {"1", "2", "3", "4", "5"}:
                raise CsvProblem(f"{where}, column {name}", "A level is 1-5 (or empty).")
            levels[name] = int(value)
        parsed.append(ParsedRow(week, levels))
    return names, parsed


def to_svg(table: YearTable, labels: dict[int, str], title: str) -> str:
    """The heat map: one row a week, one column an area; a critical week's cell carries a
    ring; a legend of the five levels beneath; the per-area mean and maximum at the foot."""
    cell_w, cell_h, left, top = 96, 14, 56, 64
    names = [a.name for a in table.areas]
    width = left + cell_w * max(len(names), 1) + 24
    grid_bottom = top + cell_h * len(table.weeks)
    height = grid_bottom + 120
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="20" font-size="15" font-weight="bold">{escape(title)}</text>',
        f'<text x="8" y="{top - 8}" font-weight="bold">Vecka</text>',
    ]
    for i, name in enumerate(names):
        x = left + i * cell_w + cell_w / 2
        out.append(
            f'<text x="{x}" y="{top - 8}" text-anchor="middle" font-weight="bold">'
            f"{escape(name)}</text>"
        )
    for j, row in enumerate(table.weeks):
        y = top + j * cell_h
        out.append(f'<text x="8" y="{y + cell_h - 3}">{row.week}</text>')
        for i, name in enumerate(names):
            level = row.levels[name]
            x = left + i * cell_w
            fill = COLOURS.get(level or 0, EMPTY)
            label = labels.get(level or 0, "ingen bedömning")
            out.append(
                f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="{fill}"><title>v. {row.week}, {escape(name)}: '
                f"{escape(label)}</title></rect>"
            )
            if level is not None:
                ink = "#ffffff" if level >= 4 else "#000000"
                out.append(
                    f'<text x="{x + cell_w / 2 - 1}" y="{y + cell_h - 4}" text-anchor="middle" '
                    f'fill="{ink}">{level}</text>'
                )
            if row.critical.get(name):
                events = ", ".join(row.critical[name])
                out.append(
                    f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 4}" height="{cell_h - 4}" '
                    f'fill="none" stroke="#000000" stroke-width="2">'
                    f"<title>{escape(events)}</title></rect>"
                )
    y = grid_bottom + 18
    for i, summary in enumerate(table.summary):
        x = left + i * cell_w + cell_w / 2
        mean = "-" if summary.mean is None else f"{summary.mean:.2f}".replace(".", ",")
        out.append(
            f'<text x="{x}" y="{y}" text-anchor="middle">medel {mean}, max {summary.max or "-"}'
            f"</text>"
        )
        out.append(
            f'<text x="{x}" y="{y + 14}" text-anchor="middle">'
            f"{summary.weeks_at_4_or_more} v. på nivå 4-5</text>"
        )
    out.append(f'<text x="8" y="{y}">År {table.year}</text>')
    y += 34
    for level, colour in COLOURS.items():
        x = left + (level - 1) * 128
        out.append(f'<rect x="{x}" y="{y}" width="14" height="14" fill="{colour}"/>')
        out.append(f'<text x="{x + 18}" y="{y + 11}">{level} {escape(labels[level])}</text>')
    y += 24
    out.append(
        f'<rect x="{left}" y="{y}" width="14" height="14" fill="none" stroke="#000000" '
        f'stroke-width="2"/><text x="{left + 18}" y="{y + 11}">kritisk händelse '
        f"(skjutning, sprängning, brand, annat våld)</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
