"""Printable forms of an individual's access extract (loggutdrag): CSV and an HTML page in
Swedish that prints on A4. Every value is escaped; nothing is loaded from elsewhere."""

from __future__ import annotations

from html import escape
from zoneinfo import ZoneInfo

from app.audit.schemas import AccessLogRead
from app.audit.service import csv_line
from app.policy import get_engine

_LOCAL = ZoneInfo("Europe/Stockholm")
_BASIS_SV = {
    "own_agency": "egen myndighets uppgifter",
    "consent": "samtycke",
    "emergency_access": "nödåtkomst enligt lag",
    "case_participant": "deltar i ärendet",
    "auditor": "loggkontroll",
}
CSV_COLUMNS = (
    "tidpunkt",
    "myndighet",
    "användare",
    "vad",
    "utfall",
    "grund",
    "samtycke",
    "lagrum",
    "löpnummer",
)


def _legal_basis_sv(code: str | None) -> str:
    """A legal basis as the person reads it: its Swedish label (and its code)."""
    if not code:
        return ""
    basis = get_engine().reference.legal_bases.get(code)
    return f"{basis.label_sv} ({code})" if basis else code


def extract_csv(log: AccessLogRead) -> str:
    lines = [csv_line(CSV_COLUMNS)]
    for e in log.entries:
        lines.append(
            csv_line(
                [
                    e.at.astimezone(_LOCAL).isoformat(timespec="seconds"),
                    e.agency_name,
                    e.user_name,
                    e.what_sv,
                    "nekad" if e.decision == "deny" else "tillåten",
                    _BASIS_SV.get(e.basis or "", e.basis),
                    e.consent_id,
                    _legal_basis_sv(e.legal_basis),
                    e.seq,
                ]
            )
        )
    return "".join(lines)


def extract_html(log: AccessLogRead) -> str:
    rows = "\n".join(
        "<tr>"
        + "".join(
            f"<td>{escape(str(v))}</td>"
            for v in (
                e.at.astimezone(_LOCAL).strftime("%Y-%m-%d %H:%M"),
                e.agency_name or "",
                e.user_name or "",
                e.what_sv,
                "nekad" if e.decision == "deny" else "tillåten",
                _BASIS_SV.get(e.basis or "", e.basis or ""),
                _legal_basis_sv(e.legal_basis),
            )
        )
        + "</tr>"
        for e in log.entries
    )
    generated = log.generated_at.astimezone(_LOCAL).strftime("%Y-%m-%d %H:%M")
    return f"""<!doctype html>
<html lang="sv">
<head>
<meta charset="utf-8">
<title>Loggutdrag</title>
<style>
  body {{ font-family: sans-serif; font-size: 10pt; margin: 2em; }}
  table {{ border-collapse: collapse; width: 100%; }}
  th, td {{ border: 1px solid #999; padding: 3px 5px; text-align: left; vertical-align: top; }}
  th {{ background: #eee; }}
  @page {{ size: A4 landscape; margin: 15mm; }}
</style>
</head>
<body>
<h1>Loggutdrag: vem har tagit del av uppgifter om dig</h1>
<p>Utdraget visar varje gång en myndighet i samverkan läst, ändrat eller försökt ta del av
uppgifter om dig, och på vilken grund. Framtaget {escape(generated)}.
Referens: {escape(str(log.individual_id))}. Antal händelser: {len(log.entries)}.</p>
<table>
<thead><tr><th>Tidpunkt</th><th>Myndighet</th><th>Användare</th><th>Vad</th>
<th>Utfall</th><th>Grund</th><th>Lagrum</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""
