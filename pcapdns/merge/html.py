"""The cluster -> one self-contained HTML page (``pcapdns merge --html``).

Built like the analysis report (pcapdns.report.html): one jinja2 template with autoescaping
on and the report's stylesheet inlined. Every string read from the documents (node names,
addresses, DNS names, paths) goes through autoescaping and nothing captured is marked
safe; the page has no script at all, and its Content-Security-Policy forbids any.
"""

from __future__ import annotations

from pcapdns import __version__
from pcapdns.merge import MIN_NODES, Cluster
from pcapdns.merge.text import verdict
from pcapdns.report.html import environment, stylesheet
from pcapdns.report.model import _shown_command

#: Rows shown per table; the JSON document has them all.
ROWS = 50


def render(c: Cluster, command: str = "pcapdns merge") -> str:
    """The page for ``c``, as text."""
    env = environment()
    css = stylesheet()
    tone, sentence = verdict(c)
    t = c.totals
    figures = (
        ("nodes", f"{len(c.nodes):,}", ""),
        ("lookups", f"{t['lookups']:,}", ""),
        ("failed", f"{t['lookups_failed']:,}", "bad" if t["lookups_failed"] else ""),
        ("nodes failing at once", f"{len(c.windows):,} windows", "bad" if c.windows else ""),
    )
    return env.get_template("cluster.html.j2").render(
        c=c, rows=ROWS, tone={"none": "neutral"}.get(tone, tone), verdict=sentence,
        figures=figures, decap=any(c.tunnels.values()), min_nodes=MIN_NODES,
        command=_shown_command(command),
        version=__version__, css=css)
