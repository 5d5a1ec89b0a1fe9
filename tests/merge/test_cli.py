"""``pcapdns merge``: outputs, exit codes, one-line errors, outputs that never overwrite
an input."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pcapdns.cli import main
from tests.merge.fleet import documents

DOCS = [str(p) for p in documents()]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_text_starts_with_the_verdict() -> None:
    code, out, err = run("merge", *DOCS)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        "verdict: 13 of 95 lookups failed across the cluster, on 6 of 7 nodes; 1 window of "
        "10 s in which 2 or more nodes failed at once (the worst from "
        "2026-12-02T02:51:10.000000Z: 3 nodes, 3 lookups). Most failing name: "
        "down.example.test A (3).")
    assert lines[2] == "lookups 95: failed 13, undecided at capture end 0; retransmissions 9"
    assert "  10.250.96.10 -> 10.250.3.54  1 queries (2%), 1 failed (100.0%), seen from 1 " \
           "node(s)" in lines
    assert "clients (by client address):" in lines
    assert ("  2026-12-02T02:51:10.000000Z .. 2026-12-02T02:51:20.000000Z  3 failed: node-e 1, "
            "node-f 1, node-g 1") in lines
    assert err == ""


def test_json_document(tmp_path: Path) -> None:
    out = tmp_path / "cluster.json"
    code, stdout, err = run("merge", *DOCS, "--format", "json", "-o", str(out))
    assert (code, stdout, err) == (0, "", "")
    doc = json.loads(out.read_text())
    assert doc["schema"] == "pcapdns.cluster/1"
    assert [i["path"] for i in doc["inputs"]] == DOCS


def test_html_beside_the_text(tmp_path: Path) -> None:
    page = tmp_path / "cluster.html"
    code, out, err = run("merge", *DOCS, "--html", str(page))
    assert code == 0, err
    assert out.startswith("verdict: ")
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_warnings_go_to_stderr(tmp_path: Path) -> None:
    doc = json.loads(Path(DOCS[0]).read_text())
    doc["pcapdns_version"] = "0.0.9"
    older = tmp_path / "older.json"
    older.write_text(json.dumps({**doc, "inputs": []}))
    code, _, err = run("merge", DOCS[1], str(older))
    assert code == 0
    assert err.startswith("pcapdns: warning: documents written by different pcapdns "
                          "versions (0.0.9, 0.1.0)")


def test_bad_inputs_are_one_line_and_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{\"schema\": ")
    for args, message in [
        ((str(tmp_path / "none.json"),),
         f"pcapdns: {tmp_path / 'none.json'}: cannot read: No such file or directory\n"),
        ((str(bad),), f"pcapdns: {bad}: truncated JSON (ends at byte 11)\n"),
        ((DOCS[0], DOCS[0]), f"pcapdns: {DOCS[0]}: the same file as {DOCS[0]}; each "
                             "document is merged once\n"),
    ]:
        code, out, err = run("merge", *args)
        assert (code, out, err) == (2, "", message)


def test_an_input_is_never_overwritten(tmp_path: Path) -> None:
    before = Path(DOCS[0]).read_bytes()
    for option in ("-o", "--html"):
        code, _, err = run("merge", *DOCS, option, DOCS[0])
        assert code == 2
        assert err == f"pcapdns: {DOCS[0]}: is one of the inputs; refusing to overwrite\n"
    assert Path(DOCS[0]).read_bytes() == before
    code, _, err = run("merge", *DOCS, "-o", "-", "--html", "-")
    assert (code, err) == (2, "pcapdns: stdout given for both --output and --html\n")


def test_a_document_is_required() -> None:
    code, _, err = run("merge")
    assert code == 2 and "Missing argument 'DOC.json...'" in err


def test_readme_example_is_real_output(monkeypatch) -> None:
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    readme = (ROOT / "README.md").read_text()
    shown = sorted(str(p.relative_to(ROOT)) for p in documents())
    _, out, _ = run("merge", *shown)
    for line in out.splitlines()[:14]:
        assert line.strip() in readme, line


def test_control_characters_from_a_document_never_reach_the_terminal(tmp_path: Path) -> None:
    doc = json.loads(Path(DOCS[0]).read_text())
    doc["capture"]["node"] = "node-\x1b]0;owned\x07-a"
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(doc))
    code, out, _ = run("merge", str(path))
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out
    assert "  node-\\x1b]0;owned\\x07-a  7 lookups" in out
