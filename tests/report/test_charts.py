"""The report's charts: inline SVG elements that parse, repeat byte for byte, stay small,
never share an id with the chart next to them, and still say something for odd inputs."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import matplotlib as mpl
import pytest

from pcapdns.dns.names import RCODES
from pcapdns.latency import LatencyHistogram
from pcapdns.report.charts import empty_svg, latency_svg, rcode_svg, timeline_svg
from tests.conftest import ROOT

SVG = "{http://www.w3.org/2000/svg}"
START = 1714600000.0  # 2024-05-01 21:46:40 UTC
MAX_BYTES = 100_000


def _parse(svg: str) -> ET.Element:
    assert svg.startswith("<svg ") and svg.endswith("</svg>")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("width") == "100%"
    assert re.fullmatch(r"0 0 [\d.]+ [\d.]+", root.get("viewBox") or "")
    assert root.get("role") == "img" and root.get("aria-label")
    assert root[0].tag == f"{SVG}title" and root[0].text == root.get("aria-label")
    return root


def _text(svg: str) -> str:
    return " ".join(t.strip() for t in ET.fromstring(svg).itertext() if t.strip())


def _ids(svg: str) -> list[str]:
    return [e.get("id", "") for e in ET.fromstring(svg).iter() if e.get("id")]


def _histogram(values) -> LatencyHistogram:
    return LatencyHistogram.of(list(values))


def _busy_day() -> LatencyHistogram:
    """Fast cache hits, slower upstream answers, and a few 5 s timeout retries."""
    values = [0.0002 * 1.0005**i for i in range(6000)]  # 0.2 ms .. 4 ms
    values += [0.02 * 1.002**i for i in range(500)]
    values += [5.0 + i / 1000 for i in range(5)]
    return _histogram(values)


def _charts() -> dict[str, str]:
    queries = [200 + i % 37 for i in range(720)]
    failures = [1 if i in (100, 101, 500) else 0 for i in range(720)]
    h = _busy_day()
    return {
        "timeline": timeline_svg(START, 5.0, queries, failures, responses_late=[0] * 720),
        "latency": latency_svg(h.buckets(), h.summary_ms()),
        "rcode": rcode_svg({"NOERROR": 9000, "NXDOMAIN": 800, "SERVFAIL": 9, "REFUSED": 1}),
    }


# -- every chart --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["timeline", "latency", "rcode"])
def test_chart_is_an_accessible_inline_svg_element(kind):
    root = _parse(_charts()[kind])
    assert root.get("class") == f"pcapdns-chart pcapdns-{kind}"
    # No document-wide <style>: inline, it would restyle every other SVG on the page.
    assert root.find(f".//{SVG}style") is None


def test_same_input_gives_byte_identical_svg():
    assert _charts() == _charts()


def test_ids_are_unique_within_and_across_charts_and_every_reference_resolves():
    seen: set[str] = set()
    for svg in _charts().values():
        ids = _ids(svg)
        assert len(ids) == len(set(ids))
        assert not seen & set(ids)
        seen |= set(ids)
        for ref in re.findall(r'(?:url\(#|href="#)([^)"]+)', svg):
            assert ref in ids


def test_text_stays_text_in_the_page_fonts():
    svg = _charts()["rcode"]
    assert "<text" in svg and "sans-serif" in svg
    assert "NOERROR" in _text(svg) and "SERVFAIL" in _text(svg)


def test_rendering_leaves_matplotlib_settings_alone():
    before = dict(mpl.rcParams)
    _charts()
    assert dict(mpl.rcParams) == before


def test_renders_in_threads_as_it_does_alone():
    alone = _charts()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: _charts(), range(4)))
    assert all(r == alone for r in results)


def test_importing_and_rendering_uses_no_pyplot_and_no_gui_backend():
    code = (
        "import sys\n"
        "from pcapdns.report import charts\n"
        "charts.rcode_svg({'NOERROR': 1})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "backends = {m for m in sys.modules if m.startswith('matplotlib.backends.backend_')}\n"
        "allowed = {'matplotlib.backends.backend_' + b for b in ('svg', 'mixed', 'agg')}\n"
        "assert backends <= allowed, backends\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# -- timeline -----------------------------------------------------------------------------


def test_timeline_labels_axes_with_units_and_utc_times():
    text = _text(_charts()["timeline"])  # 720 buckets of 5 s, plotted in pairs
    assert "queries per 10 s" in text
    assert "failed lookups, late responses per 10 s" in text
    assert "time (UTC), 2024-05-01" in text
    assert "21:50:00" in text


def test_timeline_of_ten_thousand_buckets_is_summed_to_a_round_width_and_stays_small():
    n = 10_000
    queries = [1000 + (i * 7919) % 4000 for i in range(n)]
    failures = [(i * 31) % 3 for i in range(n)]
    svg = timeline_svg(START, 3.0, queries, failures)
    _parse(svg)
    assert len(svg) < MAX_BYTES
    assert "queries per 1 min" in _text(svg)  # 17 buckets of 3 s would be 51 s
    assert f"{sum(queries):,} queries" in _parse(svg).get("aria-label", "")


def test_timeline_across_midnight_gives_the_date_with_the_first_tick_of_each_day():
    midnight = 1714694400.0  # 2024-05-03 00:00:00 UTC
    svg = timeline_svg(midnight - 3 * 3600, 60.0, [10] * 360, [0] * 360)
    text = _text(svg)
    assert "2024-05-02" in text and "2024-05-03" in text
    assert "time (UTC)" in text and "time (UTC)," not in text


def test_timeline_of_a_single_sub_second_bucket():
    svg = timeline_svg(START + 0.5, 0.25, [7], [0])
    assert "queries per 250 ms" in _text(svg)
    assert "21:46:40.50" in _text(svg)


def test_timeline_where_every_query_failed():
    svg = timeline_svg(START, 1.0, [5, 3, 0, 8], [5, 3, 0, 8])
    _parse(svg)
    assert "16 failed lookups" in _parse(svg).get("aria-label", "")


def test_timeline_without_queries_is_a_placeholder():
    svg = timeline_svg(START, 1.0, [], [])
    assert "pcapdns-empty" in svg and "No queries" in _text(svg)


@pytest.mark.parametrize("kwargs", [
    {"step": 1.0, "failures": [0]},
    {"step": 1.0, "failures": [0, 0], "responses_late": [0]},
    {"step": 0.0, "failures": [0, 0]},
])
def test_timeline_rejects_series_that_do_not_line_up(kwargs):
    late = kwargs.pop("responses_late", None)
    with pytest.raises(ValueError):
        timeline_svg(START, kwargs["step"], [1, 2], kwargs["failures"], responses_late=late)


# -- latency ------------------------------------------------------------------------------


def test_histogram_buckets_are_sorted_bounds_around_each_value():
    h = _histogram([0.010, 0.010, 0.002, 5.0])
    buckets = h.buckets()
    assert [n for _, _, n in buckets] == [1, 2, 1]
    for (lo, hi, _), v in zip(buckets, [0.002, 0.010, 5.0], strict=True):
        assert lo <= v < hi and hi / lo == pytest.approx(1.001)
    assert LatencyHistogram().buckets() == []


def test_latency_of_fourteen_thousand_fine_buckets_is_rebinned_and_small():
    h = _histogram([1e-6 * 1.001 ** (i + 0.5) for i in range(13_800)])  # 1 us .. ~1,000 s
    assert len(h.buckets()) > 13_000
    svg = latency_svg(h.buckets(), h.summary_ms())
    _parse(svg)
    assert len(svg) < MAX_BYTES
    steps = re.findall(r'<path d="M [^"]*"', svg)
    # The histogram outline: one vertical and one horizontal move per bin, 40-60 bins.
    assert 80 <= max(p.count(" L ") for p in steps) <= 130


def _axes_and_bars(svg: str) -> tuple[tuple[float, float], tuple[float, float, float]]:
    """The latency chart's plot area (left, right) and its histogram (left, right, outline
    width), in the SVG's coordinates: the clip rectangle of the bars is the axes' box."""
    root = _parse(svg)
    clips = {c.get("id"): c.find(f"{SVG}rect") for c in root.iter(f"{SVG}clipPath")}
    bars = [p for p in root.iter(f"{SVG}path") if _QUERIES in (p.get("style") or "")]
    assert bars, "no histogram in the latency chart"
    xs: list[float] = []
    outline = 0.0
    for path in bars:
        # "M x y L x y ...": every other number is an x.
        numbers = [float(v) for v in re.findall(r"-?[\d.]+", path.get("d", ""))]
        xs += numbers[0::2]
        width = re.search(r"stroke-width: ([\d.]+)", path.get("style", ""))
        outline = max(outline, float(width[1]) if width else 0.0)
        ref = re.fullmatch(r"url\(#([^)]+)\)", path.get("clip-path", ""))
        assert ref is not None and clips.get(ref[1]) is not None
        rect = clips[ref[1]]
    x, w = float(rect.get("x", 0)), float(rect.get("width", 0))
    return (x, x + w), (min(xs), max(xs), outline)


_QUERIES = "#7f9cb8"


@pytest.mark.parametrize("values", [
    [0.0037, 0.0037, 0.0041, 5.012, 0.0038, 0.0036, 0.0039],  # a lost race: 5 s outlier
    [0.0002 * 1.0005**i for i in range(6000)] + [5.0 + i / 1000 for i in range(5)],
    [1e-6 * 1.001 ** (i + 0.5) for i in range(13_800)],
    [0.010] * 30,
    [0.0, 0.000001, 0.002],
], ids=["race", "busy-day", "nine-decades", "one-bucket", "zero"])
def test_latency_bars_lie_inside_the_plot(values):
    h = _histogram(values)
    (left, right), (first, last, outline) = _axes_and_bars(latency_svg(h.buckets(),
                                                                       h.summary_ms()))
    # The last bar, outline included, ends short of the plot's right edge by a visible
    # gap (a point at least), so a slowest answer never looks cut off; so does the first.
    assert last + outline / 2 + 1.0 <= right, (last, right)
    assert first - outline / 2 - 1.0 >= left, (first, left)


def test_latency_marks_each_known_percentile():
    h = _busy_day()
    text = _text(latency_svg(h.buckets(), h.summary_ms()))
    for key in ("p50", "p90", "p99", "max"):
        assert key in text
    assert "latency (ms, log scale)" in text
    assert "max 5,004 ms" in text


def test_latency_leaves_out_percentiles_that_are_none():
    svg = latency_svg([(0.010, 0.01001, 30)], {"p50": 10.0, "p90": None, "p99": None,
                                               "max": 10.0})
    text = _text(svg)
    assert "p50 10.0 ms" in text and "max 10.0 ms" in text
    assert "p90" not in text and "p99" not in text


def test_latency_of_zero_and_one_microsecond_answers():
    h = _histogram([0.0, 0.000001, 0.000001, 0.002])
    svg = latency_svg(h.buckets(), h.summary_ms())
    _parse(svg)
    assert "p50 0.001 ms" in _text(svg) and "max 2.00 ms" in _text(svg)
    svg = latency_svg([(0.0, 0.000001, 3)], {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0})
    assert "p50 0 ms" in _text(svg)


def test_latency_without_answers_is_a_placeholder():
    svg = latency_svg([], {"p50": None, "p90": None, "p99": None, "max": None})
    assert "pcapdns-empty" in svg


# -- response codes -----------------------------------------------------------------------


def test_rcodes_are_sorted_by_count_and_labelled_with_counts():
    text = _text(rcode_svg({"SERVFAIL": 12, "NOERROR": 98_000, "NXDOMAIN": 1_988}))
    assert text.index("NOERROR") < text.index("NXDOMAIN") < text.index("SERVFAIL")
    assert "98,000 (98.0%)" in text and "12 (<0.1%)" in text


def test_noerror_is_neutral_and_failures_are_warm():
    svg = rcode_svg({"NOERROR": 10, "SERVFAIL": 5})
    fills = re.findall(r"fill: (#[0-9a-f]{6})", svg)
    assert "#8c9aa8" in fills and "#c0392b" in fills


def test_every_rcode_at_once_stays_small():
    svg = rcode_svg({name: 10 * (i + 1) for i, name in enumerate(RCODES.values())})
    _parse(svg)
    assert len(svg) < MAX_BYTES
    assert all(name in _text(svg) for name in RCODES.values())


def test_a_single_rcode():
    svg = rcode_svg({"REFUSED": 4})
    _parse(svg)
    assert "REFUSED" in _text(svg) and "4 (100%)" in _text(svg)


def test_no_rcodes_is_a_placeholder():
    assert "pcapdns-empty" in rcode_svg({})
    assert "pcapdns-empty" in rcode_svg({"NOERROR": 0})


# -- placeholder --------------------------------------------------------------------------


def test_empty_chart_escapes_its_message():
    svg = empty_svg('no "answers" <yet> & none')
    root = _parse(svg)
    assert root.get("aria-label") == 'no "answers" <yet> & none'
    assert _text(svg).startswith('no "answers" <yet> & none')
