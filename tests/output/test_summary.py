"""The summary record: its fields are the document's ``summary`` keys in the document's
order, it cannot be changed once built, and its tables keep the busiest rows."""

from __future__ import annotations

import dataclasses

import pytest

from pcapdns.analysis import analyze
from pcapdns.output import text
from pcapdns.output.document import build
from pcapdns.output.summary import (
    MAX_ROWS,
    ClientRow,
    Latency,
    MalformedExample,
    ServerRow,
    Skipped,
    Summary,
)
from pcapdns.report import model
from tests.conftest import SAMPLES
from tests.craft import analyze_packets, query, response


def _names(record: type) -> list[str]:
    return [f.name for f in dataclasses.fields(record)]


def test_fields_are_the_document_keys_in_order() -> None:
    a = analyze([str(SAMPLES / "aaaa-same-port-race.pcap")])
    doc = build(a)["summary"]
    assert _names(Summary) == list(doc)
    assert _names(Skipped) == list(doc["skipped"])
    assert _names(Latency) == list(doc["latency_ms"])
    assert _names(ServerRow) == list(doc["servers"][0])
    assert _names(ClientRow) == list(doc["clients"][0])
    assert _names(MalformedExample) == ["frame", "problem"]
    assert Summary.of(a).to_json() == doc


def test_times_are_iso_in_the_document_and_seconds_in_the_record() -> None:
    a = analyze([str(SAMPLES / "clean-glibc-getent.pcap")])
    s = Summary.of(a)
    assert s.first_time == a.first_time and s.last_time == a.last_time
    doc = s.to_json()
    assert isinstance(doc["first_time"], str) and doc["first_time"].endswith("Z"), doc
    assert doc["latency_ms"]["p50"] == s.latency_ms.p50


def test_the_record_cannot_be_changed() -> None:
    s = Summary.of(analyze([str(SAMPLES / "servfail-refused.pcap")]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.packets = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.rcodes["NOERROR"] = 0  # type: ignore[index]
    assert list(s.rcodes) == sorted(s.rcodes), "rcodes are in name order"


def test_tables_keep_the_busiest_rows(tmp_path) -> None:
    # MAX_ROWS + 10 servers, one lookup each from a client of its own; the last server
    # gets three more lookups, from one more client, so it is the busiest.
    packets = []
    n = MAX_ROWS + 10
    for i in range(n):
        client, server = f"10.1.{i // 250}.{i % 250 + 1}", f"10.2.{i // 250}.{i % 250 + 1}"
        t = float(i)
        packets += [(t, query("a.example", src=client, dst=server)),
                    (t + 0.01, response("a.example", src=server, dst=client))]
    busiest = server
    for k in range(3):
        t = n + k
        packets += [(t, query(f"b{k}.example", src="10.9.9.9", dst=busiest)),
                    (t + 0.01, response(f"b{k}.example", src=busiest, dst="10.9.9.9"))]
    s = Summary.of(analyze_packets(tmp_path / "many.pcap", packets))
    assert (s.servers_total, len(s.servers)) == (n, MAX_ROWS)
    assert (s.clients_total, len(s.clients)) == (n + 1, MAX_ROWS)
    assert (s.servers[0].server, s.servers[0].lookups) == (busiest, 4)
    assert s.clients[0].client == "10.9.9.9"
    assert len(s.to_json()["servers"]) == MAX_ROWS


def test_the_outputs_show_no_more_rows_than_the_summary_has() -> None:
    # The report's and the terminal's tables are the first rows of the summary's.
    assert model.TABLE_ROWS <= MAX_ROWS
    assert text.TABLE_ROWS <= MAX_ROWS
