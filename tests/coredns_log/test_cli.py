"""``--coredns-log`` on ``analyze`` and ``report`` through click's CliRunner, on the
timeout-dropped sample with a log written here in CoreDNS's format for the queries its
server answered (CoreDNS cannot run on the machine the suite runs on)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pcapdns.cli import main
from tests.conftest import SAMPLES

CAPTURE = str(SAMPLES / "timeout-dropped.pcap")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def logs(tmp_path: Path) -> tuple[str, str]:
    """Two logs (as of two replicas): the answered queries split between them."""
    golden = json.loads((SAMPLES / "timeout-dropped.golden.json").read_text())
    answered = [t for t in golden["transactions"] if t["response_frame"] is not None]
    lines = [f'[INFO] {t["client"]}:{t["client_port"]} - {t["id"]} "{t["qtype"]} IN '
             f'{t["qname"]}. udp 40 false 512" {t["rcode"]} qr,aa,rd 80 0.000123s'
             for t in answered]
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text(".:53\nCoreDNS-1.11.1\n" + "\n".join(lines[:2]) + "\n")
    b.write_text("\n".join(lines[2:]) + "\nnot a log line\n")
    return str(a), str(b)


def test_repeatable_option_joins_both_logs(tmp_path: Path) -> None:
    a, b = logs(tmp_path)
    code, out, err = run("analyze", "--format", "json", "--transactions",
                         "--coredns-log", a, "--coredns-log", b, CAPTURE)
    assert code == 0, err
    doc = json.loads(out)
    s = doc["coredns_log"]
    assert [f["path"] for f in s["files"]] == [a, b]
    assert (s["query_lines"], s["other_plugin_lines"], s["unparsable"]) == (4, 2, 1)
    assert s["unparsable_examples"] == [{"line": f"{b}:3", "text": "not a log line"}]
    assert (s["joined"], s["captured_not_logged"], s["times_used"]) == (4, 4, False)
    assert s["failed_lookups"] == {"not_logged": 2}
    logged = [t["coredns_log"]["logged"] for t in doc["transactions"]]
    assert logged.count(True) == 4 and logged.count(False) == 4
    assert any("cannot be placed in time" in w for w in doc["warnings"])
    assert "cannot be placed in time" in err


def test_without_a_log_the_section_is_null(tmp_path: Path) -> None:
    code, out, _ = run("analyze", "--format", "json", "--transactions", CAPTURE)
    doc = json.loads(out)
    assert code == 0 and doc["coredns_log"] is None
    assert "coredns_log" not in doc["transactions"][0]


def test_text_summary_has_a_line(tmp_path: Path) -> None:
    a, b = logs(tmp_path)
    code, out, _ = run("analyze", "--coredns-log", a, "--coredns-log", b, CAPTURE)
    assert code == 0
    assert "CoreDNS log: 4 query lines (2 of other plugins, 1 unparsable); joined 4" in out
    assert "failed lookups by what CoreDNS logged: not in CoreDNS's log: 2" in out


def test_unreadable_log_is_one_line_exit_2_and_nothing_written(tmp_path: Path) -> None:
    out_file, html = tmp_path / "out.json", tmp_path / "r.html"
    out_file.write_text("before")
    for bad, problem in [(tmp_path / "missing.log", "cannot read the CoreDNS log"),
                         (tmp_path, "is a directory"),
                         (Path(CAPTURE), "is not a text file")]:
        code, out, err = run("analyze", "--format", "json", "-o", str(out_file),
                             "--coredns-log", str(bad), CAPTURE)
        assert code == 2 and out == "", err
        assert err.count("\n") == 1 and err.startswith(f"pcapdns: {bad}: ") and problem in err
        assert "Traceback" not in err
        assert out_file.read_text() == "before"
        code, _, err = run("report", "-o", str(html), "--coredns-log", str(bad), CAPTURE)
        assert code == 2 and problem in err and not html.exists()


def test_a_log_is_never_an_output(tmp_path: Path) -> None:
    a, _ = logs(tmp_path)
    before = Path(a).read_text()
    code, _, err = run("analyze", "--format", "json", "-o", a, "--coredns-log", a, CAPTURE)
    assert code == 2 and "refusing to overwrite" in err
    assert Path(a).read_text() == before


def test_report_with_a_log(tmp_path: Path) -> None:
    a, b = logs(tmp_path)
    html, js = tmp_path / "r.html", tmp_path / "r.json"
    code, _, err = run("report", "-o", str(html), "--json", str(js), "--coredns-log", a,
                       "--coredns-log", b, CAPTURE)
    assert code == 0, err
    assert json.loads(js.read_text())["coredns_log"]["joined"] == 4
    assert "CoreDNS query log" in html.read_text()
