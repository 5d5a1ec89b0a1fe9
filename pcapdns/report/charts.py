"""Charts for the HTML report, as inline SVG elements.

Plain data in, an ``<svg>`` string out, ready to paste into a page: no XML declaration, a
viewBox with ``width="100%"`` so the chart scales with the page, a ``<title>`` and an
aria-label saying what it shows, and text kept as text (``svg.fonttype = "none"``) so the
browser draws it with the page's sans-serif fonts and the file stays small.

Rendering uses matplotlib's object API (``Figure`` with the SVG canvas), never pyplot, so
nothing here selects a backend or opens a window. Settings are applied inside
``rc_context`` on top of matplotlib's defaults (a user's matplotlibrc cannot change the
output), and a lock keeps two renders in different threads from seeing each other's
settings. ``rc_context`` changes the process-wide rcParams while it is open, so a thread
drawing its own matplotlib figures at the same moment could see these settings; within
this package all rendering goes through the lock.

The output is byte-identical for the same input: no dates or creator in the metadata,
and the ids matplotlib derives from ``svg.hashsalt`` are salted per chart kind and input,
then prefixed with the chart kind, so several charts on one page never share an id.
"""

from __future__ import annotations

import hashlib
import html
import io
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import matplotlib as mpl
import matplotlib.style
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

# More buckets than this and the timeline sums adjacent ones: 600 steps across a 9-inch
# chart is already about one per pixel, and the SVG path grows with every step.
MAX_TIMELINE_BUCKETS = 600
# Log bins per latency chart, for a histogram that reads as a shape, not as noise.
LATENCY_BINS = 50

_INK = "#333333"  # text
_MUTED = "#666666"  # tick labels, secondary text
_AXIS = "#999999"  # spines and ticks
_GRID = "#e6e6e6"
_QUERIES = "#7f9cb8"  # muted steel blue: volume, not alarm
_FAILURES = "#c0392b"  # red
_LATE = "#d68910"  # amber
_NEUTRAL = "#8c9aa8"  # slate grey for NOERROR
_RCODE_COLORS = {
    "NOERROR": _NEUTRAL,
    # NXDOMAIN is often the search-path expansion doing its job: a warning, not an alarm.
    "NXDOMAIN": "#e0a040",
    "SERVFAIL": "#c0392b",
    "REFUSED": "#a93226",
}
_OTHER_RCODE = "#d35400"  # FORMERR, NOTIMP, ...: unusual, so orange
_PERCENTILE_COLORS = {"p50": "#2c3e50", "p90": "#7d5a2c", "p99": "#b03a2e", "max": "#7b241c"}

_FONTS = ["Inter", "Helvetica Neue", "Helvetica", "Arial", "Liberation Sans", "DejaVu Sans"]
# Any keys: matplotlib types rc_context as taking only its literal key names.
_RC: dict[Any, Any] = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": _FONTS,
    # The viewBox is in points and the page shows it at 96 px per inch (see _finish), so
    # 8 pt text is about 10.7 px on the page.
    "font.size": 8.0,
    "axes.labelsize": 8.0,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "axes.edgecolor": _AXIS,
    "axes.labelcolor": _INK,
    "axes.linewidth": 0.8,
    "xtick.color": _AXIS,
    "ytick.color": _AXIS,
    "xtick.labelcolor": _MUTED,
    "ytick.labelcolor": _MUTED,
    "xtick.major.size": 3.0,
    "ytick.major.size": 3.0,
    "xtick.minor.size": 1.5,
    "ytick.minor.size": 1.5,
    "grid.color": _GRID,
    "grid.linewidth": 0.6,
    "axes.formatter.use_mathtext": False,
    "axes.unicode_minus": False,
    "text.usetex": False,
    "path.simplify": True,
}
_RENDER_LOCK = threading.Lock()


# -- timeline -----------------------------------------------------------------------------


def timeline_svg(start: float, step: float, queries: Sequence[int], failures: Sequence[int],
                 *, responses_late: Sequence[int] | None = None) -> str:
    """Queries and failed lookups over time, on one UTC time axis.

    ``start`` is the UNIX time of the first bucket, ``step`` the bucket width in seconds,
    ``queries[i]`` and ``failures[i]`` (and ``responses_late[i]``) the counts in bucket i.
    Failures have their own y axis on the right, so a handful among a million queries still
    reaches the top of the chart. More than ``MAX_TIMELINE_BUCKETS`` buckets are summed in
    adjacent groups, and the axis labels give the width actually plotted.

    Raises ValueError when the series differ in length or ``step`` is not positive.
    """
    if not step > 0:
        raise ValueError(f"timeline bucket width must be positive, not {step!r}")
    if len(failures) != len(queries) or (
            responses_late is not None and len(responses_late) != len(queries)):
        raise ValueError("timeline series must have one count per bucket")
    if not queries:
        return empty_svg("No queries in the capture")
    group = _group_size(step, len(queries))
    q = _sum_groups(queries, group)
    f = _sum_groups(failures, group)
    late = None if responses_late is None else _sum_groups(responses_late, group)
    # Edges in seconds from ``start``; the last group may hold fewer buckets than the rest.
    edges = [i * group * step for i in range(len(q))] + [len(queries) * step]
    width = _duration(group * step)
    end = start + len(queries) * step
    label = (f"Queries and failed lookups per {width}, {_utc(start)} to {_utc(end)} UTC: "
             f"{sum(queries):,} queries, {sum(failures):,} failed lookups")
    if responses_late is not None:
        label += f", {sum(responses_late):,} late responses"
    salt = ("timeline", start, step, tuple(queries), tuple(failures),
            None if responses_late is None else tuple(responses_late))

    def draw(fig: Figure) -> None:
        ax = fig.add_axes((0.075, 0.2, 0.85, 0.66))
        right = ax.twinx()
        handles = [ax.stairs(q, edges, fill=True, color=_QUERIES, alpha=0.55, linewidth=0,
                             label=f"queries ({sum(queries):,})")]
        ax.stairs(q, edges, color=_QUERIES, linewidth=0.8)
        handles.append(right.stairs(f, edges, color=_FAILURES, linewidth=1.1,
                                    label=f"failed lookups ({sum(failures):,})"))
        if late is not None:
            handles.append(right.stairs(late, edges, color=_LATE, linewidth=1.1,
                                        label=f"late responses ({sum(responses_late or ()):,})"))
        # A lone failure in a wide chart is one pixel of line: mark sparse failures too.
        hits = [i for i, n in enumerate(f) if n]
        if hits and len(hits) <= 60:
            right.plot([(edges[i] + edges[i + 1]) / 2 for i in hits], [f[i] for i in hits],
                       linestyle="none", marker="o", markersize=3.2, color=_FAILURES,
                       markeredgewidth=0)
        _style(ax, right=True)
        ax.set_xlim(0, edges[-1])
        top_q, top_f = max(max(q), 1), max(max(f), max(late or [0]), 1)
        # Failures get a scale of their own only when they would be lost on the queries'
        # one; when they are a large share the two axes agree, so equal heights mean equal
        # counts (every query failing reads as such).
        if top_f * 4 >= top_q:
            top_q = top_f = max(top_q, top_f)
        ax.set_ylim(0, top_q * 1.1)
        right.set_ylim(0, top_f * 1.1)
        for a in (ax, right):
            a.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
            a.yaxis.set_major_formatter(FuncFormatter(_count_tick))
        right.spines["right"].set_visible(True)
        right.spines["right"].set_color(_FAILURES)
        right.tick_params(axis="y", colors=_FAILURES, labelcolor=_FAILURES)
        ax.set_ylabel(f"queries per {width}")
        what = "failed lookups" + (", late responses" if late is not None else "")
        right.set_ylabel(f"{what} per {width}", color=_FAILURES)
        ticks, labels, one_day = _time_ticks(start, end)
        ax.set_xticks([t - start for t in ticks], labels)
        ax.set_xlabel("time (UTC)" + (f", {_utc(start)[:10]}" if one_day else ""))
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3,
                  frameon=False, borderaxespad=0.3, handlelength=1.6, columnspacing=1.6)

    return _render("timeline", (9.0, 3.0), draw, label, salt)


def _group_size(step: float, buckets: int) -> int:
    """How many buckets to sum so at most MAX_TIMELINE_BUCKETS remain, preferring a group
    whose width is a round duration (1 min rather than 51 s)."""
    least = math.ceil(buckets / MAX_TIMELINE_BUCKETS)
    if least == 1:
        return 1
    for width in _NICE_INTERVALS:
        group = width / step
        if group >= least and abs(group - round(group)) < 1e-6:
            return round(group)
    return least


def _sum_groups(counts: Sequence[int], group: int) -> list[int]:
    return [sum(counts[i:i + group]) for i in range(0, len(counts), group)]


_NICE_INTERVALS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300,
    600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800,
)


def _time_ticks(start: float, end: float) -> tuple[list[float], list[str], bool]:
    """Tick times on round UTC clock values, their labels, and whether all are one day.

    Labels are HH:MM:SS (with fractions of a second when ticks are closer than that); when
    the span crosses midnight the first tick of each day carries the date as well.
    """
    span = max(end - start, 1e-6)
    interval = next((i for i in _NICE_INTERVALS if span / i <= 7), None)
    if interval is None:
        # Longer than seven weeks: whole weeks, as many as keep seven ticks or so; a span of
        # centuries (a damaged time stamp) must not ask for thousands of weekly ticks.
        week = _NICE_INTERVALS[-1]
        interval = week * math.ceil(span / 7 / week)
    first = math.ceil(start / interval - 1e-9)
    ticks = [k * interval for k in range(first, int(math.floor(end / interval + 1e-9)) + 1)]
    one_day = _utc(start)[:10] == _utc(max(start, end - 1e-6))[:10]
    decimals = max(0, -math.floor(math.log10(interval) + 1e-9)) if interval < 1 else 0
    labels, last_day = [], ""
    for t in ticks:
        stamp = _utc(t, decimals)
        day, clock = stamp[:10], stamp[11:]
        if interval >= 86400:
            labels.append(day)
        elif not one_day and day != last_day:
            labels.append(f"{clock}\n{day}")
        else:
            labels.append(clock)
        last_day = day
    return ticks, labels, one_day


def _utc(t: float, decimals: int = 0) -> str:
    """``YYYY-MM-DD HH:MM:SS[.fff]`` in UTC."""
    if not decimals:
        return datetime.fromtimestamp(math.floor(t + 1e-9), UTC).strftime("%Y-%m-%d %H:%M:%S")
    whole, fraction = divmod(round(t * 10**decimals), 10**decimals)
    stamp = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp}.{fraction:0{decimals}d}"


def _duration(seconds: float) -> str:
    """A bucket width in the unit people say it in: 250 ms, 10 s, 5 min, 1 h."""
    if seconds < 1:
        return f"{seconds * 1000:.4g} ms"
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:.4g} s"


# -- latency ------------------------------------------------------------------------------


def latency_svg(buckets: Sequence[tuple[float, float, int]],
                percentiles: Mapping[str, float | None]) -> str:
    """The latency distribution of answered lookups on a log axis in milliseconds.

    ``buckets`` are (lower_seconds, upper_seconds, count), as from
    ``LatencyHistogram.buckets()``; they are summed into about ``LATENCY_BINS`` log bins,
    each fine bucket going whole to the bin holding its geometric middle. ``percentiles``
    maps "p50", "p90", "p99" and "max" to milliseconds (None: not known); each present one
    is a labelled vertical line. When the counts span two decades or more, the y axis is
    logarithmic too, so the tail (the timeouts and retries) stays visible.
    """
    fine = [(lo * 1000.0, hi * 1000.0, n) for lo, hi, n in buckets if n > 0 and hi > 0]
    if not fine:
        return empty_svg("No answered lookups to show a latency distribution")
    # A lower bound of 0 has no place on a log axis: give such a bucket one decade.
    fine = [(lo if lo > 0 else hi / 10.0, hi, n) for lo, hi, n in fine]
    marks = {k: percentiles.get(k) for k in ("p50", "p90", "p99", "max")}
    low = min(lo for lo, _, _ in fine)
    high = max(hi for _, hi, _ in fine)
    for v in marks.values():
        if v is not None and v > 0:
            low, high = min(low, v), max(high, v * 1.001)
    if high / low < 10:  # at least one decade, centred on the data
        middle = math.sqrt(low * high)
        low, high = middle / math.sqrt(10), middle * math.sqrt(10)
    decades = math.log10(high) - math.log10(low)
    per_decade = max(1, round(LATENCY_BINS / decades))
    first = math.floor(math.log10(low) * per_decade + 1e-9)
    last = math.ceil(math.log10(high) * per_decade - 1e-9)
    edges = [10 ** (k / per_decade) for k in range(first, last + 1)]
    counts = [0] * (len(edges) - 1)
    for lo, hi, n in fine:
        k = math.floor(math.log10(math.sqrt(lo * hi)) * per_decade) - first
        counts[min(max(k, 0), len(counts) - 1)] += n
    total = sum(n for _, _, n in fine)
    present = [f"{k} {_ms(v)}" for k, v in marks.items() if v is not None]
    label = (f"Latency of {total:,} answered lookups, log scale in milliseconds"
             + (": " + ", ".join(present) if present else ""))
    salt = ("latency", tuple(buckets), tuple(sorted(marks.items())))

    def draw(fig: Figure) -> None:
        ax = fig.add_axes((0.075, 0.2, 0.9, 0.74))
        peak = max(counts)
        log_y = peak / min(c for c in counts if c) >= 100
        base = 0.6 if log_y else 0.0
        values = [c if c else base for c in counts]
        ax.stairs(values, edges, baseline=base, fill=True, color=_QUERIES, alpha=0.55,
                  linewidth=0)
        ax.stairs(values, edges, baseline=base, color=_QUERIES, linewidth=0.8)
        ax.set_xscale("log")
        # A bin of room at each end: a bar that ends on the edge of the axes has half its
        # outline clipped and reads as cut off, and the last bar holds the slowest answers.
        room = 10 ** (1 / per_decade)
        low_x, high_x = edges[0] / room, edges[-1] * room
        ax.set_xlim(low_x, high_x)
        rows = _place_labels(ax, marks, low_x, high_x)
        if log_y:
            ax.set_yscale("log")
            ax.set_ylim(base, peak * 10 ** (0.25 + 0.35 * rows))
            ax.set_ylabel("answered lookups per bin (log)")
        else:
            ax.set_ylim(0, peak * (1.1 + 0.14 * rows))
            ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
            ax.set_ylabel("answered lookups per bin")
        ax.yaxis.set_major_formatter(FuncFormatter(_count_tick))
        ax.yaxis.set_minor_formatter(NullFormatter())
        subs = (1.0,) if decades > 2.5 else (1.0, 2.0, 5.0)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.xaxis.set_major_formatter(FuncFormatter(_ms_tick))
        ax.xaxis.set_minor_formatter(NullFormatter())
        _style(ax)
        ax.set_xlabel("latency (ms, log scale)")

    return _render("latency", (9.0, 3.0), draw, label, salt)


def _place_labels(ax: Axes, marks: Mapping[str, float | None], low: float, high: float) -> int:
    """Draw the percentile lines and their labels, stacking labels that would overlap.

    Returns the number of label rows used, so the caller can leave room above the bars.
    """
    span = math.log10(high) - math.log10(low)
    row_ends: list[float] = []  # per row, the right end of its last label (axes fraction)
    for key, v in marks.items():
        if v is None:
            continue
        x = min(max(v, low), high)  # 0 ms sits at the left edge of a log axis
        text = f"{key} {_ms(v)}"
        width = 0.0075 * len(text) + 0.01  # about 4.3 pt per character of 7.5 pt text
        fx = (math.log10(x) - math.log10(low)) / span
        left_of_line = fx + width > 0.99
        lo_end = fx - width if left_of_line else fx
        row = next((r for r, end in enumerate(row_ends) if end < lo_end - 0.005), None)
        if row is None:
            row = len(row_ends)
            row_ends.append(0.0)
        row_ends[row] = max(row_ends[row], lo_end + width)
        color = _PERCENTILE_COLORS[key]
        ax.axvline(x, color=color, linewidth=0.9, linestyle=(0, (3, 2)))
        ax.text(x, 0.97 - 0.1 * row, f" {text} " if not left_of_line else f"{text} ",
                transform=ax.get_xaxis_transform(), ha="right" if left_of_line else "left",
                va="top", color=color, fontsize=7.5,
                bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "alpha": 0.8,
                      "linewidth": 0})
    return len(row_ends)


def _ms(v: float) -> str:
    """A latency in milliseconds with the precision that matters at its size."""
    if v >= 100:
        return f"{v:,.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    if v >= 1:
        return f"{v:.2f} ms"
    return f"{v:.3g} ms" if v > 0 else "0 ms"


def _ms_tick(v: float, _pos: int | None = None) -> str:
    return f"{v:,.0f}" if v >= 1 else f"{v:g}"


# -- response codes -----------------------------------------------------------------------


def rcode_svg(rcodes: Mapping[str, int]) -> str:
    """Response codes of matched responses as horizontal bars, the most frequent on top.

    Each bar is labelled with its count and share; NOERROR is grey, failures are warm
    colours (NXDOMAIN amber, SERVFAIL and REFUSED red, anything else orange).
    """
    rows = sorted(((n, name) for name, n in rcodes.items() if n > 0),
                  key=lambda r: (-r[0], r[1]))
    if not rows:
        return empty_svg("No matched responses")
    total = sum(n for n, _ in rows)
    label = "Response codes of {:,} matched responses: {}".format(
        total, ", ".join(f"{name} {n:,}" for n, name in rows))
    salt = ("rcode", tuple(rows))

    def draw(fig: Figure) -> None:
        height = fig.get_figheight()
        ax = fig.add_axes((0.17, 0.25 / height, 0.8, 1 - 0.45 / height))
        ys = range(len(rows))
        # A bar at least a few pixels long, so that 3 REFUSED among 100,000 answers still
        # shows its colour; the label beside it gives the true count.
        ax.barh(ys, [max(n, rows[0][0] * 0.008) for n, _ in rows], height=0.62,
                color=[_RCODE_COLORS.get(name, _OTHER_RCODE) for _, name in rows])
        ax.set_yticks(list(ys), [name for _, name in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)  # the largest on top
        peak = rows[0][0]
        ax.set_xlim(0, peak * 1.3)
        for y, (n, _) in zip(ys, rows, strict=True):
            ax.text(n + peak * 0.012, y, f"{n:,} ({_share(n, total)})", va="center",
                    ha="left", color=_INK, fontsize=7.5)
        for side in ("top", "right", "bottom"):
            ax.spines[side].set_visible(False)
        ax.spines["left"].set_color(_AXIS)
        ax.tick_params(axis="y", length=0, labelsize=8, labelcolor=_INK, pad=5)
        ax.xaxis.set_visible(False)

    return _render("rcode", (6.0, 0.35 * len(rows) + 1.0), draw, label, salt)


def _share(n: int, total: int) -> str:
    pct = 100.0 * n / total
    if pct >= 99.95 or pct == 0:
        return f"{pct:.0f}%"
    return f"{pct:.1f}%" if pct >= 0.1 else "<0.1%"


# -- placeholder --------------------------------------------------------------------------


def empty_svg(message: str) -> str:
    """A small placeholder saying why there is no chart, in the charts' own look."""
    text = html.escape(message, quote=True)
    fonts = ", ".join(f"'{f}'" for f in _FONTS) + ", sans-serif"
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 648 48" width="100%" '
        f'style="max-width:864px;height:auto" role="img" aria-label="{text}" '
        'class="pcapdns-chart pcapdns-empty">'
        f"<title>{text}</title>"
        '<rect x="0.5" y="0.5" width="647" height="47" rx="3" fill="#fafafa" stroke="#dddddd"/>'
        f'<text x="324" y="28" text-anchor="middle" fill="{_MUTED}" '
        f'style="font-size:11px;font-family:{html.escape(fonts, quote=True)}">{text}</text>'
        "</svg>"
    )


# -- shared -------------------------------------------------------------------------------


def _style(ax: Axes, *, right: bool = False) -> None:
    """Light grid behind the data, no box: the spines that carry a scale, nothing else."""
    ax.set_axisbelow(True)
    ax.grid(True, axis="y", which="major")
    ax.grid(True, axis="x", which="major", color="#f0f0f0")
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(right)
    ax.tick_params(which="both", direction="out")


def _count_tick(v: float, _pos: int | None = None) -> str:
    return f"{v:,.0f}"


def _render(kind: str, size: tuple[float, float], draw: Callable[[Figure], None],
            label: str, salt: object) -> str:
    digest = hashlib.sha256(repr(salt).encode()).hexdigest()[:12]
    with _RENDER_LOCK, matplotlib.style.context("default"), mpl.rc_context(
            {**_RC, "svg.hashsalt": f"pcapdns-{kind}-{digest}"}):
        fig = Figure(figsize=size, dpi=72)
        FigureCanvasSVG(fig)
        draw(fig)
        buf = io.StringIO()
        fig.savefig(buf, format="svg",
                    metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return _finish(buf.getvalue(), kind, label)


_GEOMETRY = re.compile(r' (d|x|y|width|height|transform)="([^"]*)"')
_NUMBER = re.compile(r"-?\d+\.\d+")


def _finish(svg: str, kind: str, label: str) -> str:
    """matplotlib's SVG document -> a compact element to put inline in a page."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    # matplotlib's <style> says "*{stroke-linejoin: round; ...}", which inline in a page
    # would apply to every SVG on it; the same values as attributes on the root inherit to
    # this chart only.
    svg = re.sub(r'\s*<style type="text/css">.*?</style>', "", svg, flags=re.S)
    svg = re.sub(r"\s*<defs>\s*</defs>", "", svg)
    # Group ids (figure_1, axes_1, ...) are never referenced and would repeat in every
    # chart: drop them. The referenced ones (clip paths, markers) get the kind as prefix.
    used = set(re.findall(r'(?:url\(#|href="#)([^)"]+)', svg))
    svg = re.sub(r' id="([^"]+)"',
                 lambda m: f' id="{kind}-{m[1]}"' if m[1] in used else "", svg)
    svg = re.sub(r'(url\(#|href="#)', rf"\g<1>{kind}-", svg)
    svg = re.sub(r' transform="rotate\(-0 [^"]*\)"', "", svg)
    svg = _GEOMETRY.sub(lambda m: f' {m[1]}="{_compact(m[2])}"', svg)
    svg = re.sub(r">\s+<", "><", svg).strip()
    header = re.match(r'<svg [^>]*viewBox="0 0 ([\d.]+) ([\d.]+)"[^>]*>', svg)
    assert header is not None, "matplotlib wrote an SVG root without a viewBox"
    width, height = float(header[1]), float(header[2])
    text = html.escape(label, quote=True)
    root = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'viewBox="0 0 {width:g} {height:g}" width="100%" '
        # The viewBox is in points; at 96 px per inch the text is the intended 10-11 px.
        f'style="max-width:{width * 4 / 3:.0f}px;height:auto" role="img" aria-label="{text}" '
        f'stroke-linejoin="round" stroke-linecap="butt" class="pcapdns-chart pcapdns-{kind}">'
        f"<title>{text}</title>"
    )
    return root + svg[header.end():]


def _compact(value: str) -> str:
    """Coordinates to a tenth of a point (a seventh of a pixel), whitespace collapsed."""

    def one(m: re.Match[str]) -> str:
        text = f"{float(m[0]):.1f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text

    return " ".join(_NUMBER.sub(one, value).split())
