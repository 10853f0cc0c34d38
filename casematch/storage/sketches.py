"""What a case's problem looks like to collapse: its character trigrams and a bit sketch.

Collapse (`casematch.search.collapse`) folds near-identical cases into one match, judged on
the problem text alone by trigram Jaccard. Most pairs of candidates are far apart, which
their sketches alone show; only the few that may be the same incident need the exact sets.
A sketch depends on the case's text only, so the writer computes it once and stores it
beside the case (`CaseStore.sketches`): a search then reads 512 bytes a candidate instead
of decoding the case and building its trigrams (~85 us a case, most of a collapse over
candidates no earlier query had brought back).
"""

from __future__ import annotations

import numpy as np

# How much of a problem is compared to detect a recurring incident.
COLLAPSE_CHARS = 400

# The stored sketches' scheme: a sketch written under another one (other bits, another
# hash) is not read, and is computed again from the case.
SKETCH_SCHEME = 1

# A trigram is its three code points packed into one int64 (21 bits each), so a set is a
# sorted numpy array: built in half the time of a frozenset of substrings (~90 against
# ~190 us for a 400-character text), and the same set.
# A sketch is the trigrams hashed into SKETCH_BITS bits, kept as a Python int: a collapse
# compares each of its ~40 candidates with up to k kept groups, and an AND +
# `int.bit_count` of two 4,096-bit ints is ~0.5 us a pair, where one numpy expression over
# the kept rows cost ~15 us a candidate (benchmarks/RESULTS.md, "Warm query on the peers'
# index").
Shingles = tuple[np.ndarray, int, int]  # (sorted distinct trigrams, sketch, bits set)
SKETCH_BITS = 1 << 12
SKETCH_BYTES = SKETCH_BITS // 8
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the top bits are well mixed
_SKETCH_SHIFT = np.uint64(64 - SKETCH_BITS.bit_length() + 1)


def problem_shingles(title: str, problem: str) -> Shingles:
    """The trigrams and sketch of a case's compared text (its title, then its problem)."""
    return shingles(compared_text(f"{title} {problem}"))


def compared_text(text: str) -> str:
    """The first COLLAPSE_CHARS of `text`, lower-cased, whitespace runs made one space."""
    # Normalising a whole long report to keep 400 characters was most of the cost of a
    # collapse; a prefix gives the same characters whenever it leaves enough of them
    # (lower-casing and splitting work character by character from the start).
    head = " ".join(text[:4 * COLLAPSE_CHARS].lower().split())
    if len(head) <= COLLAPSE_CHARS:
        head = " ".join(text.lower().split())
    return head[:COLLAPSE_CHARS]


def shingles(text: str) -> Shingles:
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32).astype(np.int64)
    if len(points) < 3:  # as `text[0:3]`: a short text is one trigram, itself
        points = np.concatenate([points, np.zeros(3 - len(points), np.int64)])
    grams = np.sort(points[:-2] << 42 | points[1:-1] << 21 | points[2:])
    # Distinct by hand: np.unique's first call imports numpy.ma, ~10 ms of a cold query.
    grams = grams[np.concatenate(([True], grams[1:] != grams[:-1]))]
    grams.flags.writeable = False  # shared through caches
    bits = np.zeros(SKETCH_BITS, dtype=bool)
    bits[(grams.astype(np.uint64) * _GOLDEN) >> _SKETCH_SHIFT] = True
    return grams, int.from_bytes(np.packbits(bits).tobytes(), "little"), int(bits.sum())


def sketch_to_bytes(sketch: int) -> bytes:
    return sketch.to_bytes(SKETCH_BYTES, "little")


def sketch_from_bytes(data: bytes) -> int:
    return int.from_bytes(data, "little")
