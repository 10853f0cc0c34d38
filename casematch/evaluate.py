"""Retrieval quality over labelled queries: recall@k, MRR, nDCG@10, threshold calibration.

Queries are JSONL, one object a line: `{"query": "...", "relevant": ["<case id>", ...]}`;
an optional `"exclude"` lists ids to leave out of that query's ranking (leave-one-out
corpora, where the query is itself a case of the index). The metric functions take plain
rankings, so labelled queries from anywhere (e.g. Slack feedback) can be scored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casematch.cases import Filters, LabelledQuery
from casematch.errors import CasematchError

if TYPE_CHECKING:
    from casematch.index import CaseIndex
    from casematch.search import SearchOptions

CUTOFFS = (1, 5, 10)
DEFAULT_TARGET_PRECISION = 0.8



@dataclass(frozen=True, slots=True)
class Ranking:
    """What a search returned for one labelled query: case ids best first, and scores."""

    query: LabelledQuery
    ids: tuple[str, ...]
    scores: tuple[float, ...] = ()

    @property
    def top_score(self) -> float | None:
        return self.scores[0] if self.scores else None

    @property
    def top_is_relevant(self) -> bool:
        return bool(self.ids) and self.ids[0] in self.query.relevant


@dataclass(frozen=True, slots=True)
class Calibration:
    """The lowest score threshold whose answered queries reach `target` precision@1.

    `coverage` is the share of queries whose top score clears the threshold (the rest get
    no suggestion). `threshold` is None when no threshold reaches the target.
    """

    target: float
    threshold: float | None
    precision: float
    coverage: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_precision@1": self.target,
            "threshold": None if self.threshold is None else round(self.threshold, 4),
            "precision@1": round(self.precision, 4),
            "coverage": round(self.coverage, 4),
        }


@dataclass
class EvalReport:
    metrics: dict[str, float]
    queries: int
    missing_relevant: list[str] = field(default_factory=list)
    calibration: Calibration | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: round(value, 4) for name, value in self.metrics.items()}
        out["queries"] = self.queries
        out["missing_relevant"] = {
            "count": len(self.missing_relevant), "examples": self.missing_relevant[:5],
        }
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        return out


# ---- metrics on one ranking -------------------------------------------------------------


def recall_at(ids: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Share of the relevant cases found in the top `k`."""
    wanted = set(relevant)
    return len(wanted.intersection(ids[:k])) / len(wanted) if wanted else 0.0


def reciprocal_rank(ids: Sequence[str], relevant: Iterable[str]) -> float:
    wanted = set(relevant)
    return next((1.0 / rank for rank, i in enumerate(ids, start=1) if i in wanted), 0.0)


def ndcg_at(ids: Sequence[str], relevant: Iterable[str], k: int = 10) -> float:
    """Binary-gain nDCG: log2 discount, ideal = every relevant case at the top."""
    wanted = set(relevant)
    dcg = sum(1.0 / math.log2(rank + 1)
              for rank, i in enumerate(ids[:k], start=1) if i in wanted)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(wanted), k) + 1))
    return dcg / ideal if ideal else 0.0


def score_rankings(rankings: Sequence[Ranking]) -> dict[str, float]:
    """Mean recall@1/5/10, MRR and nDCG@10 over queries."""
    n = len(rankings)
    if n == 0:
        return {**{f"recall@{k}": 0.0 for k in CUTOFFS}, "mrr": 0.0, "ndcg@10": 0.0}
    out = {f"recall@{k}": sum(recall_at(r.ids, r.query.relevant, k) for r in rankings) / n
           for k in CUTOFFS}
    out["mrr"] = sum(reciprocal_rank(r.ids, r.query.relevant) for r in rankings) / n
    out["ndcg@10"] = sum(ndcg_at(r.ids, r.query.relevant, 10) for r in rankings) / n
    return out


def calibrate(rankings: Sequence[Ranking], target: float = DEFAULT_TARGET_PRECISION,
              ) -> Calibration:
    """Lowest top-score threshold at which precision@1 of the answered queries >= target.

    Walk queries from the most to the least confident; precision is measured on every
    prefix, and the longest prefix that still meets the target wins (most coverage).
    """
    scored = sorted((r for r in rankings if r.top_score is not None),
                    key=lambda r: -(r.top_score or 0.0))
    best = Calibration(target, None, 0.0, 0.0)
    correct = 0
    for answered, ranking in enumerate(scored, start=1):
        correct += ranking.top_is_relevant
        # Ties: a threshold cannot separate equal scores, so decide after the last of them.
        following = scored[answered].top_score if answered < len(scored) else None
        if following == ranking.top_score:
            continue
        precision = correct / answered
        if precision >= target:
            best = Calibration(target, ranking.top_score, precision,
                               answered / len(rankings))
    return best


# ---- running labelled queries against an index ------------------------------------------


def labelled_query(data: Mapping[str, Any]) -> LabelledQuery:
    """One query object, from a file line or from Slack feedback (`feedback_queries`)."""
    relevant = data["relevant"]
    return LabelledQuery(
        query=str(data["query"]),
        relevant=tuple(str(r) for r in ([relevant] if isinstance(relevant, str)
                                         else relevant)),
        exclude=tuple(str(e) for e in data.get("exclude") or ()),
    )


def load_queries(path: str | Path) -> list[LabelledQuery]:
    """Read query JSONL; a bad line raises an error naming the file and line."""
    path = Path(path)
    queries = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CasematchError(f"{path}: cannot read queries ({exc.strerror})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            queries.append(labelled_query(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise CasematchError(
                f"{path}:{number}: expected {{\"query\": ..., \"relevant\": [...]}} ({exc!r})"
            ) from exc
    return queries


def rank_queries(index: CaseIndex, queries: Sequence[LabelledQuery], k: int = 10, *,
                 filters: Filters | None = None, options: SearchOptions | None = None,
                 ) -> list[Ranking]:
    rankings = []
    filters = filters or Filters()
    for labelled in queries:
        # Left out inside the search, as if not indexed: fusion then never sees their
        # scores (a query's own report would otherwise set the BM25 scale it is fused on).
        leave_out = replace(filters, exclude=(*filters.exclude, *labelled.exclude))
        matches = index.search(labelled.query, k, filters=leave_out, options=options)
        rankings.append(Ranking(labelled, tuple(m.case.id for m in matches),
                                tuple(m.score for m in matches)))
    return rankings


def evaluate(index: CaseIndex, queries: Sequence[LabelledQuery], k: int = 10, *,
             filters: Filters | None = None, options: SearchOptions | None = None,
             target_precision: float = DEFAULT_TARGET_PRECISION) -> EvalReport:
    """Run every query and score the rankings; relevant ids absent from the index are
    reported (they still count as misses: a label the index cannot satisfy is a finding)."""
    missing = sorted({rid for q in queries for rid in q.relevant if index.get(rid) is None})
    rankings = rank_queries(index, queries, max(k, max(CUTOFFS)), filters=filters,
                            options=options)
    return EvalReport(score_rankings(rankings), len(queries), missing,
                      calibrate(rankings, target_precision))
