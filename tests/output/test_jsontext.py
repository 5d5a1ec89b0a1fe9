"""pcapdns.output.jsontext writes what json.dumps(indent=2, ensure_ascii=False) writes."""

from __future__ import annotations

import enum
import json
import random

import pytest

from pcapdns.output import jsontext


class Level(enum.IntEnum):
    LOW = 1


def _standard(value, newline="\n"):
    return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", newline)


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 2**70, 0.1, -0.0, 1e16, 1.5e-07, float("nan"), float("inf"),
    float("-inf"), "", "plain", 'quote " and \\ backslash', "tab\tnewline\ncontrol\x01\x1f",
    "ünïcødé ✓ 名前", "lone \ud800 surrogate", "\u2028 line separator", [], {}, (), [[]],
    {"a": {}}, {"a": []}, [1, [2, [3, {}]]], ("tuple", 1), {"k": (1, 2)},
    {1: "int key"}, {None: 1, True: 2, 1.5: 3}, {"level": Level.LOW}, Level.LOW,
    {"nested": {"deeper": {"deepest": [None, True, 1.0, "x"]}}},
])
def test_the_same_text_as_json_dumps(value) -> None:
    assert jsontext.dumps(value) == _standard(value)
    assert jsontext.dumps(value, "\n    ") == _standard(value, "\n    ")


def _random_value(rng: random.Random, depth: int = 0):
    kinds = ["str", "int", "float", "none", "bool"] + (["list", "dict"] if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return "".join(chr(rng.choice([rng.randrange(0, 0x80), rng.randrange(0x80, 0x3000)]))
                       for _ in range(rng.randrange(0, 12)))
    if kind == "int":
        return rng.randrange(-10**20, 10**20)
    if kind == "float":
        return rng.choice([rng.random() * 10 ** rng.randrange(-30, 30), -rng.random()])
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    return {str(_random_value(rng, 9)): _random_value(rng, depth + 1)
            for _ in range(rng.randrange(0, 5))}


def test_random_documents_match() -> None:
    rng = random.Random(20261201)
    for i in range(2000):
        value = _random_value(rng)
        assert jsontext.dumps(value, "\n  ") == _standard(value, "\n  "), (i, value)
