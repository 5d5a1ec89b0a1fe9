"""Report -> one self-contained HTML file.

Self-contained means no request to any other file or host: the stylesheet and the script
are inlined, the charts are inline SVG, and a Content-Security-Policy forbids everything
else (``default-src 'none'``). The policy admits the page's own script by its hash only,
so even a name that slipped past escaping could not run as script. Everything from the
capture goes through jinja2's autoescaping; only the charts (markup matplotlib made from
numbers and our own labels) and the script are inserted as they are.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup, escape

from pcapdns.output import outfile
from pcapdns.report import charts
from pcapdns.report.model import Report


def environment() -> jinja2.Environment:
    """The jinja2 environment of every page (the report, the correlation, the cluster):
    autoescaping on, undefined names an error, and the filters that show captured text."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pcapdns.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["code"] = _code
    env.filters["name"] = _name
    env.filters["address"] = _address
    env.filters["pod"] = _pod
    return env


def stylesheet() -> Markup:
    """The pages' shared stylesheet, to inline."""
    return Markup(_asset("report.css"))


def render(report: Report) -> str:
    """The page for ``report``, as text."""
    script = _asset("report.js")
    page = environment().get_template("report.html.j2").render(
        r=report,
        css=stylesheet(),
        script=script,
        script_hash="sha256-" + base64.b64encode(
            hashlib.sha256(script.encode()).digest()).decode(),
        charts=_charts(report),
        show_iface=any(e.interface for g in report.groups for e in g.rows),
    )
    return page


def write(report: Report, path: str) -> None:
    """Write the page to ``path`` as ``pcapdns.output.outfile.write`` does: a regular file
    is replaced atomically (a reader never sees half a report, a failure leaves an earlier
    file as it was), a device or FIFO is written in place, a symlink is followed. A new
    file is created 0600.

    Raises:
        OSError: the target cannot be written.
    """
    text = render(report)
    outfile.write(path, lambda fh: fh.write(text))


def _charts(r: Report) -> dict[str, Any]:
    start, step, queries, failed = r.timeline
    return {
        "timeline": Markup(charts.timeline_svg(start, step, queries, failed)),
        "latency": Markup(
            charts.latency_svg(r.latency_buckets, r.latency_ms) if r.latency_buckets
            else charts.empty_svg("No answered lookups")
        ),
        "rcodes": Markup(
            charts.rcode_svg(r.rcodes) if r.rcodes else charts.empty_svg("No responses")
        ),
    }


_TICKS = re.compile(r"`([^`]+)`")


def _code(text: str) -> Markup:
    """Escape ``text`` and show its `backquoted` parts as code."""
    return Markup(_TICKS.sub(r"<code>\1</code>", str(escape(text))))


def _name(qname: str) -> Markup:
    """Escape a DNS name and let it wrap after its dots rather than inside a label."""
    return Markup(str(escape(qname)).replace(".", ".<wbr>"))


def _address(address: str) -> Markup:
    """Escape an address (``ip`` or ``ip:port``) and let an IPv6 one wrap after every
    fourth colon, or every second where the page is narrow (the stylesheet shows the
    ``narrow`` breaks on paper and small screens only): at full length it is wider than a
    table column should be, and a break inside a group of hex digits would misread. IPv4
    addresses stay on one line."""
    groups = str(escape(address)).split(":")
    if len(groups) <= 2:
        return Markup(":".join(groups))
    breaks = {1: ':<wbr class="narrow">', 3: ":<wbr>"}
    return Markup("".join(g + breaks.get(i % 4, ":") for i, g in enumerate(groups[:-1]))
                  + groups[-1])


def _pod(address: str, pods: Mapping[str, str]) -> Markup:
    """``namespace/pod`` of ``address`` (``ip`` or ``ip:port``) on a line of its own under
    it, escaped; nothing when the pods listing does not name it (or there is none)."""
    if not pods or not address:
        return Markup("")
    label = pods.get(address)
    if label is None and ":" in address:
        label = pods.get(address.rsplit(":", 1)[0])
    if label is None:
        return Markup("")
    return Markup('<span class="pod">') + escape(label) + Markup("</span>")


def _asset(name: str) -> str:
    return resources.files("pcapdns.report").joinpath("templates", name).read_text("utf-8")
