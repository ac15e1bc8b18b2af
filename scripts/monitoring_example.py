"""Write the docs' monitoring example from two `triage monitor --data` reports.

    python scripts/monitoring_example.py DRIFTED_REPORT_DIR UNDRIFTED_REPORT_DIR "how made"

Writes docs/operations/demo-monitoring.md and two of the drifted report's plots beside it.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "operations"
PLOTS = {
    "PSI by signal and month": "monitoring-drift.png",
    "Selection rate by month": "monitoring-selection.png",
}


def _plots(html: str) -> None:
    for alt, data in re.findall(r'alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html):
        if alt in PLOTS:
            (DOCS / "img" / PLOTS[alt]).write_bytes(base64.b64decode(data))


def _row(*cells: object) -> str:
    text = ("–" if c is None else str(c).replace("|", "\\|") for c in cells)
    return "| " + " | ".join(text) + " |"


def main(drifted: Path, undrifted: Path, how: str) -> None:
    loud = json.loads((drifted / "report.json").read_text(encoding="utf-8"))
    quiet = json.loads((undrifted / "report.json").read_text(encoding="utf-8"))
    (DOCS / "img").mkdir(exist_ok=True)
    _plots((drifted / "report.html").read_text(encoding="utf-8"))
    months = loud["months"]
    lines = [
        f"<!-- Generated: {how}. Regenerate rather than edit. -->",
        "",
        "# Example: an injected drift caught by monitoring",
        "",
        f"Two synthetic worlds from one seed, back-tested with one champion "
        f"({loud['meta']['model_version']}). In the second, relatives notice every maltreatment "
        "episode from 1 June 2026 (`--drift family_notice_probability=1.0 --drift-from "
        "2026-06-01`; the default is 0.01). Reference: "
        f"{loud['reference']['from'][:10]} to {loud['reference']['until'][:10]}; monitored: "
        f"{months[0]} to {months[-1]}.",
        "",
        f"- **Undrifted world: {len(quiet['alerts'])} alerts.**",
        f"- **Drifted world: {len(loud['alerts'])} alerts**, none before the drift's month:",
        "",
        _row("kind", "subject", "month", "value", "rule"),
        _row("---", "---", "---", "---", "---"),
        *[
            _row(a["kind"], a["subject"], a["month"], a["value"], a["threshold"])
            for a in loud["alerts"]
        ],
        "",
        "## PSI of the signals that moved (drifted world)",
        "",
        _row("signal", *months),
        _row("---", *["---"] * len(months)),
    ]
    for row in loud["signals"]:
        cells = [row["months"][m] for m in months]
        if any(c["level"] in ("alert", "warning") for c in cells):
            lines.append(_row(f"`{row['signal']}`", *[c["psi"] for c in cells]))
    lines += [
        "",
        "![PSI by signal and month, drifted world](img/monitoring-drift.png)",
        "",
        "![Share above the capacity threshold, drifted world](img/monitoring-selection.png)",
        "",
        "Relatives' referrals rise first (`referrer_relative_friend`), then the signals that "
        "count them over the past year; the model ranks those referrals higher, so more of each "
        "month's referrals pass the reference's capacity threshold. The undrifted world's "
        "largest PSI in any month is "
        f"{max((c['psi'] or 0) for r in quiet['signals'] for c in r['months'].values()):.2f}.",
        "",
    ]
    (DOCS / "demo-monitoring.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
