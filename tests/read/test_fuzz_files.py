"""Damaged capture files: whatever the bytes, the analysis either reads what it can or
stops with an InputError naming the file; it never raises anything else."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from pcapdns.analysis import analyze
from pcapdns.errors import InputError
from tests.conftest import SAMPLES
from tests.craft import Interface, eth, query, response, write_pcapng_interfaces

ROUNDS = 60


def _sources(tmp_path: Path) -> list[bytes]:
    pcap = (SAMPLES / "tc-then-tcp-retry.pcap").read_bytes()
    sll2 = (SAMPLES / "dnat-service-any.pcap").read_bytes()
    ng = write_pcapng_interfaces(tmp_path / "ng.pcapng", [Interface(1), Interface(1, 9)], [
        (0, 1.0, bytes(eth(query()))),
        (1, 1.001, bytes(eth(response()))),
    ]).read_bytes()
    return [pcap, sll2, ng, gzip.compress(pcap, mtime=0)]


@pytest.mark.parametrize("seed", range(4))
def test_damaged_files_never_escape(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    sources = _sources(tmp_path)
    for i in range(ROUNDS):
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(data))
            if rng.random() < 0.7:
                data[pos] = rng.randrange(256)
            else:
                del data[pos:pos + rng.randint(1, 64)]
        path = tmp_path / f"damaged-{seed}-{i}.pcap"
        path.write_bytes(bytes(data))
        try:
            analyze([str(path)])
        except InputError as e:
            assert str(path) in str(e)
