"""The HTML report: one self-contained page drawn from optischema.report_data().

Charts are drawn here, on the server, as inline SVG: the page has no script,
loads nothing (a Content-Security-Policy of default-src 'none' says so to the
browser), opens from a file, a mail attachment or the sidecar's loopback port,
offline, and reads on a phone (the SVG scales; legends and tables are HTML).
A vendored JavaScript chart library would add a few hundred kB of code to
audit and keep up to date, and a page that runs script, for a handful of line
and bar charts. Standard library only: PL/Python imports this module in the
database (optischema.render_report()) and the sidecar imports it for /report.

Every text from the database is escaped. The data is checked for shape, not
trusted: a wrong type is a ReportDataError, a value that is not a number is
drawn as missing."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any

FORMAT = 1
# Okabe-Ito: told apart by colour-blind readers, and in print.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#7F7F7F", "#000000")
BEFORE, AFTER, BAD = "#9AA5B1", "#0072B2", "#D55E00"
TEXT_SHOWN = 160        # characters of a statement shown before "more"
TEXT_KEPT = 20000       # characters of a statement kept in the page at all


class ReportDataError(ValueError):
    """The input is not report_data()'s JSON."""


# ---------------------------------------------------------------- values

def _num(v: Any) -> float | None:
    """A finite number, or None (missing, NULL or not a number)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _time(v: Any) -> datetime | None:
    """An ISO 8601 time (PostgreSQL's JSON of a timestamptz); without an offset, UTC."""
    if not isinstance(v, str):
        return None
    try:
        t = datetime.fromisoformat(v)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def _list(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    v = data.get(key, [])
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, Mapping) for x in v):
        raise ReportDataError(f"report data: {key!r} must be a list of objects")
    return v


def _points(rows: Any, key: str) -> list[tuple[datetime, float | None]]:
    if not isinstance(rows, list):
        return []
    return [(t, _num(r.get(key))) for r in rows if isinstance(r, Mapping) and (t := _time(r.get("t"))) is not None]


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "–"
    if v == 0:
        return "0"
    if v < 1:
        return f"{v:.3f} ms"
    if v < 10:
        return f"{v:.2f}".rstrip("0").rstrip(".") + " ms"
    if v < 1000:
        return f"{v:.0f} ms"
    if v < 60_000:
        return f"{v / 1000:.1f} s"
    if v < 3_600_000:
        return f"{v / 60_000:.1f} min"
    return f"{v / 3_600_000:.1f} h"


def fmt_count(v: float | None) -> str:
    if v is None:
        return "–"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.1f}{suffix}"
    return f"{v:.0f}" if v == int(v) else f"{v:.1f}"


def fmt_bytes(v: float | None) -> str:
    if v is None:
        return "–"
    for div, suffix in ((2**30, "GB"), (2**20, "MB"), (2**10, "kB")):
        if v >= div:
            return f"{v / div:.1f} {suffix}"
    return f"{v:.0f} B"


def fmt_pct(v: float | None) -> str:
    return "–" if v is None else f"{v:+.0f}%" if abs(v) >= 1 else f"{v:+.1f}%"


def fmt_time(t: datetime | None) -> str:
    return "–" if t is None else t.strftime("%Y-%m-%d %H:%M")


def _span(seconds: float) -> str:
    for div, name in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= div and seconds % div == 0:
            n = int(seconds // div)
            return f"{n} {name}{'s' if n != 1 else ''}"
    return f"{seconds:.0f} s"


# ---------------------------------------------------------------- charts

@dataclass
class Series:
    label: str
    color: str
    points: list[tuple[datetime, float | None]]


@dataclass
class Band:
    """A shaded stretch of a time axis, e.g. the hours after a change."""
    start: datetime
    end: datetime
    color: str
    label: str


@dataclass
class Chart:
    title: str
    svg: str
    legend: list[tuple[str, str]] = field(default_factory=list)   # (color, label)

    def html(self) -> str:
        items = "".join(f'<li><span class="sw" style="background:{c}"></span>{escape(label)}</li>'
                        for c, label in self.legend)
        legend = f'<ul class="legend">{items}</ul>' if items else ""
        return f'<figure class="chart"><figcaption>{escape(self.title)}</figcaption>{self.svg}{legend}</figure>'


W, H = 640, 220
ML, MR, MT, MB = 72, 26, 10, 28      # margins: room for the axis labels


def _nice_max(v: float, whole: bool) -> tuple[float, float]:
    """An axis top at or above v, and its tick step (4 or 5 ticks; whole
    numbers only for counts)."""
    if v <= 0:
        return (1.0, 1.0) if whole else (1.0, 0.25)
    mag = 10 ** math.floor(math.log10(v / 4))
    for m in (1, 2, 2.5, 5, 10):
        step = m * mag
        if whole:
            step = max(round(step), 1)
        if v / step <= 4.5:
            return step * math.ceil(v / step - 1e-9), step
    return 10 * mag * 5, 10 * mag


TIME_STEPS = [timedelta(minutes=m) for m in (1, 5, 10, 15, 30)] + \
    [timedelta(hours=h) for h in (1, 2, 3, 6, 12)] + [timedelta(days=d) for d in (1, 2, 7, 14, 28, 91, 364)]


def _time_ticks(t0: datetime, t1: datetime) -> list[tuple[datetime, str]]:
    span = (t1 - t0).total_seconds()
    step = next((s for s in TIME_STEPS if span / s.total_seconds() <= 6), TIME_STEPS[-1])
    sec = step.total_seconds()
    offset = t0.utcoffset().total_seconds() if t0.utcoffset() else 0.0
    first = math.ceil((t0.timestamp() + offset) / sec) * sec - offset
    fmt = "%H:%M" if span <= 86400 * 1.5 and sec < 86400 else "%a %H:%M" if sec < 86400 else "%d %b"
    out, t = [], first
    while t <= t1.timestamp() + 1e-6:
        tick = datetime.fromtimestamp(t, t0.tzinfo)
        out.append((tick, tick.strftime(fmt)))
        t += sec
    return out


class _Frame:
    """The plot area of a time chart: maps times and values to pixels and
    draws the axes."""

    def __init__(self, t0: datetime, t1: datetime, ymax: float, fmt: Callable[[float | None], str],
                 height: int = H) -> None:
        self.t0, self.t1 = t0, t1 if t1 > t0 else t0 + timedelta(minutes=1)
        self.top, self.step = _nice_max(ymax, fmt is fmt_count)
        self.fmt, self.h = fmt, height
        self.pw, self.ph = W - ML - MR, height - MT - MB

    def x(self, t: datetime) -> float:
        return ML + (t - self.t0).total_seconds() / (self.t1 - self.t0).total_seconds() * self.pw

    def y(self, v: float) -> float:
        return MT + self.ph - v / self.top * self.ph

    def axes(self) -> str:
        out = []
        v = 0.0
        while v <= self.top + 1e-9:
            y = self.y(v)
            out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}" stroke="#E3E7EB"/>'
                       f'<text x="{ML - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(self.fmt(v))}</text>')
            v += self.step
        for t, label in _time_ticks(self.t0, self.t1):
            x = self.x(t)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{MT + self.ph}" y2="{MT + self.ph + 4}" stroke="#8A949E"/>'
                       f'<text x="{x:.1f}" y="{self.h - 8}" text-anchor="middle">{escape(label)}</text>')
        out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{MT + self.ph}" y2="{MT + self.ph}" stroke="#8A949E"/>')
        return "".join(out)


def _svg(title: str, body: str, height: int = H) -> str:
    return (f'<svg viewBox="0 0 {W} {height}" role="img" aria-label="{escape(title)}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{body}</svg>')


def line_chart(title: str, series: Sequence[Series], step: timedelta, fmt: Callable[[float | None], str],
               bands: Sequence[Band] = ()) -> Chart:
    """Values per bucket, drawn at the middle of each bucket; a missing
    value (no snapshot in that bucket) breaks the line."""
    times = [t for s in series for t, _ in s.points]
    if not times:
        return empty_chart(title, "No snapshots in this window yet.")
    t0, t1 = min(times), max(times) + step
    ymax = max((v for s in series for _, v in s.points if v is not None), default=0.0)
    f = _Frame(t0, t1, ymax, fmt)
    body = []
    for b in bands:
        x0, x1 = max(f.x(b.start), ML), min(f.x(b.end), W - MR)
        if x1 > x0:
            body.append(f'<rect x="{x0:.1f}" y="{MT}" width="{x1 - x0:.1f}" height="{f.ph}" fill="{b.color}" '
                        f'opacity="0.12"><title>{escape(b.label)}</title></rect>')
    body.append(f.axes())
    half = step / 2
    for s in series:
        runs: list[list[tuple[float, float, str]]] = [[]]
        for t, v in s.points:
            if v is None:
                runs.append([])
            else:
                runs[-1].append((f.x(t + half), f.y(v), f"{s.label}: {fmt(v)} at {fmt_time(t)}"))
        for run in runs:
            if len(run) > 1:
                d = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y, _ in run)
                body.append(f'<path d="{d}" fill="none" stroke="{s.color}" stroke-width="2" stroke-linejoin="round"/>')
            dense = len(s.points) > 60
            for x, y, tip in run:
                r = 1.5 if dense and len(run) > 1 else 3
                body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{s.color}"><title>{escape(tip)}</title></circle>')
    legend = [(s.color, s.label) for s in series] + [(b.color, b.label) for b in bands]
    return Chart(title, _svg(title, "".join(body)), legend)


def bar_chart(title: str, rows: Sequence[tuple[str, Sequence[tuple[float | None, str, str]]]],
              fmt: Callable[[float | None], str], legend: Sequence[tuple[str, str]] = ()) -> Chart:
    """Horizontal bars: one group per row (label, [(value, color, name)])."""
    rows = [(label, bars) for label, bars in rows if any(v is not None for v, _, _ in bars)]
    if not rows:
        return empty_chart(title, "Nothing measured yet.")
    per = max(len(bars) for _, bars in rows)
    bar_h, gap = 16, 12
    height = MT + len(rows) * (per * bar_h + gap) + MB
    ymax = max(v for _, bars in rows for v, _, _ in bars if v is not None)
    top, tick = _nice_max(ymax, fmt is fmt_count)
    left, pw = 130, W - 130 - MR - 70
    body, y = [], MT
    v = 0.0
    while v <= top + 1e-9:
        x = left + v / top * pw
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{MT}" y2="{height - MB}" stroke="#E3E7EB"/>'
                    f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle">{escape(fmt(v))}</text>')
        v += tick
    for label, bars in rows:
        body.append(f'<text x="{left - 8}" y="{y + per * bar_h / 2 + 4:.1f}" text-anchor="end">{escape(label)}</text>')
        for value, color, name in bars:
            if value is not None:
                w = max(value / top * pw, 1)
                body.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 3}" fill="{color}">'
                            f'<title>{escape(f"{label}, {name}: {fmt(value)}")}</title></rect>'
                            f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 5}">{escape(fmt(value))}</text>')
            y += bar_h
        y += gap
    return Chart(title, _svg(title, "".join(body), height), list(legend))


def coverage_chart(title: str, rows: Sequence[Mapping[str, Any]], step: timedelta) -> Chart:
    """Snapshots per bucket; a bucket with none (a gap in capture) is marked
    red under the axis, a reset of pg_stat_statements with a triangle."""
    pts = [(t, _num(r.get("snapshots")) or 0.0, _num(r.get("resets")) or 0.0)
           for r in rows if (t := _time(r.get("bucket_start"))) is not None]
    if not pts:
        return empty_chart(title, "No snapshots in this window yet.")
    f = _Frame(pts[0][0], pts[-1][0] + step, max(n for _, n, _ in pts), fmt_count)
    body = [f.axes()]
    width = max(f.x(pts[0][0] + step) - f.x(pts[0][0]) - 1, 1)
    for t, n, resets in pts:
        x = f.x(t)
        tip = f"{fmt_time(t)}: {n:.0f} snapshot{'s' if n != 1 else ''}" + (f", {resets:.0f} reset" if resets else "")
        if n > 0:
            body.append(f'<rect x="{x:.1f}" y="{f.y(n):.1f}" width="{width:.1f}" height="{f.y(0) - f.y(n):.1f}" '
                        f'fill="{AFTER}"><title>{escape(tip)}</title></rect>')
        else:
            body.append(f'<rect x="{x:.1f}" y="{f.y(0) + 1:.1f}" width="{width:.1f}" height="4" fill="{BAD}">'
                        f'<title>{escape(tip + " (a gap in capture)")}</title></rect>')
        if resets:
            cx = x + width / 2
            body.append(f'<path d="M{cx:.1f},{MT + 2} l5,9 h-10 z" fill="{PALETTE[1]}"><title>{escape(tip)}</title></path>')
    legend = [(AFTER, "snapshots taken"), (BAD, "no snapshot (gap)"), (PALETTE[1], "pg_stat_statements reset")]
    return Chart(title, _svg(title, "".join(body)), legend)


def sparkline(values: Sequence[float | None], color: str) -> str:
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(known) < 2:
        return ""
    w, h, top = 120, 26, max(v for _, v in known) or 1.0
    n = max(len(values) - 1, 1)
    d = "M" + " L".join(f"{i / n * (w - 4) + 2:.1f},{h - 3 - v / top * (h - 6):.1f}" for i, v in known)
    return (f'<svg class="spark" viewBox="0 0 {w} {h}" role="img" aria-label="trend" xmlns="http://www.w3.org/2000/svg">'
            f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.5"/></svg>')


def empty_chart(title: str, why: str) -> Chart:
    body = (f'<rect x="{ML}" y="{MT}" width="{W - ML - MR}" height="{H - MT - MB}" fill="#F6F8FA" stroke="#E3E7EB"/>'
            f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">{escape(why)}</text>')
    return Chart(title, _svg(title, body))


def trend_pct(values: Sequence[float | None]) -> float | None:
    """Change of the mean of the last third of known values against the first third."""
    known = [v for v in values if v is not None]
    if len(known) < 3:
        return None
    k = max(len(known) // 3, 1)
    first, last = sum(known[:k]) / k, sum(known[-k:]) / k
    return None if first <= 0 else 100 * (last - first) / first


# ---------------------------------------------------------------- page

CSS = """
:root{color-scheme:light;--fg:#1F2328;--muted:#59636E;--line:#D1D9E0;--bg:#fff;--soft:#F6F8FA}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1040px;margin:0 auto;padding:16px}
h1{font-size:1.5rem;margin:.2em 0}h2{font-size:1.25rem;margin:1.6em 0 .4em;border-bottom:1px solid var(--line);padding-bottom:.2em}
h3{font-size:1rem;margin:1em 0 .3em}
.muted{color:var(--muted)}
nav{display:flex;flex-wrap:wrap;gap:.4em 1em;margin:.6em 0}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:8px;margin:12px 0}
.card{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:8px 10px}
.card b{display:block;font-size:1.3rem}
.chart{margin:12px 0;max-width:760px}
.chart figcaption{font-weight:600;margin-bottom:4px}
.chart svg{width:100%;height:auto;display:block}
.chart svg text{font:12px system-ui,sans-serif;fill:#444C56}
.legend{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:2px 14px;font-size:.85rem}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:5px 6px;border-bottom:1px solid var(--line);vertical-align:top}
td.n,th.n{text-align:right;white-space:nowrap}
code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:var(--soft);border:1px solid var(--line);border-radius:4px;padding:6px 8px;white-space:pre-wrap;word-break:break-word;margin:4px 0}
td code{word-break:break-word}
details summary{cursor:pointer;color:var(--muted)}
.item{border:1px solid var(--line);border-radius:6px;padding:8px 12px;margin:10px 0}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:.8rem;background:var(--soft);border:1px solid var(--line)}
.ok{color:#1A7F37}.bad{color:#CF222E}.warn{color:#9A6700}
.spark{width:120px;height:26px;vertical-align:middle}
footer{margin:2em 0 1em;font-size:.85rem;color:var(--muted)}
@media (max-width:600px){main{padding:10px}table{font-size:.82rem}td code{font-size:11px}.hide-s{display:none}
.chart svg text{font-size:17px}}
"""

# The page loads nothing: not even a stray image or font could reach the network.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'"


class _Page:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.d = data
        self.statements = _list(data, "statements")
        self.recs = _list(data, "recommendations")
        self.changes = _list(data, "changes")
        self.tables = _list(data, "tables")
        self.indexes = _list(data, "indexes")
        self.capture = _list(data, "capture")
        self.health = _list(data, "health")
        texts = data.get("texts") if data.get("texts") is not None else {}
        if not isinstance(texts, Mapping):
            raise ReportDataError("report data: 'texts' must be an object")
        self.texts = {str(k): _text(v) for k, v in texts.items()}
        for s in self.statements:
            self.texts.setdefault(str(s.get("queryid")), _text(s.get("query")))
        starts = [t for r in self.capture if (t := _time(r.get("bucket_start"))) is not None]
        ends = [t for r in self.capture if (t := _time(r.get("bucket_end"))) is not None]
        self.step = (ends[0] - starts[0]) if starts and ends else timedelta(minutes=5)

    # --- pieces

    def statement(self, queryid: Any, shown: int = TEXT_SHOWN) -> str:
        text = " ".join(self.texts.get(str(queryid), "").split())
        if not text:
            return f'<span class="muted">statement {escape(_text(queryid))}</span>'
        if len(text) <= shown:
            return f"<code>{escape(text)}</code>"
        full = text[:TEXT_KEPT] + (" …" if len(text) > TEXT_KEPT else "")
        return (f"<details><summary><code>{escape(text[:shown])}</code> …</summary>"
                f"<pre>{escape(full)}</pre></details>")

    def rec_title(self, r: Mapping[str, Any]) -> str:
        if r.get("title"):
            return escape(_text(r["title"]))
        return (f"{escape(_text(r.get('kind')))} proposed by the LLM (recommendation {escape(_text(r.get('recommendation_id', r.get('id'))))}); "
                "its text is in optischema.recommendations, not in this report: model output may quote data values")

    # --- sections

    def header(self) -> str:
        gen = _time(self.d.get("generated_at"))
        total = sum(v for s in self.statements if (v := _num(s.get("total_ms"))) is not None)
        problems = sum(1 for h in self.health if h.get("ok") is False)
        gaps = sum(1 for r in self.capture if _num(r.get("snapshots")) == 0)
        cards = [
            (fmt_ms(total), "time of the statements listed"),
            (str(len(self.recs)), "open recommendations"),
            (str(len(self.changes)), "changes in the window"),
            (str(problems), "health findings"),
            (f"{gaps} of {len(self.capture)}", f"buckets of {_span(self.step.total_seconds())} without a snapshot"),
        ]
        card_html = "".join(f'<div class="card"><b>{escape(v)}</b><span class="muted">{escape(k)}</span></div>'
                            for v, k in cards)
        tz = gen.strftime("UTC%z") if gen and gen.utcoffset() is not None else ""
        return (f"<header><h1>OptiSchema report: {escape(_text(self.d.get('database')))}</h1>"
                f'<p class="muted">Last {escape(self._since())}, in buckets of {_span(self.step.total_seconds())}; '
                f"generated {escape(fmt_time(gen))} {escape(tz)} for role {escape(_text(self.d.get('role')))}</p>"
                '<nav><a href="#statements">Statements</a><a href="#recommendations">Recommendations</a>'
                '<a href="#changes">Changes</a><a href="#activity">Tables and indexes</a><a href="#health">Health</a></nav>'
                f'<div class="cards">{card_html}</div></header>')

    def _since(self) -> str:
        seconds = _num(self.d.get("since_s"))
        return _span(seconds) if seconds else _text(self.d.get("since"))

    def statements_section(self) -> str:
        out = ['<section id="statements"><h2>Heaviest statements</h2>']
        if not self.statements:
            out.append('<p class="muted">No statement ran in this window.</p>')
        # Charted: the heaviest five with time in the buckets (a window that
        # reaches back before the first snapshot lists statements that ran
        # only before it, at times unknown).
        top = [(i, s) for i, s in enumerate(self.statements)
               if any(v for _, v in _points(s.get("history"), "total_ms"))][:5]
        series = [Series(f"#{i + 1} {self._short(s.get('queryid'))}", PALETTE[k], _points(s.get("history"), "total_ms"))
                  for k, (i, s) in enumerate(top)]
        out.append(line_chart(f"Time spent per {_span(self.step.total_seconds())}, heaviest {len(top)}",
                              series, self.step, fmt_ms).html())
        means = [Series(x.label, x.color, _points(s.get("history"), "mean_ms")) for x, (_, s) in zip(series, top)]
        out.append(line_chart("Mean time per call: what got slower, and when", means, self.step, fmt_ms).html())
        rows = []
        for i, s in enumerate(self.statements):
            mean = [v for _, v in _points(s.get("history"), "mean_ms")]
            trend = trend_pct(mean)
            cls = "bad" if trend is not None and trend > 20 else "ok" if trend is not None and trend < -20 else ""
            color = next((x.color for x, (j, _) in zip(series, top) if j == i), PALETTE[6])
            rows.append(
                f'<tr><td class="n">#{i + 1}</td><td>{self.statement(s.get("queryid"))}'
                f'<div class="muted">queryid {escape(_text(s.get("queryid")))}</div></td>'
                f'<td class="n">{fmt_count(_num(s.get("calls")))}</td><td class="n hide-s">{fmt_ms(_num(s.get("total_ms")))}</td>'
                f'<td class="n">{fmt_ms(_num(s.get("mean_ms")))}</td>'
                f'<td class="n hide-s">{escape(fmt_count(_num(s.get("share_pct"))))}%</td>'
                f'<td class="n hide-s">{sparkline(mean, color)}</td>'
                f'<td class="n {cls}">{escape(fmt_pct(trend)) if trend is not None else "–"}</td></tr>')
        if rows:
            out.append('<div class="scroll"><table><thead><tr><th class="n">#</th><th>statement</th><th class="n">calls</th>'
                       '<th class="n hide-s">total</th><th class="n">mean</th><th class="n hide-s">share</th>'
                       '<th class="n hide-s">mean time</th><th class="n" title="mean time, last third of the window '
                       'against the first">trend</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table></div>")
        out.append("</section>")
        return "".join(out)

    def _short(self, queryid: Any) -> str:
        text = " ".join(self.texts.get(str(queryid), "").split()) or f"statement {_text(queryid)}"
        return text if len(text) <= 60 else text[:57] + "…"

    def recommendations_section(self) -> str:
        out = ['<section id="recommendations"><h2>Open recommendations</h2>']
        if not self.recs:
            out.append('<p class="muted">None open. <code>SELECT * FROM optischema.recommend();</code> refreshes them.</p>')
        bars = []
        for r in self.recs:
            before, after = self._weighted(r.get("queries"))
            if before is not None:
                bars.append((f"#{_text(r.get('id'))}", [(before, BEFORE, "before"), (after, AFTER, "with the change")]))
        if self.recs:
            out.append(bar_chart("Estimated planner cost per call of the statements each recommendation serves",
                                 bars, fmt_count, [(BEFORE, "now"), (AFTER, "with the recommendation (what-if plan)")]).html())
        for r in self.recs:
            share = _num(r.get("db_time_share"))
            facts = [f'<span class="badge">{escape(_text(r.get("kind")))}</span>',
                     f'<span class="badge">{escape(_text(r.get("source")))}</span>']
            if share is not None:
                facts.append(f"serves {share * 100:.0f}% of statement time")
            if (size := _num(r.get("estimated_size_bytes"))) is not None:
                facts.append(f"size {fmt_bytes(size)}")
            if (freed := _num(r.get("freed_bytes"))) is not None:
                facts.append(f"frees {fmt_bytes(freed)}")
            if r.get("reason"):
                facts.append(f"reason: {escape(_text(r.get('reason')))}")
            queries = [q for q in (r.get("queries") or []) if isinstance(q, Mapping)]
            qrows = "".join(
                f'<tr><td>{self.statement(q.get("queryid"), 90)}</td><td class="n">{fmt_count(_num(q.get("calls")))}</td>'
                f'<td class="n">{fmt_count(_num(q.get("cost_before")))}</td><td class="n">{fmt_count(_num(q.get("cost_after")))}</td>'
                f'<td class="n">{escape(fmt_pct(-v) if (v := _num(q.get("reduction_pct"))) is not None else "–")}</td></tr>'
                for q in queries)
            evidence = ('<div class="scroll"><table><thead><tr><th>statement</th><th class="n">calls</th>'
                        '<th class="n">cost now</th><th class="n">with it</th><th class="n">change</th></tr></thead>'
                        f"<tbody>{qrows}</tbody></table></div>") if qrows else ""
            ddl = f"<pre>{escape(_text(r.get('ddl')))}</pre>" if r.get("ddl") else ""
            out.append(f'<div class="item"><h3>#{escape(_text(r.get("id")))} {self.rec_title(r)}</h3>'
                       f'<div class="muted">{" · ".join(facts)}</div>{ddl}{evidence}'
                       f'<div class="muted">Apply: <code>SELECT optischema.apply({escape(_text(r.get("id")))});</code></div></div>')
        out.append("</section>")
        return "".join(out)

    @staticmethod
    def _weighted(queries: Any) -> tuple[float | None, float | None]:
        rows = [(c, b, a) for q in (queries or []) if isinstance(q, Mapping)
                if (c := _num(q.get("calls"))) and (b := _num(q.get("cost_before"))) is not None
                and (a := _num(q.get("cost_after"))) is not None]
        calls = sum(c for c, _, _ in rows)
        if not calls:
            return None, None
        return sum(c * b for c, b, _ in rows) / calls, sum(c * a for c, _, a in rows) / calls

    def changes_section(self) -> str:
        out = ['<section id="changes"><h2>Recent changes</h2>']
        if not self.changes:
            out.append('<p class="muted">No change was requested in this window.</p>')
        else:
            bars = [(f"change {_text(c.get('id'))}", [(_num(c.get("mean_ms_before")), BEFORE, "before"),
                                                      (_num(c.get("mean_ms_after")), AFTER, "after")])
                    for c in self.changes]
            out.append(bar_chart("Measured mean time of the statements each change was for", bars, fmt_ms,
                                 [(BEFORE, "before the change"), (AFTER, "after it")]).html())
        for c in self.changes:
            verdict = _text(c.get("timing_verdict"))
            cls = {"improved": "ok", "regressed": "bad"}.get(verdict, "warn" if verdict else "")
            outcome = _text(c.get("outcome"))
            facts = [f'<span class="badge">{escape(_text(c.get("action")))}</span>',
                     f'<span class="badge {"ok" if outcome == "succeeded" else "bad" if outcome == "failed" else ""}">'
                     f"{escape(outcome)}</span>",
                     f"requested {escape(fmt_time(_time(c.get('requested_at'))))}",
                     f"finished {escape(fmt_time(_time(c.get('finished_at'))))}"]
            if verdict:
                pct = _num(c.get("change_pct"))
                facts.append(f'<span class="{cls}">{escape(verdict.replace("_", " "))}'
                             f'{" " + escape(fmt_pct(pct)) if pct is not None else ""}</span>')
            if c.get("plan_check"):
                facts.append(f"plan check: {escape(_text(c.get('plan_check')))}")
            error = f'<pre class="bad">{escape(_text(c.get("error")))}</pre>' if c.get("error") else ""
            ddl = f"<pre>{escape(_text(c.get('ddl')))}</pre>" if c.get("ddl") else ""
            chart = self._change_chart(c)
            out.append(f'<div class="item"><h3>Change {escape(_text(c.get("id")))}: {self.rec_title(c)}</h3>'
                       f'<div class="muted">{" · ".join(facts)}</div>{ddl}{error}{chart}</div>')
        out.append("</section>")
        return "".join(out)

    def _change_chart(self, c: Mapping[str, Any]) -> str:
        hist = [h for h in (c.get("history") or []) if isinstance(h, Mapping)]
        pts = _points(hist, "mean_ms")
        if not any(v is not None for _, v in pts):
            return ""
        step = (pts[1][0] - pts[0][0]) if len(pts) > 1 else self.step
        bands = []
        requested, finished = _time(c.get("requested_at")), _time(c.get("finished_at"))
        if requested and pts:
            bands.append(Band(pts[0][0], requested, BEFORE, "before the change"))
        if finished and pts:
            bands.append(Band(finished, pts[-1][0] + step, AFTER, "after it"))
        series = [Series("mean time per call", PALETTE[0], pts)]
        scans = _points(hist, "index_scans")
        chart = line_chart(f"Change {_text(c.get('id'))}: mean time of its statements, per {_span(step.total_seconds())}",
                           series, step, fmt_ms, bands)
        out = chart.html()
        if any(v for _, v in scans):
            out += line_chart(f"Change {_text(c.get('id'))}: scans of its index", [Series("index scans", PALETTE[2], scans)],
                              step, fmt_count, bands).html()
        return out

    def activity_section(self) -> str:
        out = ['<section id="activity"><h2>Tables and indexes</h2>']
        writes = []
        for i, t in enumerate(self.tables[:5]):
            hist = [h for h in (t.get("history") or []) if isinstance(h, Mapping)]
            pts = []
            for h in hist:
                parts = [_num(h.get(k)) for k in ("n_tup_ins", "n_tup_upd", "n_tup_del")]
                if (ts := _time(h.get("t"))) is not None:
                    pts.append((ts, None if any(p is None for p in parts) else sum(parts)))
            writes.append(Series(_text(t.get("name")), PALETTE[i], pts))
        out.append(line_chart(f"Rows written per {_span(self.step.total_seconds())}, busiest tables", writes,
                              self.step, fmt_count).html())
        scans = [Series(f"{_text(x.get('name'))} on {_text(x.get('table'))}", PALETTE[i % len(PALETTE)],
                        _points(x.get("history"), "idx_scan")) for i, x in enumerate(self.indexes)]
        out.append(line_chart(f"Index scans per {_span(self.step.total_seconds())}, most used indexes", scans,
                              self.step, fmt_count).html())
        stopped = [s.label for s in scans if self._stopped(s.points)]
        if stopped:
            out.append("<h3>Stopped being used</h3><p>Scanned earlier in the window, not at all in its last third:</p><ul>"
                       + "".join(f"<li><code>{escape(x)}</code></li>" for x in stopped) + "</ul>")
        dead = []
        for t in self.tables:
            last = next((h for h in reversed(t.get("history") or []) if isinstance(h, Mapping)
                         and _num(h.get("n_live_tup")) is not None), None)
            if last is not None:
                live, d = _num(last.get("n_live_tup")), _num(last.get("n_dead_tup"))
                dead.append(f'<tr><td><code>{escape(_text(t.get("name")))}</code></td><td class="n">{fmt_count(live)}</td>'
                            f'<td class="n">{fmt_count(d)}</td>'
                            f'<td class="n">{f"{100 * d / (live + d):.0f}%" if d is not None and live is not None and live + d > 0 else "–"}</td></tr>')
        if dead:
            out.append('<div class="scroll"><table><thead><tr><th>table</th><th class="n">live rows</th>'
                       '<th class="n">dead rows</th><th class="n">dead</th></tr></thead><tbody>' + "".join(dead)
                       + "</tbody></table></div>")
        out.append("</section>")
        return "".join(out)

    @staticmethod
    def _stopped(points: list[tuple[datetime, float | None]]) -> bool:
        known = [v for _, v in points if v is not None]
        k = len(known) // 3
        return k > 0 and any(known[:-k]) and not any(known[-k:])

    def health_section(self) -> str:
        out = ['<section id="health"><h2>Health</h2>']
        out.append(coverage_chart(f"Snapshots per {_span(self.step.total_seconds())}", self.capture, self.step).html())
        rows = sorted(self.health, key=lambda h: h.get("ok") is not False)
        body = "".join(
            f'<tr><td class="{"ok" if h.get("ok") is True else "bad" if h.get("ok") is False else "warn"}">'
            f'{"ok" if h.get("ok") is True else "problem" if h.get("ok") is False else "?"}</td>'
            f'<td>{escape(_text(h.get("check")))}</td><td>{escape(_text(h.get("detail")))}'
            f'{"<pre>" + escape(_text(h.get("fix"))) + "</pre>" if h.get("fix") else ""}</td></tr>'
            for h in rows)
        if body:
            out.append('<div class="scroll"><table><thead><tr><th></th><th>check</th><th>detail and fix</th></tr></thead>'
                       f"<tbody>{body}</tbody></table></div>")
        out.append("</section>")
        return "".join(out)

    def html(self) -> str:
        sections = [self.header(), self.statements_section(), self.recommendations_section(), self.changes_section(),
                    self.activity_section(), self.health_section()]
        title = f"OptiSchema report: {_text(self.d.get('database'))}"
        return ("<!DOCTYPE html>\n"
                f'<html lang="en"><head><meta charset="utf-8">'
                f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
                + "".join(sections)
                + f'<footer>OptiSchema {escape(_text(self.d.get("version")))}. Statement texts appear as pg_stat_statements '
                  f'shows them to role {escape(_text(self.d.get("role")))}; no value from pg_stats is in this page. '
                  "Charts are drawn by the server as SVG: the page runs no script and loads nothing.</footer>"
                  "</main></body></html>\n")


def render(data: Any) -> str:
    """The report page for report_data()'s JSON (already decoded)."""
    if not isinstance(data, Mapping):
        raise ReportDataError("report data must be a JSON object, as optischema.report_data() returns")
    if data.get("format") != FORMAT:
        raise ReportDataError(f"report data is of format {data.get('format')!r}; this renderer draws format {FORMAT}")
    return _Page(data).html()


__all__ = ["ReportDataError", "render", "line_chart", "bar_chart", "coverage_chart", "Series", "Band", "Chart"]
