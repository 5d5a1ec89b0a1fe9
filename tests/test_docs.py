"""The documentation covers what the program prints."""

from __future__ import annotations

import re
from pathlib import Path

from pcapdns.analysis import analyze
from pcapdns.detect.base import FindingKind
from pcapdns.output.document import build
from tests.craft import query, response, write_eth

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "analysis.md").read_text()


def _documented(name: str) -> bool:
    return re.search(rf"`{re.escape(name)}`", DOC) is not None


def test_every_json_field_is_documented(tmp_path: Path) -> None:
    cap = write_eth(tmp_path / "a.pcap", [(1.0, query()), (1.001, response()),
                                          (2.0, query("x.example", id=9)),
                                          (9.0, query("end.example", id=10))])
    doc = build(analyze([str(cap)], keep_lookups=True))
    names = set(doc) | set(doc["inputs"][0]) | set(doc["summary"])
    names |= set(doc["summary"]["skipped"]) | set(doc["findings"][0])
    names |= set(doc["transactions"][0])
    missing = sorted(n for n in names if not _documented(n))
    assert not missing, f"not in docs/analysis.md: {missing}"


def test_every_coredns_log_field_is_documented() -> None:
    from pcapdns.coredns_log import index

    samples = ROOT / "sample_pcaps"
    log = index.load([str(samples / "coredns-query-log.coredns-ts.log")])
    doc = build(analyze([str(samples / "coredns-query-log.pcap")], keep_lookups=True,
                        coredns_log=log))
    section = doc["coredns_log"]
    names = set(section) | set(section["files"][0]) | set(section["lookups"][0])
    names |= set(section["lookups"][0]["attempts"][0]) | set(section["failed_lookups"])
    names |= set(doc["transactions"][0]["coredns_log"])
    missing = sorted(n for n in names if not _documented(n))
    assert not missing, f"not in docs/analysis.md: {missing}"


def test_every_finding_kind_is_documented() -> None:
    kinds = FindingKind.__args__  # type: ignore[attr-defined]
    missing = [k for k in kinds if not _documented(k)]
    assert not missing


def test_readme_has_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e . && pcapdns analyze sample_pcaps/" in readme
    assert "python3 -m pytest" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    test_line = next(line for line in readme.splitlines() if "python3 -m pytest" in line)
    assert test_line.strip().strip("`").strip() in ci


def test_readme_example_is_real_output() -> None:
    from click.testing import CliRunner

    from pcapdns.cli import main

    readme = (ROOT / "README.md").read_text()
    out = CliRunner().invoke(main, ["analyze", str(ROOT / "sample_pcaps" /
                                                   "aaaa-same-port-race.pcap")]).stdout
    for line in out.splitlines():
        assert line.strip() in readme, line
