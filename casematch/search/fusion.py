"""Combining dense and lexical evidence into one score that a threshold can be set on.

The fused score stays in the dense model's cosine units: `cosine + weight * lexical`, where
`lexical` is BM25 divided by the best BM25 among the query's candidates (so in [0, 1]).
Cosine is the part that means the same thing from one query to the next; the lexical
term is a bounded bonus (at most `weight`) for sharing the query's rare words — error
codes, version strings, product names — which is where embeddings are weakest. Plain
reciprocal-rank fusion throws the cosine away and, measured on both dev sets, loses to
dense alone (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# The fixed weight of earlier releases (one value measured on both dev sets); kept as a
# baseline for benchmarks/quality.py --tune.
LEXICAL_WEIGHT = 0.3


@dataclass(frozen=True, slots=True)
class Candidate:
    """One case drawn by either retriever, with both of its scores."""

    rowid: int
    dense: float  # cosine of the query with the case's best chunk
    lexical: float  # FTS5 BM25 (0 when no query term occurs in the case)


def fuse(candidates: Mapping[int, Candidate], mode: str,
         lexical_weight: float | None = None, *, query_terms: int = 0) -> dict[int, float]:
    """rowid -> score, higher is closer. `mode` is "hybrid", "dense" or "lexical".

    `lexical_weight` None: the query-adaptive rule (`adaptive_weight`), which also reads
    `query_terms`, the number of distinct terms of the query (`storage.lexical.query_terms`;
    `retrieve.gather` returns it with the candidates).
    """
    if mode == "dense":
        return {rowid: c.dense for rowid, c in candidates.items()}
    top = max((c.lexical for c in candidates.values()), default=0.0)
    if mode == "lexical":
        return {rowid: c.lexical for rowid, c in candidates.items() if c.lexical > 0}
    weight = adaptive_weight(candidates, query_terms) if lexical_weight is None \
        else lexical_weight
    scale = weight / top if top > 0 else 0.0
    return {rowid: c.dense + scale * c.lexical for rowid, c in candidates.items()}


# The query-adaptive rule (benchmarks/RESULTS.md, "Tuning and fusion"): the lexical bonus
# can reach ADAPTIVE_MAX_WEIGHT and shrinks to nothing as the cosine of BM25's best case
# falls behind the best cosine by AGREEMENT_SPAN of the spread between the best cosine and
# the candidates' 90th percentile. Chosen for the best worst-case gain over dense alone on
# both dev sets, before and after `casematch tune`.
ADAPTIVE_MAX_WEIGHT = 0.1
AGREEMENT_SPAN = 0.25
SPREAD_PERCENTILE = 90
# ... except for a distinctive word match: when BM25's best case scores this share above
# its second (a rare token, such as an error code, that one case alone holds), lexical
# evidence gets DISTINCTIVE_WEIGHT whatever the model thinks of that case.
DISTINCTIVE_MARGIN = 0.45
DISTINCTIVE_WEIGHT = 0.2
# ... in a message of at most this many distinct terms. In a ticket body of fifty or more
# terms, BM25 far ahead of its second reflects many words shared with one other case, not
# one rare token, and the dense model has already weighed that overlap; on GitBugs those
# were the only firings, and they cost MRR after tuning (benchmarks/RESULTS.md,
# "Distinctive matches only in short messages").
DISTINCTIVE_MAX_TERMS = 32


def adaptive_weight(candidates: Mapping[int, Candidate], query_terms: int) -> float:
    """The lexical weight for one query, from how far the dense model agrees with BM25.

    Dynamic Alpha Tuning (Hsu & Tzeng 2025) weighs each retriever per query by how good
    its top result looks to an LLM judge. Here the judge of BM25's top case is the dense
    model itself: when that case is also among the very closest by cosine, the shared rare
    words (error codes, versions, names) are real evidence and may decide between close
    cases; when the model puts it well below its best, the overlap is incidental (log
    lines, boilerplate) and lexical scores are left out. The gap is measured in units of
    the query's own cosine spread, not in raw cosine: a tuned encoder spreads cosines
    differently, and a fixed cosine span measured on the base model let BM25 overrule it.
    """
    if not candidates:
        return 0.0
    lexical = sorted((c.lexical for c in candidates.values()), reverse=True)
    if lexical[0] <= 0:
        return 0.0
    second = lexical[1] if len(lexical) > 1 else 0.0
    distinctive = query_terms <= DISTINCTIVE_MAX_TERMS \
        and (lexical[0] - second) / lexical[0] >= DISTINCTIVE_MARGIN
    lexical_top = max(candidates.values(), key=lambda c: c.lexical)
    cosines = sorted(c.dense for c in candidates.values())
    best = cosines[-1]
    spread = best - _percentile(cosines, SPREAD_PERCENTILE)
    gap = (best - lexical_top.dense) / spread if spread > 0 else float("inf")
    agreement = ADAPTIVE_MAX_WEIGHT * max(0.0, 1.0 - gap / AGREEMENT_SPAN)
    return max(agreement, DISTINCTIVE_WEIGHT if distinctive else 0.0)


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of sorted values (numpy's default method)."""
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# Weights a fit chooses from: 0 (dense alone) up to lexical as strong as the cosine range.
WEIGHT_GRID = tuple(round(0.05 * i, 2) for i in range(21))
# A fitted weight replaces the rule only when it ranks the labels this much better (MRR):
# with tens of labels, smaller differences are noise.
FIT_MARGIN = 0.005
# Fewer labelled queries than this say too little to fit on.
MIN_FIT_QUERIES = 10


def reciprocal_rank(scores: Mapping[int, float], relevant: set[int], cutoff: int = 10) -> float:
    ranked = sorted(scores, key=lambda r: -scores[r])[:cutoff]
    return next((1.0 / n for n, r in enumerate(ranked, start=1) if r in relevant), 0.0)


def fit_weight(queries: Sequence[tuple[Mapping[int, Candidate], set[int], int]]) -> float | None:
    """The fixed lexical weight that ranks labelled queries best (MRR@10), or None when
    the query-adaptive rule does as well (within `FIT_MARGIN`) or there are too few.

    Each query: its candidates, the relevant rowids among them, its number of terms."""
    if len(queries) < MIN_FIT_QUERIES:
        return None

    def mrr(weight: float | None) -> float:
        return sum(reciprocal_rank(fuse(c, "hybrid", weight, query_terms=terms), gold)
                   for c, gold, terms in queries) / len(queries)

    best = max(WEIGHT_GRID, key=mrr)
    return best if mrr(best) > mrr(None) + FIT_MARGIN else None
