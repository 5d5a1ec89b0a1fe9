"""Our message counts and response pairing agree with tshark's, capture by capture.

For every bundled sample and every capture of the public corpus (../shared/corpus, when
present): tshark's DNS messages on the DNS port equal our queries + responses + dropped
duplicates + malformed messages, and the response pairs agree: every pair we make is a
pair tshark makes (``dns.response_in``, two-pass), and every response tshark pairs, we pair.

tshark keeps every copy of a message captured twice (``tcpdump -i any``); its frames are
mapped to the copy we kept before comparing.

tshark pairs a retransmitted query and its original with the same response; we give the
response to the latest attempt only, which is one of tshark's pairs, so the check holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pcapdns.analysis import analyze
from pcapdns.config import AnalysisConfig
from pcapdns.output.document import build
from tests.conftest import CORPUS, SAMPLES
from tests.tshark import TSHARK, tshark_view

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

#: Corpus captures where tshark and pcapdns differ on purpose, and why.
KNOWN_DIFFERENCES = {
    "dnscap__dnso1tcp-bighole.pcap": (
        "a TCP stream with lost segments: tshark stops splitting it into messages after the "
        "gap (3 queries); pcapdns skips the acknowledged gap and finds all 38"
    ),
    "dnscap__do1t-nosyn-1nolen.pcap": (
        "a TCP stream without its SYN: pcapdns finds the query at frame 7 that tshark misses"
    ),
    "arkime__dns-flags0110.pcap": (
        "the response is written before its query, stamped 36 ms after it: pcapdns pairs "
        "them in time order, tshark pairs in file order only"
    ),
    "ndpi__dns-invalid-chars.pcap": (
        "the response's question differs from the query's, so by definition it does not "
        "match (tshark pairs on ID alone)"
    ),
}
#: Pairs tshark does not make because the capture's snap length cut the messages: its DNS
#: dissector stops with an exception at the cut before it records the pair. Counts are
#: still compared.
SNAPLEN_CUT_PAIRS = {
    # 176 of 182 and 202 bytes captured: the cut falls in the EDNS OPT record of the query
    # and of the answer, inside Geneve inside VXLAN; header and question are whole.
    "zeek__tunnels__geneve-vxlan-dns-truncated.pcap": {(1, 2)},
}
UNSUPPORTED_LINK_TYPES = {
    "tcpdump__LINKTYPE_PKTAP.pcap", "tcpdump__nflog.pcap", "zeek__dns-inverse-query.pcap",
    "zeek__radiotap.pcap", "zeek__wlanmon.pcap",
}


def _captures() -> list[Path]:
    found = sorted(SAMPLES.glob("*.pcap"))
    if CORPUS.is_dir():
        found += sorted(
            p for p in CORPUS.iterdir()
            if (p.name.endswith((".pcap", ".pcapng", ".pcap.gz")) and ".expected." not in p.name
                and p.name not in UNSUPPORTED_LINK_TYPES)
        )
    return found


@pytest.mark.parametrize("capture", _captures(), ids=lambda p: p.name)
def test_counts_and_pairs_agree_with_tshark(capture: Path) -> None:
    if capture.name in KNOWN_DIFFERENCES:
        pytest.skip(KNOWN_DIFFERENCES[capture.name])
    port = 8053 if "8053" in capture.name else 53
    result = analyze([str(capture)], AnalysisConfig(ports=frozenset({port})), keep_lookups=True)
    doc = build(result)
    s = doc["summary"]
    theirs = tshark_view(capture, port)
    # tshark keeps every copy of a duplicated message; map its frames to the kept copy.
    kept = {int(k): v for k, v in doc["duplicate_frames"].items()}
    their_pairs = {(kept.get(q, q), kept.get(r, r)) for q, r in theirs.pairs}
    assert theirs.queries + theirs.responses == (
        s["queries"] + s["responses"] + s["duplicates"] + s["malformed"]
    )
    # An answer from an address the query was not sent to (nor DNAT'd to) is paired on
    # purpose, as the evidence of an unexpected source the client's socket dropped; tshark
    # pairs within one conversation only and leaves it unpaired.
    ours = {
        (t["query_frame"], t["response_frame"])
        for t in doc["transactions"]
        if t["response_frame"] is not None and t["leg_fault"] != "unexpected_source"
    }
    ours_compared = ours - SNAPLEN_CUT_PAIRS.get(capture.name, set())
    assert ours_compared <= their_pairs, (
        f"pairs tshark does not make: {sorted(ours_compared - their_pairs)}")
    missing = {r for _, r in their_pairs} - {r for _, r in ours}
    assert not missing, f"responses tshark pairs and we do not: {sorted(missing)}"
