"""Recurring incidents: near-identical cases fold into one match, the best-resolved one.

"The same incident" is judged on the problem text alone (the vectors also hold the
resolution, which differs between write-ups of one incident): character-trigram Jaccard,
which tolerates "fails"/"failing" and punctuation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from casematch.cases import Case, Visibility

# How much of a problem is compared to detect a recurring incident.
COLLAPSE_CHARS = 400


@dataclass
class Group:
    """A representative case and the near-identical cases folded into it."""

    rowid: int
    score: float
    members: list[int] = field(default_factory=list)


def resolution_quality(case: Case) -> tuple[bool, bool, float, int]:
    # The representative of a recurring incident: resolved, with a written fix, the most
    # recent fix (it reflects today's product), then the fuller write-up.
    when = case.resolved_at or case.created_at
    return (case.resolved, bool(case.resolution), when.timestamp() if when else 0.0,
            len(case.resolution))


def collapse(ranked: list[tuple[int, float]], cases: dict[int, Case],
             threshold: float | None, k: int) -> list[Group]:
    """Fold near-identical cases into the best-ranked one, until `k` groups exist.

    "The same incident" is judged on the problem text alone (the vectors also hold the
    resolution, which differs between write-ups of one incident): character-trigram
    Jaccard, which tolerates "fails"/"failing" and punctuation. Only the top `3k + 10`
    candidates are scanned, and most pairs are ruled out by a bit sketch of their trigrams.
    """
    if threshold is None:
        return [Group(r, s, [r]) for r, s in ranked[:k]]
    groups: list[Group] = []
    # The kept groups' trigram arrays, visibilities and sketches (one row each), so that a
    # candidate is told apart from all of them by one numpy expression.
    grams_of: list[np.ndarray] = []
    visibility_of: list[Visibility] = []
    sketches = np.empty((k, SKETCH_WORDS), dtype=np.uint64)
    counts = np.empty(k, dtype=np.int64)
    for rowid, score in ranked[:collapse_window(k)]:
        grams, sketch, count = _trigrams(cases[rowid])
        # Only cases visible to the same people fold together: a private case must never
        # hide a public one behind it (or ride along inside a public match).
        visibility = cases[rowid].visibility
        kept = len(groups)
        possible = np.flatnonzero(_possibly_same(sketches[:kept], counts[:kept], sketch, count,
                                                 threshold)).tolist() if kept else []
        similar = next((i for i in possible if visibility_of[i] == visibility
                        and _jaccard(grams_of[i], grams) >= threshold), None)
        if similar is not None:
            groups[similar].members.append(rowid)
        elif kept < k:
            groups.append(Group(rowid, score, [rowid]))
            grams_of.append(grams)
            visibility_of.append(visibility)
            sketches[kept], counts[kept] = sketch, count
    return groups


def collapse_window(k: int) -> int:
    return 3 * k + 10


# Trigram sets of a case, with a bit sketch of them: hashed into SKETCH_BITS bits, so that
# most pairs are told apart by a popcount of their sketches' AND instead of set operations.
# A trigram is its three code points packed into one int64 (21 bits each), so a set is a
# sorted numpy array: built in half the time of a frozenset of substrings (~90 against
# ~190 us for a 400-character text), and the same set.
# A sketch is SKETCH_WORDS uint64 words, and its popcount is counted once per text: a
# candidate is compared with every kept group in one vectorised AND + popcount instead of
# a Python loop over the pairs (with the prefix normalisation below, collapse took ~0.88
# of its time on the 1,076 GitBugs reports; benchmarks/RESULTS.md, "Warm query on the
# peers' index").
_Shingles = tuple[np.ndarray, np.ndarray, int]
SKETCH_BITS = 1 << 14
SKETCH_WORDS = SKETCH_BITS // 64
# The sketch's Jaccard differs from the exact one only by hash collisions: with ~400
# trigrams per text in 16,384 bits, a few hundredths at most. Pairs below the threshold by
# more than this margin are not compared exactly.
SKETCH_MARGIN = 0.15
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the top bits are well mixed
_SKETCH_SHIFT = np.uint64(64 - SKETCH_BITS.bit_length() + 1)


def _trigrams(case: Case) -> _Shingles:
    return _shingles(compared_text(f"{case.title} {case.problem}"))


def compared_text(text: str) -> str:
    """The first COLLAPSE_CHARS of `text`, lower-cased, whitespace runs made one space."""
    # Normalising a whole long report to keep 400 characters was most of the cost of a
    # collapse; a prefix gives the same characters whenever it leaves enough of them
    # (lower-casing and splitting work character by character from the start).
    head = " ".join(text[:4 * COLLAPSE_CHARS].lower().split())
    if len(head) <= COLLAPSE_CHARS:
        head = " ".join(text.lower().split())
    return head[:COLLAPSE_CHARS]


@functools.lru_cache(maxsize=8192)
def _shingles(text: str) -> _Shingles:
    # The same top cases come back query after query; their sets were most of collapse.
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32).astype(np.int64)
    if len(points) < 3:  # as `text[0:3]`: a short text is one trigram, itself
        points = np.concatenate([points, np.zeros(3 - len(points), np.int64)])
    grams = np.sort(points[:-2] << 42 | points[1:-1] << 21 | points[2:])
    # Distinct by hand: np.unique's first call imports numpy.ma, ~10 ms of a cold query.
    grams = grams[np.concatenate(([True], grams[1:] != grams[:-1]))]
    bits = np.zeros(SKETCH_BITS, dtype=bool)
    bits[(grams.astype(np.uint64) * _GOLDEN) >> _SKETCH_SHIFT] = True
    sketch = np.packbits(bits).view(np.uint64)
    for shared in (grams, sketch):  # shared through the cache
        shared.flags.writeable = False
    return grams, sketch, int(bits.sum())


def _possibly_same(sketches: np.ndarray, counts: np.ndarray, sketch: np.ndarray, count: int,
                   threshold: float) -> np.ndarray:
    """Which rows of `sketches` may reach `threshold` with `sketch`: the sketches' Jaccard
    is within SKETCH_MARGIN of it (or both sketches are empty). Only those get the exact
    Jaccard; measured at 1,076 GitBugs reports, exact Jaccards of every pair were 9 ms of
    a 27 ms search, and nearly all pairs are far apart, which the sketches alone show."""
    common = np.bitwise_count(sketches & sketch).sum(axis=1, dtype=np.int64)
    union = counts + count - common
    result: np.ndarray = (union == 0) | (common >= (threshold - SKETCH_MARGIN) * union)
    return result


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sorted, distinct trigram arrays."""
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)
