"""Query -> dense + lexical candidates (inside the filters) -> fusion -> collapse -> `Match`."""

from __future__ import annotations

import functools
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from casematch import threads
from casematch.cases import Case, Match, first_sentence
from casematch.fusion import LEXICAL_WEIGHT, Candidate, fuse
from casematch.lexical import match_expression, query_terms, select_terms

if TYPE_CHECKING:
    from casematch.index import CaseIndex

SNIPPET_CHARS = 280
# How much of a problem is compared to detect a recurring incident.
COLLAPSE_CHARS = 400
MODES = ("hybrid", "dense", "lexical")


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

    def sql_args(self) -> dict[str, Any]:
        return {
            "resolved_only": self.resolved_only,
            "sources": self.sources,
            "channels": self.channels,
            "tags": self.tags,
            "since": self.since.timestamp() if self.since else None,
            "until": self.until.timestamp() if self.until else None,
        }


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """How to rank. The defaults are the measured configuration (benchmarks/RESULTS.md)."""

    # "hybrid" (default), or one retriever alone: the baselines run through this same code.
    mode: str = "hybrid"
    lexical_weight: float = LEXICAL_WEIGHT
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


@dataclass
class _Group:
    """A representative case and the near-identical cases folded into it."""

    rowid: int
    score: float
    members: list[int] = field(default_factory=list)


def search(
    index: CaseIndex, text: str, k: int = 5, *, filters: Filters | None = None,
    options: SearchOptions | None = None,
) -> list[Match]:
    """The `k` cases closest to `text`; a case's dense score is its best-matching chunk."""
    filters = filters or Filters()
    options = options or DEFAULT_OPTIONS
    text = text.strip()
    if not text or k <= 0 or index.vectors.ntotal == 0:
        return []
    candidates = gather(index, text, max(k, options.candidates), filters, options)
    scores = fuse(candidates, options.mode, options.lexical_weight)
    if not scores:
        return []
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    if options.half_life_days:
        # Recency can lift any candidate, so every one is read for its date.
        cases = index.store.cases_by_rowid([r for r, _ in ranked])
        now = options.now or datetime.now(UTC)
        ranked = sorted(((r, s * _decay(cases[r], now, options.half_life_days))
                         for r, s in ranked), key=lambda item: -item[1])
    else:
        # Decoding a case costs ~0.1 ms: read only those collapse can look at.
        cases = index.store.cases_by_rowid([r for r, _ in ranked[:_collapse_window(k)]])
    groups = _collapse(ranked, cases, options.collapse_above, k)
    matches = []
    for rank, group in enumerate(groups[:k], start=1):
        members = [cases[r] for r in group.members]
        best = max(members, key=_resolution_quality)
        dates = [d for d in (m.created_at for m in members) if d]
        matches.append(Match(
            case=best, score=group.score, rank=rank, snippet=snippet(best),
            duplicates=tuple(m.id for m in members if m is not best),
            last_seen=max(dates) if len(members) > 1 and dates else None,
        ))
    return matches


def gather(index: CaseIndex, text: str, n: int, filters: Filters,
           options: SearchOptions) -> dict[int, Candidate]:
    """Up to `n` cases from each retriever, every one scored by both."""
    allowed = _allowed_chunks(index, filters)
    if allowed is not None and len(allowed) == 0:
        return {}
    store = index.store
    expression = ""
    if options.mode != "dense" and store.has_fts:
        lexicon = store.document_frequencies if store.has_lexicon else None
        terms = select_terms(query_terms(text), lexicon)
        expression = match_expression([t.raw for t in terms])
    # Drawn within the same filters as the dense side; `allowed is None` means no filter
    # narrows anything, so the lexical query needs no join either.
    where = filters.sql_args() if allowed is not None else {}
    pending: Future[list[tuple[int, float]]] | None = None
    if expression and store.has_lexicon:
        # Within the postings budget the matches are few, so FTS5 can run beside the query
        # embedding and FAISS (SQLite, ONNX Runtime and FAISS all release the GIL) and the
        # dense candidates' BM25 scores are looked up afterwards.
        pending = _background().submit(store.lexical_search, expression, None,
                                       weights=options.field_weights, **where)
    query = _embed_query(index, text)
    dense: dict[int, float] = {}
    if options.mode != "lexical":
        dense = _dense_scores(index, query, n, allowed)
    lexical: dict[int, float] = {}
    if pending is not None:
        # As `lexical_search(also=dense)` draws them: the best n beside the dense ones.
        others = 0
        for rowid, score in pending.result():
            if rowid in dense:
                lexical[rowid] = score
            elif others < n:
                lexical[rowid] = score
                others += 1
    elif expression:
        # No budget (a generation written before the lexicon): let SQLite keep only the
        # best, plus the dense candidates' scores, in one pass.
        lexical = dict(store.lexical_search(expression, n, weights=options.field_weights,
                                            also=list(dense), **where))
    # Lexical mode still reports cosines (for thresholds), at no ranking cost.
    dense.update(_dense_for(index, query, [r for r in lexical if r not in dense]))
    return {r: Candidate(r, dense.get(r, 0.0), lexical.get(r, 0.0))
            for r in dense.keys() | lexical.keys()}


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


def _resolution_quality(case: Case) -> tuple[bool, bool, float, int]:
    # The representative of a recurring incident: resolved, with a written fix, the most
    # recent fix (it reflects today's product), then the fuller write-up.
    when = case.resolved_at or case.created_at
    return (case.resolved, bool(case.resolution), when.timestamp() if when else 0.0,
            len(case.resolution))


def _decay(case: Case, now: datetime, half_life_days: float) -> float:
    when = case.resolved_at or case.created_at
    if when is None:
        return 1.0
    age_days = max(0.0, (now - when).total_seconds() / 86400)
    return float(0.5 ** (age_days / half_life_days))


def _collapse(ranked: list[tuple[int, float]], cases: dict[int, Case],
              threshold: float | None, k: int) -> list[_Group]:
    """Fold near-identical cases into the best-ranked one, until `k` groups exist.

    "The same incident" is judged on the problem text alone (the vectors also hold the
    resolution, which differs between write-ups of one incident): character-trigram
    Jaccard, which tolerates "fails"/"failing" and punctuation. Only the top `3k + 10`
    candidates are scanned, and most pairs are ruled out by a bit sketch of their trigrams.
    """
    if threshold is None:
        return [_Group(r, s, [r]) for r, s in ranked[:k]]
    groups: list[_Group] = []
    kept: list[_Shingles] = []
    for rowid, score in ranked[:_collapse_window(k)]:
        shingles = _trigrams(cases[rowid])
        # Only cases visible to the same people fold together: a private case must never
        # hide a public one behind it (or ride along inside a public match).
        visibility = cases[rowid].visibility
        similar = next((i for i, other in enumerate(kept)
                        if cases[groups[i].rowid].visibility == visibility
                        and _same_incident(shingles, other, threshold)), None)
        if similar is not None:
            groups[similar].members.append(rowid)
        elif len(groups) < k:
            groups.append(_Group(rowid, score, [rowid]))
            kept.append(shingles)
    return groups


def _collapse_window(k: int) -> int:
    return 3 * k + 10


# Trigram sets of a case, with a bit sketch of them: hashed into SKETCH_BITS bits, so that
# most pairs are told apart by two big-int operations instead of two set operations.
# A trigram is its three code points packed into one int64 (21 bits each), so a set is a
# sorted numpy array: built in half the time of a frozenset of substrings (~90 against
# ~190 µs for a 400-character text), and the same set.
_Shingles = tuple[np.ndarray, int]
SKETCH_BITS = 1 << 14
# The sketch's Jaccard differs from the exact one only by hash collisions: with ~400
# trigrams per text in 16,384 bits, a few hundredths at most. Pairs below the threshold by
# more than this margin are not compared exactly.
SKETCH_MARGIN = 0.15
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the top bits are well mixed
_SKETCH_SHIFT = np.uint64(64 - SKETCH_BITS.bit_length() + 1)


def _trigrams(case: Case) -> _Shingles:
    return _shingles(" ".join(f"{case.title} {case.problem}".lower().split())[:COLLAPSE_CHARS])


@functools.lru_cache(maxsize=8192)
def _shingles(text: str) -> _Shingles:
    # The same top cases come back query after query; their sets were most of collapse.
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32).astype(np.int64)
    if len(points) < 3:  # as `text[0:3]`: a short text is one trigram, itself
        points = np.concatenate([points, np.zeros(3 - len(points), np.int64)])
    grams = np.unique(points[:-2] << 42 | points[1:-1] << 21 | points[2:])
    grams.flags.writeable = False  # shared through the cache
    bits = np.zeros(SKETCH_BITS, dtype=bool)
    bits[(grams.astype(np.uint64) * _GOLDEN) >> _SKETCH_SHIFT] = True
    return grams, int.from_bytes(np.packbits(bits).tobytes(), "big")


def _same_incident(a: _Shingles, b: _Shingles, threshold: float) -> bool:
    # Measured at 1,076 GitBugs reports: exact Jaccards of every pair were 9 ms of a 27 ms
    # search; nearly all pairs are far apart, which the sketch alone shows.
    (grams_a, sketch_a), (grams_b, sketch_b) = a, b
    union = (sketch_a | sketch_b).bit_count()
    if union and (sketch_a & sketch_b).bit_count() < (threshold - SKETCH_MARGIN) * union:
        return False
    return _jaccard(grams_a, grams_b) >= threshold


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sorted, distinct trigram arrays."""
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


def _embed_query(index: CaseIndex, text: str) -> np.ndarray:
    # A long new case is embedded by its first window only: the opening (title, problem
    # statement) says what the case is about, while later windows are mostly logs and
    # stack traces. Measured on GitBugs: MRR 0.627 vs 0.577 for the mean of all windows.
    encoder = index.encoder
    vectors: np.ndarray = encoder.encode(encoder.chunk(text)[:1])
    return vectors


_CHUNKS_BY_CASE: weakref.WeakKeyDictionary[Any, tuple[np.ndarray, np.ndarray]] = (
    weakref.WeakKeyDictionary()
)


def _chunks_of(index: CaseIndex, rowid: int) -> np.ndarray:
    """Chunk ids of one case (a sorted view built once per opened generation)."""
    table = _CHUNKS_BY_CASE.get(index)
    if table is None:
        order = np.argsort(index.chunk_cases, kind="stable")
        table = (index.chunk_cases[order], index.chunk_ids[order])
        _CHUNKS_BY_CASE[index] = table
    cases, ids = table
    lo, hi = np.searchsorted(cases, rowid, side="left"), np.searchsorted(cases, rowid, "right")
    return ids[lo:hi]


def _dense_for(index: CaseIndex, query: np.ndarray, rowids: list[int]) -> dict[int, float]:
    """Exact cosine (best chunk) for cases the dense search did not draw."""
    pairs = [(r, ids) for r in rowids if len(ids := _chunks_of(index, r))]
    if not pairs:
        return {}
    rowids, groups = [r for r, _ in pairs], [ids for _, ids in pairs]
    # One FAISS call for every chunk: per-id calls cost ~45 us each through SWIG.
    vectors = index.vectors.reconstruct_batch(np.concatenate(groups).astype(np.int64))
    cosines = vectors @ query[0]
    starts = np.cumsum([0] + [len(g) for g in groups[:-1]])
    best = np.maximum.reduceat(cosines, starts)
    return {r: float(score) for r, score in zip(rowids, best, strict=True)}


def _allowed_chunks(index: CaseIndex, filters: Filters) -> np.ndarray | None:
    """Chunk ids a search may return, or None when every indexed chunk may be returned."""
    everything_resolved = index.manifest.get("resolved") == index.manifest.get("cases")
    if not filters.narrows and (everything_resolved or not filters.resolved_only):
        return None
    rowids = index.store.filtered_rowids(**filters.sql_args())
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


__all__ = ["Filters", "SearchOptions", "first_sentence", "search", "snippet"]
