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
from casematch.storage.store import DECODED_CASES

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
    # Each kept group's trigrams, sketch, sketch popcount and visibility, in group order.
    kept: list[tuple[np.ndarray, int, int, Visibility]] = []
    for rowid, score in ranked[:collapse_window(k)]:
        case = cases[rowid]
        grams, sketch, count = _case_shingles(case.title, case.problem)
        # Only cases visible to the same people fold together: a private case must never
        # hide a public one behind it (or ride along inside a public match).
        visibility = case.visibility
        similar = next((i for i, (kept_grams, kept_sketch, kept_count, kept_visibility)
                        in enumerate(kept)
                        if _possibly_same(kept_sketch, kept_count, sketch, count, threshold)
                        and kept_visibility == visibility
                        and _jaccard(kept_grams, grams) >= threshold), None)
        if similar is not None:
            groups[similar].members.append(rowid)
        elif len(groups) < k:
            groups.append(Group(rowid, score, [rowid]))
            kept.append((grams, sketch, count, visibility))
    return groups


def collapse_window(k: int) -> int:
    return 3 * k + 10


# Trigram sets of a case, with a bit sketch of them: hashed into SKETCH_BITS bits, so that
# most pairs are told apart by a popcount of their sketches' AND instead of set operations.
# A trigram is its three code points packed into one int64 (21 bits each), so a set is a
# sorted numpy array: built in half the time of a frozenset of substrings (~90 against
# ~190 us for a 400-character text), and the same set.
# A sketch is a Python int: a collapse compares each of its ~40 candidates with up to k
# kept groups, and an AND + `int.bit_count` of two 4,096-bit ints is ~0.5 us a pair, where
# one numpy expression over the kept rows cost ~15 us a candidate (benchmarks/RESULTS.md,
# "Warm query on the peers' index").
_Shingles = tuple[np.ndarray, int, int]
SKETCH_BITS = 1 << 12
# The sketch's Jaccard differs from the exact one only by hash collisions, which mostly
# raise it. With ~400 trigrams per text in 4,096 bits, over the 2,522 pairs at exact
# Jaccard >= 0.55 among 816 GitBugs reports, it fell below the exact one by 0.007 at
# most. Pairs below the threshold by more than this margin are not compared exactly.
SKETCH_MARGIN = 0.15
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the top bits are well mixed
_SKETCH_SHIFT = np.uint64(64 - SKETCH_BITS.bit_length() + 1)


@functools.lru_cache(maxsize=DECODED_CASES)
def _case_shingles(title: str, problem: str) -> _Shingles:
    # The same top cases come back query after query; normalising their text and building
    # their sets was most of a collapse. The read-only store hands back the same decoded
    # case objects, so the key's string hashes are already computed, and bounded as the
    # store's decoded cases are, the keys hold hardly any text the store does not.
    return _shingles(compared_text(f"{title} {problem}"))


def compared_text(text: str) -> str:
    """The first COLLAPSE_CHARS of `text`, lower-cased, whitespace runs made one space."""
    # Normalising a whole long report to keep 400 characters was most of the cost of a
    # collapse; a prefix gives the same characters whenever it leaves enough of them
    # (lower-casing and splitting work character by character from the start).
    head = " ".join(text[:4 * COLLAPSE_CHARS].lower().split())
    if len(head) <= COLLAPSE_CHARS:
        head = " ".join(text.lower().split())
    return head[:COLLAPSE_CHARS]


def _shingles(text: str) -> _Shingles:
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32).astype(np.int64)
    if len(points) < 3:  # as `text[0:3]`: a short text is one trigram, itself
        points = np.concatenate([points, np.zeros(3 - len(points), np.int64)])
    grams = np.sort(points[:-2] << 42 | points[1:-1] << 21 | points[2:])
    # Distinct by hand: np.unique's first call imports numpy.ma, ~10 ms of a cold query.
    grams = grams[np.concatenate(([True], grams[1:] != grams[:-1]))]
    grams.flags.writeable = False  # shared through the cache
    bits = np.zeros(SKETCH_BITS, dtype=bool)
    bits[(grams.astype(np.uint64) * _GOLDEN) >> _SKETCH_SHIFT] = True
    return grams, int.from_bytes(np.packbits(bits).tobytes(), "little"), int(bits.sum())


def _possibly_same(sketch_a: int, count_a: int, sketch_b: int, count_b: int,
                   threshold: float) -> bool:
    """Whether two texts may reach `threshold`: their sketches' Jaccard is within
    SKETCH_MARGIN of it (or both sketches are empty). Only those get the exact Jaccard;
    measured at 1,076 GitBugs reports, exact Jaccards of every pair were 9 ms of a 27 ms
    search, and nearly all pairs are far apart, which the sketches alone show."""
    common = (sketch_a & sketch_b).bit_count()
    union = count_a + count_b - common
    return union == 0 or common >= (threshold - SKETCH_MARGIN) * union


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sorted, distinct trigram arrays."""
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)
