"""FTS5's bm25(), scored with numpy from postings kept beside the FTS5 table.

FTS5 computes bm25() row by row, reading each matching row's term instances and its size
(~2 us a row: 0.8 ms of a ~1 ms lexical query over ~470 matching reports, on the same
two cores as the query embedding). Here each term's postings (the cases holding it, with
its count in each column) are one blob, and every case's length in tokens is one array,
so a query costs one keyed read and a few numpy operations. The scores are FTS5's own
(the same formula, constants, IDF and average length, in double precision): the tests
hold them to FTS5's within rounding.

Only terms held by at most MAX_DF cases have postings: a query's terms are chosen within
the lexical side's postings budget (`lexical.POSTINGS_BUDGET`), so commoner terms are
never sent to it beside others, and their postings would be most of the size. A query with
a term that has none is left to FTS5.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np

from casematch.storage.lexical import POSTINGS_BUDGET

# What `postings` and `postings_meta` hold; a generation written under another scheme
# (or before postings existed) is scored by FTS5 until the next generation rewrites them.
SCHEME = 1
# FTS5's bm25() constants (fts5_aux.c).
K1 = 1.2
B = 0.75
MAX_DF = POSTINGS_BUDGET
COLUMNS = ("title", "problem", "resolution")  # the FTS5 table's columns, in order
_COUNT_MAX = np.iinfo(np.uint16).max
_ROWID_MAX = np.iinfo(np.int32).max


def pack(rowids: np.ndarray, counts: np.ndarray) -> bytes:
    """One term's postings: its cases' rowids, ascending (int32), then each one's count in
    every column (uint16; a count above 65,535 in one column of one case is held at that).
    """
    if len(rowids) and int(rowids[-1]) > _ROWID_MAX:
        raise ValueError(f"rowid {int(rowids[-1])} is beyond what postings hold")
    clipped = np.minimum(counts, _COUNT_MAX).astype(np.uint16)
    return rowids.astype(np.int32).tobytes() + clipped.tobytes()


def unpack(data: bytes, *, cases: int) -> tuple[np.ndarray, np.ndarray]:
    """(rowids, counts) of `pack`; ValueError where `data` is not postings of rowids below
    `cases` (the length of the lengths array)."""
    n, extra = divmod(len(data), 4 + 2 * len(COLUMNS))
    rowids = np.frombuffer(data, np.int32, n)
    if extra or (n and (int(rowids.min()) < 0 or int(rowids.max()) >= cases)):
        raise ValueError(f"a blob of {len(data)} bytes does not hold postings")
    counts = np.frombuffer(data, np.uint16, n * len(COLUMNS), 4 * n).reshape(n, len(COLUMNS))
    return rowids, counts


def grouped(rows: Sequence[tuple[str, int, str, int]]) -> Iterator[tuple[str, bytes]]:
    """(term, packed postings) from (term, rowid, column name, count) rows sorted by term
    then rowid, as `GROUP BY term, doc, col` over an FTS5 'instance' vocabulary gives."""
    if not rows:
        return
    columns = {name: i for i, name in enumerate(COLUMNS)}
    terms = [r[0] for r in rows]
    docs = np.fromiter((r[1] for r in rows), np.int64, len(rows))
    cols = np.fromiter((columns[r[2]] for r in rows), np.int64, len(rows))
    counts = np.fromiter((r[3] for r in rows), np.int64, len(rows))
    term_starts = np.flatnonzero([True] + [a != b for a, b in itertools.pairwise(terms)])
    new_term = np.zeros(len(rows), dtype=bool)
    new_term[term_starts] = True
    # One posting per (term, case): the rows of a case's columns fold into one.
    new_pair = new_term | np.concatenate(([True], docs[1:] != docs[:-1]))
    pair = np.cumsum(new_pair) - 1
    matrix = np.zeros((int(pair[-1]) + 1, len(COLUMNS)), dtype=np.int64)
    matrix[pair, cols] = counts
    pair_docs = docs[new_pair]
    bounds = np.append(pair[term_starts], len(pair_docs))
    for term_start, start, end in zip(term_starts.tolist(), bounds[:-1].tolist(),
                                      bounds[1:].tolist(), strict=True):
        yield terms[term_start], pack(pair_docs[start:end], matrix[start:end])


def varints(data: bytes) -> list[int]:
    """SQLite's varints, as FTS5 writes its averages record and each row's size."""
    values = []
    i = 0
    while i < len(data):
        value = 0
        for j in range(9):
            byte = data[i]
            i += 1
            if j == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        values.append(value)
    return values


def bm25(postings: Sequence[tuple[np.ndarray, np.ndarray]], weights: Sequence[float],
         rows: int, tokens: int, lengths: np.ndarray,
         allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rowids, scores) of every case holding any of the terms, best first (ties by
    rowid), as `-bm25(fts, *weights)` scores them for `"t1" OR "t2" ...`.

    `postings`: each term's (rowids, counts); `rows`, `tokens`: the FTS5 table's row count
    and total tokens; `lengths[rowid]`: a case's tokens over all columns. `allowed`
    (rowids, any order) keeps only those cases; IDF and average length stay the whole
    table's.
    """
    if not postings or rows == 0:
        return np.empty(0, np.int64), np.empty(0)
    held = np.array([len(r) for r, _ in postings], dtype=np.float64)
    # A term in more than half the cases would get a negative IDF: FTS5 uses 1e-6.
    idf = np.maximum(np.log((rows - held + 0.5) / (held + 0.5)), 1e-6)
    rowids = np.concatenate([r for r, _ in postings])
    frequency = np.concatenate([c for _, c in postings]) @ np.asarray(weights, np.float64)
    average = tokens / rows
    norm = K1 * (1 - B + B * lengths[rowids] / average)
    # In fts5_aux.c's order of operations, so that the scores are the same doubles.
    parts = np.repeat(idf, held.astype(np.int64)) * ((frequency * (K1 + 1)) / (frequency + norm))
    order = np.argsort(rowids, kind="stable")
    rowids, parts = rowids[order], parts[order]
    starts = np.flatnonzero(np.concatenate(([True], rowids[1:] != rowids[:-1])))
    rowids, scores = rowids[starts], np.add.reduceat(parts, starts)
    if allowed is not None:
        keep = np.isin(rowids, allowed)
        rowids, scores = rowids[keep], scores[keep]
    ranked = np.lexsort((rowids, -scores))
    return rowids[ranked], scores[ranked]
