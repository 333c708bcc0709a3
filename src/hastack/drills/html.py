"""Self-contained HTML page for one failover-drill report (`DrillReport.to_dict()`).

The page has no external CSS, JS or fonts: it is opened from disk, attached to tickets or
archived, so it must render offline. Styling is one inline <style>, the chart one inline <svg>.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

WIDTH, HEIGHT = 900, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 44, 28
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

# Only the events that move the outage forward get a marker; the rest would clutter the chart.
MARKER_COLORS = {
    "heal": "#2a9d8f",
    "leader": "#7b2cbf",
    "fencer": "#e76f51",
    "recovered": "#1d7be0",
    "healthy": "#2b9348",
    "alert": "#d00000",
}
# Candidate tick steps in seconds; the first giving at most ~10 ticks wins.
TICK_STEPS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:960px}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:.9em}
th{background:#f2f2f2}
.badge{padding:2px 10px;border-radius:4px;color:#fff;font-size:.8em;vertical-align:middle}
.pass{background:#2b9348}.fail{background:#c1121f}.ok{color:#2b9348}.bad{color:#c1121f}
svg text{font-size:11px;font-family:system-ui,sans-serif}
"""


def _e(value: Any) -> str:
    """Escape anything that came from the report; it may hold node names or error text."""
    return escape(str(value))


def _secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def _yes_no(flag: bool, good_when: bool) -> str:
    cls = "ok" if flag == good_when else "bad"
    return f'<span class="{cls}">{"yes" if flag else "no"}</span>'


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Cells are already HTML (escaped by the caller); header strings are ours."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary(report: dict[str, Any]) -> str:
    old, new = report.get("old_primary", "?"), report.get("new_primary")
    rows = [
        ["Write gap", _secs(report.get("write_gap_s", 0.0))],
        ["RTO", _secs(report.get("rto_s"))],
        ["Lost acked writes", _e(report.get("rpo_lost_acked_writes", 0))],
        ["Split brain", _yes_no(bool(report.get("split_brain")), good_when=False)],
        ["Acked writes", _e(report.get("acked_writes", 0))],
        ["Errors", _e(report.get("errors", 0))],
        ["Primary", f"{_e(old)} &rarr; {_e(new if new is not None else 'none')}"],
        ["Fencing", "on" if report.get("fencing") else "off"],
    ]
    rows += [[_e(k), _secs(v)] for k, v in (report.get("durations") or {}).items()]
    return _table(["Metric", "Value"], rows)


def _failures(report: dict[str, Any]) -> str:
    reasons = report.get("failure_reasons") or []
    if not reasons:
        return ""
    items = "".join(f"<li>{_e(r)}</li>" for r in reasons)
    return f'<h2>Failure reasons</h2><ul class="bad">{items}</ul>'


def _writers(report: dict[str, Any]) -> str:
    rows = [
        [
            _e(name),
            _e(w.get("acks", 0)),
            _e(w.get("errors", 0)),
            _secs(w.get("write_gap_s", 0.0)),
            _secs(w.get("rto_s")),
            "<br>".join(f"{_e(n)} x {_e(m)}" for m, n in (w.get("error_kinds") or {}).items()),
        ]
        for name, w in (report.get("writers") or {}).items()
    ]
    headers = ["Writer", "Acks", "Errors", "Write gap", "RTO", "What the client saw"]
    return "<h2>Writers</h2>" + _table(headers, rows)


def _expectations(report: dict[str, Any]) -> str:
    rows = [
        [_e(x.get("what", "")), _yes_no(bool(x.get("ok")), good_when=True)]
        for x in report.get("expectations") or []
    ]
    return "<h2>Expectations</h2>" + _table(["Expectation", "Met"], rows)


def _checker(report: dict[str, Any]) -> str:
    checker = report.get("checker") or {}
    flags = [
        f"invariant ok: {_yes_no(bool(checker.get('invariant_ok', True)), good_when=True)}",
        f"converged: {_yes_no(bool(checker.get('converged', True)), good_when=True)}",
        f"lost acked writes: {len(checker.get('lost_acked_writes') or [])}",
        f"duplicates: {len(checker.get('duplicates') or [])}",
        f"dual-primary samples: {_e(checker.get('dual_primary_samples', 0))}",
    ]
    problems = checker.get("problems") or []
    items = "".join(f"<li>{_e(p)}</li>" for p in problems) or "<li>none</li>"
    return f"<h2>Checker</h2><p>{' &middot; '.join(flags)}</p><ul>{items}</ul>"


def _timeline(report: dict[str, Any]) -> str:
    rows = [
        [
            f"{float(ev.get('t', 0.0)):.2f}",
            _e(ev.get("kind", "")),
            _e(ev.get("node") or ""),
            _e(ev.get("text", "")),
        ]
        for ev in report.get("timeline") or []
    ]
    return "<h2>Timeline</h2>" + _table(["t (s)", "Kind", "Node", "Text"], rows)


def _domain(series: dict[str, Any], markers: list[dict[str, Any]]) -> tuple[float, float]:
    """Seconds shown on the x axis: the series, the fault (t=0) and every marker."""
    points = [0.0] + [float(m.get("t", 0.0)) for m in markers]
    bucket, n = float(series.get("bucket_s") or 0.0), len(series.get("acks") or [])
    if bucket > 0 and n:
        start = float(series.get("start_s", 0.0))
        points += [start, start + n * bucket]
    lo, hi = min(points), max(points)
    return (lo - 1.0, hi + 1.0) if hi - lo < 1e-9 else (lo, hi)


def _ticks(lo: float, hi: float) -> list[float]:
    # Past the table (hours-long drills) any step giving ten ticks will do.
    step = next((s for s in TICK_STEPS if (hi - lo) / s <= 10), (hi - lo) / 10)
    first = math.ceil(lo / step - 1e-9)
    return [round(i * step, 6) for i in range(first, math.floor(hi / step + 1e-9) + 1)]


class _XScale:
    """Seconds -> pixels; keeps the domain so bar widths can be derived from it."""

    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi

    def __call__(self, t: float) -> float:
        return LEFT + PLOT_W * (t - self.lo) / (self.hi - self.lo)


def _bars(series: dict[str, Any], x: _XScale, y_max: float) -> list[str]:
    """One rect per non-empty bucket: acks in blue, errors as red ticks along the bottom."""
    bucket = float(series.get("bucket_s") or 0.0)
    if bucket <= 0:
        return []
    start, out = float(series.get("start_s", 0.0)), []
    width = max(PLOT_W * bucket / (x.hi - x.lo) - 0.5, 0.5)
    for cls, values in (("ack", series.get("acks") or []), ("err", series.get("errors") or [])):
        for i, count in enumerate(values):
            if count <= 0:
                continue
            h = PLOT_H * (count / bucket) / y_max if cls == "ack" else 6.0
            out.append(
                f'<rect class="{cls}" x="{x(start + i * bucket):.1f}" y="{TOP + PLOT_H - h:.1f}" '
                f'width="{width:.1f}" height="{h:.1f}"><title>{_e(count)}</title></rect>'
            )
    return out


def _marker(x: float, color: str, label: str, row: int) -> str:
    # Labels sit on three staggered rows above the plot so neighbouring markers stay readable;
    # near the right edge a label goes left of its line so it is not cut off.
    ty, right = 12 + row * 11, x > WIDTH - 90
    tx, anchor = (x - 3, "end") if right else (x + 3, "start")
    return (
        f'<line x1="{x:.1f}" y1="{ty + 2}" x2="{x:.1f}" y2="{TOP + PLOT_H}" stroke="{color}" '
        f'stroke-dasharray="4 3"/><text x="{tx:.1f}" y="{ty}" fill="{color}" '
        f'text-anchor="{anchor}">{label}</text>'
    )


def _chart(report: dict[str, Any]) -> str:
    series = report.get("series") or {}
    timeline = report.get("timeline") or []
    markers = [ev for ev in timeline if ev.get("kind") in MARKER_COLORS]
    x = _XScale(*_domain(series, markers))
    bucket = float(series.get("bucket_s") or 0.0)
    rates = [c / bucket for c in series.get("acks") or []] if bucket > 0 else []
    y_max = max([1.0, *rates])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="acknowledged writes per second">',
        "<style>.ack{fill:#4a90d9}.err{fill:#c1121f}</style>",
        f'<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="#fafafa" '
        'stroke="#ccc"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{y_max:.0f}/s</text>',
        f'<text x="{LEFT - 4}" y="{TOP + PLOT_H}" text-anchor="end">0</text>',
    ]
    for t in _ticks(x.lo, x.hi):
        px = x(t)
        parts.append(
            f'<line x1="{px:.1f}" y1="{TOP + PLOT_H}" x2="{px:.1f}" y2="{TOP + PLOT_H + 4}" '
            f'stroke="#666"/><text x="{px:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{t:g}s</text>'
        )
    parts += _bars(series, x, y_max)
    parts.append(_marker(x(0.0), "#c1121f", "fault", 0))
    for i, ev in enumerate(markers):
        kind = str(ev.get("kind"))
        label = _e(f"{kind} {ev.get('node') or ''}".strip()[:24])
        parts.append(_marker(x(float(ev.get("t", 0.0))), MARKER_COLORS[kind], label, (i + 1) % 3))
    if not rates:
        parts.append(
            f'<text x="{LEFT + PLOT_W / 2}" y="{TOP + PLOT_H / 2}" text-anchor="middle">'
            "no write series recorded</text>"
        )
    parts.append("</svg>")
    return "<h2>Acknowledged writes per second</h2>" + "".join(parts)


def render_html(report: dict[str, Any]) -> str:
    """The whole page for one drill report; pure, so it is cheap to test and to re-render."""
    scenario = _e(report.get("scenario", "?"))
    passed = bool(report.get("passed"))
    word = "PASSED" if passed else "FAILED"
    badge = f'<span class="badge {"pass" if passed else "fail"}">{word}</span>'
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>Drill {scenario}: {word}</title>",
            f"<style>{STYLE}</style></head><body>",
            f"<h1>Drill {scenario} {badge}</h1>",
            f"<p>{_e(report.get('summary', ''))}<br>started {_e(report.get('started_at', ''))}</p>",
            _summary(report),
            _failures(report),
            _chart(report),
            _writers(report),
            _expectations(report),
            _checker(report),
            _timeline(report),
            "</body></html>",
            "",
        ]
    )
