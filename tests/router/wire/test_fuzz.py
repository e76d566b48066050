"""Decoder fuzz: random and mutated bytes, whole and truncated at every length.

Every decoder must either succeed or raise the codec's own DecodeError; any
other exception (IndexError, struct.error, OverflowError, ...) fails the test.
A frame that does decode must re-encode to the same bytes (the codec accepts
only canonical encodings), and the forwarding fast path must agree with it.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.fuzz import check, own_seeds, seed_corpus
from router.wire.extension import EXTENSION_FRAME_TYPE
from tests.conftest import vectors_path

# The probes and their invariants live in bench/fuzz.py, shared with the
# coverage-guided (atheris) fuzz target.
CORPUS = seed_corpus(vectors_path())


@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    check(data)


@given(st.binary(max_size=200))
def test_random_bytes_behind_a_valid_header(body: bytes) -> None:
    for frame_type in (*range(6), EXTENSION_FRAME_TYPE):
        total = 10 + len(body)
        check(b"pine" + bytes((0, frame_type, 0, 0)) + total.to_bytes(2, "big") + body)


@pytest.mark.skipif(not CORPUS, reason="reference vectors not found; set $PINEWOOD_VECTORS")
def test_every_truncation_of_every_vector() -> None:
    for sample in CORPUS:
        for cut in range(len(sample) + 1):
            check(sample[:cut])


def test_every_truncation_of_every_extension_frame() -> None:
    for sample in own_seeds():
        for cut in range(len(sample) + 1):
            check(sample[:cut])


@pytest.mark.skipif(not CORPUS, reason="reference vectors not found; set $PINEWOOD_VECTORS")
@given(st.data())
def test_mutated_vectors(data: st.DataObject) -> None:
    sample = bytearray(data.draw(st.sampled_from(CORPUS + own_seeds())))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        at = data.draw(st.integers(0, max(len(sample) - 1, 0)))
        if op == "insert" or not sample:
            sample.insert(at, data.draw(st.integers(0, 255)))
        elif op == "delete":
            del sample[at]
        elif op == "flip":
            sample[at] ^= 1 << data.draw(st.integers(0, 7))
        else:
            sample[at] = data.draw(st.integers(0, 255))
    raw = bytes(sample)
    check(raw)
    cut = data.draw(st.integers(0, len(raw)))
    check(raw[:cut])
