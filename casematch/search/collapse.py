"""Recurring incidents: near-identical cases fold into one match, the best-resolved one.

"The same incident" is judged on the problem text alone (the vectors also hold the
resolution, which differs between write-ups of one incident): character-trigram Jaccard,
which tolerates "fails"/"failing" and punctuation. Each case's trigrams and their bit
sketch are `casematch.storage.sketches`; the sketches are stored with the cases.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from casematch.cases import Case
from casematch.storage.sketches import Shingles, problem_shingles
from casematch.storage.store import DECODED_CASES, CaseStore

# A case's collapse sketch and the number of bits it sets.
Sketch = tuple[int, int]


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


def collapse(ranked: list[tuple[int, float]], threshold: float | None, k: int,
             sketches: Mapping[int, Sketch],
             read_cases: Callable[[Sequence[int]], Mapping[int, Case]]) -> list[Group]:
    """Fold near-identical cases into the best-ranked one, until `k` groups exist.

    Only the top `collapse_window(k)` candidates are scanned, each against the groups kept
    so far. `sketches` holds every scanned candidate's (`sketches_of`): most pairs are
    ruled out by their sketches alone, and only the rest are read (`read_cases`, rowids ->
    cases) for their visibility and exact trigram Jaccard.
    """
    if threshold is None:
        return [Group(r, s, [r]) for r, s in ranked[:k]]
    groups: list[Group] = []
    kept: list[tuple[int, int, int]] = []  # each kept group's rowid, sketch, bits set

    def same_incident(a: int, b: int) -> bool:
        cases = read_cases([a, b])
        # Only cases visible to the same people fold together: a private case must never
        # hide a public one behind it (or ride along inside a public match).
        return (cases[a].visibility == cases[b].visibility
                and _jaccard(_case_shingles(cases[a])[0], _case_shingles(cases[b])[0])
                >= threshold)

    for rowid, score in ranked[:collapse_window(k)]:
        sketch, count = sketches[rowid]
        similar = next((i for i, (kept_rowid, kept_sketch, kept_count) in enumerate(kept)
                        if _possibly_same(kept_sketch, kept_count, sketch, count, threshold)
                        and same_incident(kept_rowid, rowid)), None)
        if similar is not None:
            groups[similar].members.append(rowid)
        elif len(groups) < k:
            groups.append(Group(rowid, score, [rowid]))
            kept.append((rowid, sketch, count))
    return groups


def collapse_window(k: int) -> int:
    return 3 * k + 10


def sketches_of(store: CaseStore, rowids: Sequence[int]) -> dict[int, Sketch]:
    """The collapse sketch of each of `rowids`: stored with the case, or computed from it
    in a generation written before sketches were stored."""
    found = store.sketches(rowids)
    missing = [r for r in rowids if r not in found]
    for rowid, case in store.cases_by_rowid(missing).items():
        _, sketch, count = _case_shingles(case)
        found[rowid] = (sketch, count)
    return found


# The sketch's Jaccard differs from the exact one only by hash collisions, which mostly
# raise it. With ~400 trigrams per text in 4,096 bits, over the 2,522 pairs at exact
# Jaccard >= 0.55 among 816 GitBugs reports, it fell below the exact one by 0.007 at
# most. Pairs below the threshold by more than this margin are not compared exactly.
SKETCH_MARGIN = 0.15


def _case_shingles(case: Case) -> Shingles:
    return _cached_shingles(case.title, case.problem)


@functools.lru_cache(maxsize=DECODED_CASES)
def _cached_shingles(title: str, problem: str) -> Shingles:
    # Pairs that may be the same incident come back query after query. The read-only
    # store hands back the same decoded case objects, so the key's string hashes are
    # already computed, and bounded as the store's decoded cases are, the keys hold hardly
    # any text the store does not.
    return problem_shingles(title, problem)


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
