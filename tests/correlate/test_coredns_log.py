"""``--coredns-log`` on ``pcapdns correlate``: the log is joined to the server side's
queries, and each lost lookup's server-side copy says what CoreDNS logged for it.

CoreDNS cannot run here (no package, no Go toolchain), so the log is written by the test
in the ``log`` plugin's default format from the real server capture of the
``two-points-lost`` sample: one line for each query the server answered on the wire. The
query whose answer never left the server (``server-drop``) has no line.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pcapdns.analysis import analyze
from pcapdns.cli import main
from pcapdns.coredns_log import index
from pcapdns.correlate import correlate, document, text
from pcapdns.dns import names
from tests.conftest import SAMPLES

CLIENT = SAMPLES / "two-points-lost.pcap"
SERVER = SAMPLES / "two-points-lost.server.pcap"


def _log_of_server_side(path: Path) -> Path:
    lines = ["[INFO] plugin/reload: Running configuration SHA512 = 0f00"]
    for lk in analyze([str(SERVER)], keep_lookups=True).lookups or ():
        for t in lk.attempts:
            q, r = t.query, t.response
            if r is None:
                continue
            took = r.time - q.time
            lines.append(
                f'[INFO] {q.src}:{q.sport} - {q.id} "{names.qtype_name(q.qtype)} IN '
                f'{q.qname}. udp 40 false 512" {names.rcode_name(r.rcode)} qr,aa,rd 56 '
                f"{took:.9f}s")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_each_lost_attempt_says_what_coredns_logged(tmp_path: Path) -> None:
    log = index.load([str(_log_of_server_side(tmp_path / "coredns.log"))])
    c = correlate([str(CLIENT)], [str(SERVER)], coredns_log=log)
    assert c.server.coredns_log is not None and c.client.coredns_log is None
    doc = document.build(c)
    assert doc["coredns_log"]["joined"] == 4, doc["coredns_log"]
    by_name = {lk["qname"]: lk for lk in doc["lookups"]}
    after = by_name["return-drop.example.test"]["attempts"]
    assert all(a["server_coredns_log"]["logged"] is True
               and a["server_coredns_log"]["rcode"] == "NOERROR" for a in after), after
    at = by_name["server-drop.example.test"]["attempts"]
    assert all(a["server_coredns_log"]["logged"] is False for a in at), at
    before = by_name["egress-drop.example.test"]["attempts"]
    assert all(a["server_coredns_log"] is None for a in before), before
    out = text.render(c)
    assert "server side CoreDNS log: 4 query lines" in out, out
    assert "CoreDNS logged NOERROR in" in out and "not in CoreDNS's log" in out, out


def test_without_a_log_the_document_says_null() -> None:
    doc = document.build(correlate([str(CLIENT)], [str(SERVER)]))
    assert doc["coredns_log"] is None
    assert all("server_coredns_log" not in a for lk in doc["lookups"] for a in lk["attempts"])


def test_the_option_is_repeatable_and_a_missing_log_is_one_line(tmp_path: Path) -> None:
    log = _log_of_server_side(tmp_path / "coredns.log")
    empty = tmp_path / "other.log"
    empty.write_text("[INFO] plugin/reload: nothing\n")
    runner = CliRunner()
    r = runner.invoke(main, ["correlate", "--client", str(CLIENT), "--server", str(SERVER),
                             "--coredns-log", str(log), "--coredns-log", str(empty),
                             "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [f["path"] for f in doc["coredns_log"]["files"]] == [str(log), str(empty)]
    missing = tmp_path / "nope.log"
    r = runner.invoke(main, ["correlate", "--client", str(CLIENT), "--server", str(SERVER),
                             "--coredns-log", str(missing)])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0], r.stderr


def test_a_log_given_as_the_output_is_refused(tmp_path: Path) -> None:
    log = _log_of_server_side(tmp_path / "coredns.log")
    before = log.read_bytes()
    r = CliRunner().invoke(main, ["correlate", "--client", str(CLIENT), "--server",
                                  str(SERVER), "--coredns-log", str(log), "-o", str(log)])
    assert r.exit_code == 2 and log.read_bytes() == before, r.output


def test_the_page_shows_what_coredns_logged(tmp_path: Path) -> None:
    from pcapdns.correlate import html

    log = index.load([str(_log_of_server_side(tmp_path / "coredns.log"))])
    page = html.render(correlate([str(CLIENT)], [str(SERVER)], coredns_log=log))
    assert "CoreDNS log (server side)" in page
    assert "arrived at the server; CoreDNS logged NOERROR in" in page
    assert "arrived at the server; not in CoreDNS&#39;s log" in page
