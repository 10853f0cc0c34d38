"""Query -> candidates -> filters -> best chunk per case -> `Match`es."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from casematch.cases import Case, Match, first_sentence

if TYPE_CHECKING:
    from casematch.index import CaseIndex

SNIPPET_CHARS = 280


@dataclass(frozen=True, slots=True)
class Filters:
    """Restrict a search. Values within one field are ORed; fields are ANDed."""

    sources: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    resolved_only: bool = True

    @property
    def narrows(self) -> bool:
        return bool(self.sources or self.channels or self.tags or self.since or self.until)


def search(
    index: CaseIndex, text: str, k: int = 5, *, filters: Filters | None = None
) -> list[Match]:
    """The `k` cases closest to `text`; a case scores as its best-matching chunk."""
    filters = filters or Filters()
    text = text.strip()
    if not text or k <= 0 or index.vectors.ntotal == 0:
        return []
    allowed = _allowed_chunks(index, filters)
    if allowed is not None and len(allowed) == 0:
        return []
    query = _embed_query(index, text)
    scores = _dense_scores(index, query, k, allowed)
    ranked = sorted(scores.items(), key=lambda item: -item[1])[:k]
    cases = index.store.cases_by_rowid([rowid for rowid, _ in ranked])
    return [
        Match(case=cases[rowid], score=score, rank=rank, snippet=snippet(cases[rowid]))
        for rank, (rowid, score) in enumerate(ranked, start=1)
    ]


def snippet(case: Case, limit: int = SNIPPET_CHARS) -> str:
    """A short, displayable resolution (never hidden text)."""
    text = " ".join(case.resolution.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def _embed_query(index: CaseIndex, text: str) -> np.ndarray:
    encoder = index.encoder
    pieces = encoder.chunk(text)
    vectors = encoder.encode(pieces)
    if len(vectors) == 1:
        return vectors
    # A long new case: average its windows, then renormalise so inner product stays cosine.
    mean = vectors.mean(axis=0, keepdims=True)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def _allowed_chunks(index: CaseIndex, filters: Filters) -> np.ndarray | None:
    """Chunk ids a search may return, or None when every indexed chunk may be returned."""
    everything_resolved = index.manifest.get("resolved") == index.manifest.get("cases")
    if not filters.narrows and (everything_resolved or not filters.resolved_only):
        return None
    rowids = index.store.filtered_rowids(
        resolved_only=filters.resolved_only,
        sources=filters.sources,
        channels=filters.channels,
        tags=filters.tags,
        since=filters.since.timestamp() if filters.since else None,
        until=filters.until.timestamp() if filters.until else None,
    )
    result: np.ndarray = index.chunk_ids[np.isin(index.chunk_cases, rowids)]
    return result


def _dense_scores(
    index: CaseIndex, query: np.ndarray, k: int, allowed: np.ndarray | None
) -> dict[int, float]:
    """Best inner product per case rowid, for at least `k` cases where that many exist."""
    import faiss

    params: Any = None
    if allowed is not None:
        # Filtering inside the search, not after it: a filter never empties a result list
        # while matching cases exist. The selector must outlive the search (SWIG object).
        selector = faiss.IDSelectorBatch(allowed)
        params = faiss.SearchParameters()
        params.sel = selector
    available = index.vectors.ntotal if allowed is None else len(allowed)
    # Several chunks of one case can crowd the top: widen until k distinct cases show up.
    wanted = min(available, max(4 * k, 16))
    while True:
        distances, ids = index.vectors.search(query, wanted, params=params)
        best: dict[int, float] = {}
        found = ids[0] >= 0
        positions = np.searchsorted(index.chunk_ids, ids[0][found])
        for rowid, score in zip(index.chunk_cases[positions], distances[0][found], strict=True):
            best.setdefault(int(rowid), float(score))
        if len(best) >= k or wanted >= available:
            return best
        wanted = min(available, wanted * 4)


__all__ = ["Filters", "first_sentence", "search", "snippet"]
