"""Query -> dense + lexical candidates (inside the filters) -> fusion -> collapse -> `Match`.

A search reads one opened generation (`casematch.storage.generations.Generation`: the
case store, the vectors and the chunk map) and embeds the query with the encoder it is
given; it never reaches back into the `CaseIndex` that called it.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

from casematch import threads
from casematch.cases import Case, Filters, Match
from casematch.encoders import Encoder
from casematch.search.collapse import (
    collapse,
    collapse_window,
    resolution_quality,
    sketches_of,
)
from casematch.search.fusion import Candidate, fuse
from casematch.search.options import DEFAULT_OPTIONS, SearchOptions
from casematch.storage.generations import Generation
from casematch.storage.lexical import match_expression, query_terms, select_terms

SNIPPET_CHARS = 280


def search(
    generation: Generation, encoder: Encoder, text: str, k: int = 5, *,
    filters: Filters | None = None, options: SearchOptions | None = None,
) -> list[Match]:
    """The `k` cases closest to `text`; a case's dense score is its best-matching chunk."""
    filters = filters or Filters()
    options = options or DEFAULT_OPTIONS
    text = text.strip()
    if not text or k <= 0 or generation.vectors.ntotal == 0:
        return []
    found = gather(generation, encoder, text, max(k, options.candidates), filters, options)
    scores = fuse(found.candidates, options.mode, options.lexical_weight,
                  query_terms=found.query_terms)
    if not scores:
        return []
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    store = generation.store
    if options.half_life_days:
        # Recency can lift any candidate, so every one is read for its date.
        dated = store.cases_by_rowid([r for r, _ in ranked])
        now = options.now or datetime.now(UTC)
        ranked = sorted(((r, s * _decay(dated[r], now, options.half_life_days))
                         for r, s in ranked), key=lambda item: -item[1])
    # Decoding a case costs ~0.03-0.1 ms: collapse reads the stored sketches of the
    # candidates it scans, and only the k matches (and the few pairs their sketches cannot
    # tell apart) are decoded.
    sketches = sketches_of(store, [r for r, _ in ranked[:collapse_window(k)]]) \
        if options.collapse_above is not None else {}
    groups = collapse(ranked, options.collapse_above, k, sketches, store.cases_by_rowid)
    cases = store.cases_by_rowid([r for group in groups[:k] for r in group.members])
    matches = []
    for rank, group in enumerate(groups[:k], start=1):
        members = [cases[r] for r in group.members]
        best = max(members, key=resolution_quality)
        dates = [d for d in (m.created_at for m in members) if d]
        matches.append(Match(
            case=best, score=group.score, rank=rank, snippet=snippet(best),
            duplicates=tuple(m.id for m in members if m is not best),
            last_seen=max(dates) if len(members) > 1 and dates else None,
        ))
    return matches


class Gathered(NamedTuple):
    """A query's candidates, and what fusion needs to know of the query itself."""

    candidates: dict[int, Candidate]
    query_terms: int  # distinct terms of the query (0 in dense mode, which reads none)


def gather(generation: Generation, encoder: Encoder, text: str, n: int, filters: Filters,
           options: SearchOptions) -> Gathered:
    """Up to `n` cases from each retriever, every one scored by both."""
    allowed_cases, allowed = _allowed(generation, filters)
    if allowed is not None and len(allowed) == 0:
        return Gathered({}, 0)
    pending: Future[tuple[list[tuple[int, float]], int]] | None = None
    if options.mode != "dense":
        # Drawn within the same filters as the dense side; `allowed is None` means no
        # filter narrows anything, so the lexical query needs no join either.
        where = filters.sql_args() if allowed is not None else {}
        # The whole lexical side (query terms, lexicon, BM25) runs beside the query
        # embedding and FAISS: SQLite, numpy, ONNX Runtime and FAISS all release the GIL.
        # Within the postings budget its matches are few, so the dense candidates' BM25
        # scores are looked up among them afterwards.
        pending = _background().submit(_lexical_side, generation, text, options, where,
                                       allowed_cases)
    query = _embed_query(encoder, text)
    dense: dict[int, float] = {}
    if options.mode != "lexical":
        dense = _dense_scores(generation, query, n, allowed)
    lexical: dict[int, float] = {}
    terms = 0
    if pending is not None:
        rows, terms = pending.result()
        # The best n beside the dense candidates, and every dense candidate's own score.
        others = 0
        for rowid, score in rows:
            if rowid in dense:
                lexical[rowid] = score
            elif others < n:
                lexical[rowid] = score
                others += 1
    # Lexical mode still reports cosines (for thresholds), at no ranking cost.
    dense.update(_dense_for(generation, query, [r for r in lexical if r not in dense]))
    return Gathered({r: Candidate(r, dense.get(r, 0.0), lexical.get(r, 0.0))
                     for r in dense.keys() | lexical.keys()}, terms)


def _lexical_side(generation: Generation, text: str, options: SearchOptions,
                  where: dict[str, Any], allowed: np.ndarray | None,
                  ) -> tuple[list[tuple[int, float]], int]:
    """(rowid, BM25) of the cases matching the query's chosen terms, best first; and the
    number of distinct terms in the query. `where` (the filters as SQL arguments) and
    `allowed` (the rowids they let through) are empty and None when nothing narrows."""
    store = generation.store
    all_terms = query_terms(text)
    chosen = select_terms(all_terms, store.document_frequencies)
    if not chosen:
        return [], len(all_terms)
    # The stored postings give FTS5's own scores at a fraction of bm25()'s cost; FTS5
    # answers where they cannot (an older generation, a term in too many cases).
    rows = store.bm25([t.stem for t in chosen], weights=options.field_weights,
                      allowed=allowed)
    if rows is None:
        rows = store.lexical_search(match_expression([t.raw for t in chosen]),
                                    weights=options.field_weights, **where)
    return rows, len(all_terms)


def _background() -> ThreadPoolExecutor:
    # A few workers: a responder runs several searches at once, and each holds a worker
    # only for its FTS5 query.
    return threads.pool("lexical", 4)


def snippet(case: Case, limit: int = SNIPPET_CHARS) -> str:
    """A short, displayable resolution (never hidden text)."""
    text = " ".join(case.resolution.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def _decay(case: Case, now: datetime, half_life_days: float) -> float:
    when = case.resolved_at or case.created_at
    if when is None:
        return 1.0
    age_days = max(0.0, (now - when).total_seconds() / 86400)
    return float(0.5 ** (age_days / half_life_days))


def _embed_query(encoder: Encoder, text: str) -> np.ndarray:
    # A long new case is embedded by its first window only: the opening (title, problem
    # statement) says what the case is about, while later windows are mostly logs and
    # stack traces. Measured on GitBugs: MRR 0.627 vs 0.577 for the mean of all windows.
    vectors: np.ndarray = encoder.encode(encoder.chunk(text)[:1])
    return vectors


def _dense_for(generation: Generation, query: np.ndarray,
               rowids: list[int]) -> dict[int, float]:
    """Exact cosine (best chunk) for cases the dense search did not draw."""
    ids, counts = generation.chunks.chunks_of_each(rowids)
    held = counts > 0
    if not held.any():
        return {}
    # One FAISS call for every chunk: per-id calls cost ~45 us each through SWIG.
    cosines = generation.vectors.reconstruct_batch(ids) @ query[0]
    counts = counts[held]
    best = np.maximum.reduceat(cosines, np.cumsum(counts) - counts)
    return {r: float(score)
            for r, score in zip(np.asarray(rowids)[held].tolist(), best.tolist(), strict=True)}


def _allowed(generation: Generation, filters: Filters,
             ) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """(case rowids, chunk ids) a search may return, or (None, None) when it may return
    every indexed one."""
    if not filters.narrows and (generation.all_resolved or not filters.resolved_only):
        return None, None
    rowids = generation.store.filtered_rowids(**filters.sql_args())
    return rowids, generation.chunks.chunks_in(rowids)


def _dense_scores(
    generation: Generation, query: np.ndarray, k: int, allowed: np.ndarray | None
) -> dict[int, float]:
    """Best inner product per case rowid, for at least `k` cases where that many exist."""
    vectors = generation.vectors
    available = vectors.ntotal if allowed is None else len(allowed)
    # Several chunks of one case can crowd the top: widen until k distinct cases show up.
    wanted = min(available, max(4 * k, 16))
    while True:
        # inner product == cosine: every stored vector and the query are L2-normalised.
        distances, ids = vectors.search(query, wanted, allowed=allowed)
        best: dict[int, float] = {}
        found = ids[0] >= 0
        for rowid, score in zip(generation.chunks.cases_of(ids[0][found]),
                                distances[0][found], strict=True):
            best.setdefault(int(rowid), float(score))
        if len(best) >= k or wanted >= available:
            return best
        wanted = min(available, wanted * 4)
