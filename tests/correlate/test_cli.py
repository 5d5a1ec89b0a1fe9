"""``pcapdns correlate``: exit codes, one-line errors, outputs that never overwrite an
input."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pcapdns.cli import main
from tests.conftest import SAMPLES

CLIENT = str(SAMPLES / "two-points-lost.pcap")
SERVER = str(SAMPLES / "two-points-lost.server.pcap")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_text_starts_with_the_verdict() -> None:
    code, out, err = run("correlate", "--client", CLIENT, "--server", SERVER)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        "verdict: 3 of 5 client lookups got no answer: 1 lost before reaching the server; "
        "1 reached the server and got no answer from it; 1 answered by the server, the "
        "answer lost on the way back.")
    assert lines[3].startswith("clock offset (server - client): +12.5"), lines[3]
    assert lines[4] == ("fates: answered 2, lost_before_server 1, lost_at_server 1, "
                        "lost_after_server 1, unknown 0")
    assert "egress-drop.example.test A from 10.250.1.10" in out
    assert err == ""


def test_json_document() -> None:
    code, out, _ = run("correlate", "--client", CLIENT, "--server", SERVER,
                       "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == "pcapdns.correlation/1"
    assert abs(doc["clock_offset_s"] - 12.5) <= doc["clock_offset"]["error_bound_s"] + 1e-6
    assert set(doc["clock_offset"]) >= {"pairs", "error_bound_s", "spread_s", "method"}
    assert list(doc["fates"]) == ["answered", "lost_before_server", "lost_at_server",
                                  "lost_after_server", "unknown"]
    assert [lk["fate"] for lk in doc["lookups"]] == [
        "lost_before_server", "lost_at_server", "lost_after_server"]
    assert set(doc["inputs"]) == {"client", "server"}


def test_output_and_html_files(tmp_path: Path) -> None:
    out, page = tmp_path / "c.json", tmp_path / "c.html"
    code, stdout, err = run("correlate", "--client", CLIENT, "--server", SERVER,
                            "--format", "json", "-o", str(out), "--html", str(page))
    assert code == 0, err
    assert stdout == ""
    assert json.loads(out.read_text())["schema"] == "pcapdns.correlation/1"
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_several_files_per_side(tmp_path: Path) -> None:
    code, out, err = run("correlate", "--client", CLIENT, "--client", CLIENT,
                         "--server", SERVER, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["fates"]["lost_at_server"] == 1


def test_missing_file_is_one_line_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pcap"
    code, out, err = run("correlate", "--client", CLIENT, "--server", str(missing))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and str(missing) in err and err.startswith("pcapdns: "), err


def test_not_a_capture_is_one_line_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_text("not a capture at all\n")
    code, out, err = run("correlate", "--client", str(junk), "--server", SERVER)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and str(junk) in err, err


def test_refuses_to_overwrite_an_input(tmp_path: Path) -> None:
    copy = tmp_path / "server.pcap"
    copy.write_bytes(Path(SERVER).read_bytes())
    before = copy.read_bytes()
    for option in ("-o", "--html"):
        code, _, err = run("correlate", "--client", CLIENT, "--server", str(copy),
                           option, str(copy))
        assert code == 2, err
        assert err == f"pcapdns: {copy}: is one of the inputs; refusing to overwrite\n"
        assert copy.read_bytes() == before


def test_both_sides_are_required() -> None:
    code, _, err = run("correlate", "--client", CLIENT)
    assert code == 2 and "--server" in err


def test_readme_example_is_real_output() -> None:
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(readme) if "$ pcapdns correlate" in line)
    shown = []
    for line in readme[start + 2:]:
        if line.strip() == "...":
            break
        shown.append(line.strip())
    _, out, _ = run("correlate", "--client", CLIENT, "--server", SERVER)
    assert shown and shown == out.splitlines()[:len(shown)], (shown, out)
