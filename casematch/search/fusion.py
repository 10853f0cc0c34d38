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

from collections.abc import Mapping
from dataclasses import dataclass

# Chosen by measurement (benchmarks/quality.py), the same value on every dev set.
LEXICAL_WEIGHT = 0.3


@dataclass(frozen=True, slots=True)
class Candidate:
    """One case drawn by either retriever, with both of its scores."""

    rowid: int
    dense: float  # cosine of the query with the case's best chunk
    lexical: float  # FTS5 BM25 (0 when no query term occurs in the case)


def fuse(candidates: Mapping[int, Candidate], mode: str,
         lexical_weight: float = LEXICAL_WEIGHT) -> dict[int, float]:
    """rowid -> score, higher is closer. `mode` is "hybrid", "dense" or "lexical"."""
    if mode == "dense":
        return {rowid: c.dense for rowid, c in candidates.items()}
    top = max((c.lexical for c in candidates.values()), default=0.0)
    if mode == "lexical":
        return {rowid: c.lexical for rowid, c in candidates.items() if c.lexical > 0}
    scale = lexical_weight / top if top > 0 else 0.0
    return {rowid: c.dense + scale * c.lexical for rowid, c in candidates.items()}
