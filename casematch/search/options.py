"""How to rank: the options a search takes (the defaults are the measured configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

MODES = ("hybrid", "dense", "lexical")


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """How to rank. The defaults are the measured configuration (benchmarks/RESULTS.md)."""

    # "hybrid" (default), or one retriever alone: the baselines run through this same code.
    mode: str = "hybrid"
    # None: the weight `casematch tune --labels` fitted for the index, else the
    # query-adaptive rule (search.fusion.adaptive_weight).
    lexical_weight: float | None = None
    # BM25 weight of (title, problem, resolution): a new case is matched against past
    # problems first; the resolution is supporting evidence.
    field_weights: tuple[float, float, float] = (2.0, 1.0, 0.5)
    # Cases drawn from each retriever before fusion.
    candidates: int = 50
    # Two cases whose problems are this alike (trigram Jaccard) are one recurring
    # incident, shown once; None: off.
    collapse_above: float | None = 0.7
    # Recency: a case `half_life_days` old counts half as much; None (default) is off.
    half_life_days: float | None = None
    now: datetime | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown search mode {self.mode!r}; use one of {', '.join(MODES)}")


DEFAULT_OPTIONS = SearchOptions()
