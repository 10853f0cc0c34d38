"""The SQLite half of an index generation: cases, their chunks, and a lexical index.

FAISS holds one vector per chunk under the chunk's integer id; this file maps those ids
back to cases and keeps everything needed to display and filter them.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from casematch.cases import Case, case_from_dict, case_to_dict
from casematch.errors import IndexFormatError
from casematch.storage import postings
from casematch.storage.lexical import STEMMING_TOKENIZER
from casematch.storage.sketches import (
    SKETCH_SCHEME,
    problem_shingles,
    sketch_from_bytes,
    sketch_to_bytes,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    channel TEXT NOT NULL,
    resolved INTEGER NOT NULL,
    private INTEGER NOT NULL,
    created_at REAL,
    resolved_at REAL,
    content_hash TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS case_tags (
    case_rowid INTEGER NOT NULL REFERENCES cases(rowid) ON DELETE CASCADE,
    tag TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS case_tags_tag ON case_tags(tag);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    case_rowid INTEGER NOT NULL REFERENCES cases(rowid) ON DELETE CASCADE,
    field TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_case ON chunks(case_rowid);
-- The raw input each case was built from, by fingerprint (sources.InputMemo): a re-run
-- skips building a case whose input is unchanged. Optional: an index written before it
-- has no rows here, and its cases are built once more. Keyed by id and checked against
-- the case's content hash, so that a row left behind by any writer never matches.
CREATE TABLE IF NOT EXISTS case_inputs (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    newness TEXT NOT NULL,
    cleaned INTEGER NOT NULL
) WITHOUT ROWID;
-- Each case's collapse sketch (storage.sketches), so that a search does not decode and
-- shingle every candidate. Optional: a generation written before it has none, and its
-- searches compute them; the next generation written from it fills them in.
CREATE TABLE IF NOT EXISTS case_sketches (
    rowid INTEGER PRIMARY KEY,
    scheme INTEGER NOT NULL,
    bits INTEGER NOT NULL,
    sketch BLOB NOT NULL
);
-- BM25 postings (storage.postings) of every term held by few enough cases, and what
-- scoring them needs besides: the scheme, the FTS5 table's rows and tokens, and each
-- case's length. Optional: a generation without them is scored by FTS5's bm25().
CREATE TABLE IF NOT EXISTS postings (term TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS postings_meta (key TEXT PRIMARY KEY, value NOT NULL);
"""

# Lexical side: one FTS5 row per case (rowid == cases.rowid), one column per field so that
# BM25 can weight them. Porter stemming lets "crashes" meet "crash"; '_' is a token
# character so identifiers like SAML_AUDIENCE_MISMATCH stay one exact token.
FTS_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS cases_fts USING fts5(
    title, problem, resolution,
    tokenize = "porter unicode61 remove_diacritics 2 tokenchars '_'"
);
CREATE VIRTUAL TABLE IF NOT EXISTS cases_fts_vocab USING fts5vocab(cases_fts, 'row');
"""

# Decoded cases a read-only store keeps: a few MB at most (a case's dict form is a few KB).
DECODED_CASES = 2048
# Collapse sketches a read-only store keeps (~0.6 KB each): a warm search reads none of
# its ~40 from SQLite, whose pages would otherwise push FTS5's out of its page cache.
SKETCHES_KEPT = 8192

T = TypeVar("T")


class _Kept(Generic[T]):
    """Values a read-only store has read, by rowid: the same top cases come back query
    after query. Oldest first out (dicts keep insertion order): a bounded memory. The
    bound is read at each call (a module constant tests can lower)."""

    def __init__(self, bound: Callable[[], int]) -> None:
        self._items: dict[int, T] = {}
        self._bound = bound
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def get(self, rowids: Sequence[int],
            read: Callable[[Sequence[int]], dict[int, T]]) -> dict[int, T]:
        """The value of each of `rowids` that has one: kept, or `read` (and kept)."""
        items = self._items
        found = {r: value for r in rowids if (value := items.get(r)) is not None}
        if len(found) < len(rowids):
            got = read([r for r in rowids if r not in found])
            found.update(got)
            # A read larger than the bound (every case, for `tune`) keeps only its last ones.
            bound = self._bound()
            keep = list(got.items())[-bound:]
            with self._lock:
                for _ in range(min(len(items), max(0, len(items) + len(keep) - bound))):
                    del items[next(iter(items))]
                items.update(keep)
        return found


class CaseStore:
    """One generation's SQLite file. Read-only unless created for writing."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        # What a read-only store (an immutable generation) has decoded, by rowid: decoding
        # a case costs ~25-40 us. A store being written never keeps anything: its rows
        # change.
        self._decoded: _Kept[Case] | None = None if create else _Kept(lambda: DECODED_CASES)
        self._sketches: _Kept[tuple[int, int]] | None = \
            None if create else _Kept(lambda: SKETCHES_KEPT)
        self._postings_base = False
        if not create and not path.is_file():
            raise IndexFormatError(f"{path}: missing; the index is incomplete, rebuild it")
        uri = f"file:{path}?mode={'rwc' if create else 'ro'}"
        # check_same_thread off: a Slack responder serves searches from worker threads;
        # every use is a short read of an immutable generation.
        try:
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise IndexFormatError(f"{path}: cannot open ({exc}); check its permissions, "
                                   "or rebuild the index") from exc
        try:
            if create:
                self._db.executescript(SCHEMA)
                self._db.executescript(FTS_SCHEMA)
                self._track_lexical_changes()
            # Also proves the file is a case store. Kept: counting again after the chunk
            # map has been read takes the pages back from disk (0.5 ms at 20,000 cases, half
            # of what the checks of `Generation.open` cost).
            self.opened_count = int(self._db.execute("SELECT count(*) FROM cases").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise IndexFormatError(f"{path}: not a casematch case store ({exc})") from exc

    def close(self) -> None:
        self._db.close()

    def _add_fts(self, rowid: int, case: Case) -> None:
        # Internal notes (hidden_text) help matching, as they do for the dense side.
        problem = "\n\n".join(p for p in (case.problem, case.hidden_text) if p)
        self._db.execute(
            "INSERT INTO cases_fts (rowid, title, problem, resolution) VALUES (?, ?, ?, ?)",
            (rowid, case.title, problem, case.resolution),
        )
        if self._postings_base:
            self._db.execute("INSERT INTO temp.lexical_changes (title, problem, resolution)"
                             " VALUES (?, ?, ?)", (case.title, problem, case.resolution))

    def _delete_fts(self, rowids: Sequence[int]) -> None:
        marks = ",".join("?" * len(rowids))
        if self._postings_base:
            self._db.execute(
                "INSERT INTO temp.lexical_changes (title, problem, resolution) SELECT title,"
                f" problem, resolution FROM cases_fts WHERE rowid IN ({marks})", rowids)
        self._db.execute(f"DELETE FROM cases_fts WHERE rowid IN ({marks})", rowids)

    def _track_lexical_changes(self) -> None:
        """A writer on a base generation with current postings rewrites only the postings
        of the terms its changes touch: the text of every row it adds or deletes goes to
        an FTS5 table in memory, whose vocabulary is those terms."""
        meta = dict(self._db.execute("SELECT key, value FROM postings_meta"))
        self._postings_base = meta.get("scheme") == postings.SCHEME
        if self._postings_base:
            self._db.executescript(
                "CREATE VIRTUAL TABLE temp.lexical_changes USING fts5(title, problem,"
                f""" resolution, tokenize="{STEMMING_TOKENIZER}");"""
                "CREATE VIRTUAL TABLE temp.lexical_changed_terms"
                " USING fts5vocab(temp, lexical_changes, 'row');"
            )

    # ---- writing (only while a new generation is being built) ---------------------------

    def add_case(self, case: Case, content_hash: str) -> int:
        """Insert or replace a case by id; returns its rowid. Replacing drops old chunks."""
        old = self._db.execute("SELECT rowid FROM cases WHERE id = ?", (case.id,)).fetchone()
        if old:
            self.delete_rowids([old[0]])
        cursor = self._db.execute(
            "INSERT INTO cases (source, channel, resolved, private, created_at,"
            " resolved_at, data, id, content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*self._columns(case), case.id, content_hash),
        )
        rowid = int(cursor.lastrowid or 0)
        self._db.executemany(
            "INSERT INTO case_tags (case_rowid, tag) VALUES (?, ?)",
            [(rowid, tag) for tag in case.tags],
        )
        self._add_fts(rowid, case)
        self._add_sketch(rowid, case)
        return rowid

    def _add_sketch(self, rowid: int, case: Case) -> None:
        _, sketch, bits = problem_shingles(case.title, case.problem)
        self._db.execute("INSERT OR REPLACE INTO case_sketches (rowid, scheme, bits, sketch)"
                         " VALUES (?, ?, ?, ?)", (rowid, SKETCH_SCHEME, bits,
                                                  sketch_to_bytes(sketch)))

    def known(self, case_id: str) -> tuple[int, str, str] | None:
        """(rowid, content hash, stored data) of a case by id, or None.

        One keyed read per case lets a writer find what changed without holding every id
        and hash of the index in memory.
        """
        row = self._db.execute("SELECT rowid, content_hash, data FROM cases WHERE id = ?",
                               (case_id,)).fetchone()
        return (int(row[0]), str(row[1]), str(row[2])) if row else None

    def recall_input(self, case_id: str, fingerprint: str
                     ) -> tuple[int, str, bool, tuple[float, float, float], int] | None:
        """(rowid, content hash, resolved, newness, characters cleaned) of a case stored
        with this input fingerprint, or None."""
        row = self._db.execute(
            "SELECT c.rowid, c.content_hash, c.resolved, i.newness, i.cleaned"
            " FROM case_inputs AS i JOIN cases AS c ON c.id = i.id"
            " WHERE i.id = ? AND i.fingerprint = ? AND i.content_hash = c.content_hash",
            (case_id, fingerprint)).fetchone()
        if row is None:
            return None
        first, second, third = (float(v) for v in str(row[3]).split())
        return int(row[0]), str(row[1]), bool(row[2]), (first, second, third), int(row[4])

    def set_input(self, case_id: str, fingerprint: str, content_hash: str,
                  newness: tuple[float, float, float], cleaned: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO case_inputs VALUES (?, ?, ?, ?, ?)",
                         (case_id, fingerprint, content_hash,
                          " ".join(repr(v) for v in newness), cleaned))

    def forget_input(self, case_id: str) -> None:
        self._db.execute("DELETE FROM case_inputs WHERE id = ?", (case_id,))

    def iter_ids(self) -> Iterator[str]:
        return (str(case_id) for (case_id,) in self._db.execute("SELECT id FROM cases"))

    def rowids_and_ids(self) -> list[tuple[int, str]]:
        return [(int(r), str(i)) for r, i in self._db.execute("SELECT rowid, id FROM cases")]

    def update_case(self, rowid: int, case: Case, stored: str | None = None) -> bool:
        """Refresh what is displayed and filtered on; text and chunks stay as they are.

        `stored` is the case's stored data when the caller already read it (`known`).
        Returns whether anything differed from what was stored.
        """
        columns = self._columns(case)
        if stored is None:
            old = self._db.execute("SELECT data FROM cases WHERE rowid = ?",
                                   (rowid,)).fetchone()
            stored = old[0] if old else None
        if stored == columns[-1]:
            return False
        self._db.execute(
            "UPDATE cases SET source = ?, channel = ?, resolved = ?, private = ?,"
            " created_at = ?, resolved_at = ?, data = ? WHERE rowid = ?",
            (*columns, rowid),
        )
        self._db.execute("DELETE FROM case_tags WHERE case_rowid = ?", (rowid,))
        self._db.executemany(
            "INSERT INTO case_tags (case_rowid, tag) VALUES (?, ?)",
            [(rowid, tag) for tag in case.tags],
        )
        # The title may change without the hashed text changing (problem starts with it).
        self._delete_fts([rowid])
        self._add_fts(rowid, case)
        self._add_sketch(rowid, case)
        return True

    @staticmethod
    def _columns(case: Case) -> tuple[Any, ...]:
        return (
            case.source,
            case.channel,
            int(case.resolved),
            int(case.visibility.private),
            case.created_at.timestamp() if case.created_at else None,
            case.resolved_at.timestamp() if case.resolved_at else None,
            json.dumps(case_to_dict(case), ensure_ascii=False),
        )

    def add_chunks(self, case_rowid: int, field: str, texts: Sequence[str], *,
                   pending: bool = False) -> list[int]:
        """Insert chunks; `pending` also lists them as still to embed (`pending_chunks`)."""
        ids = []
        for text in texts:
            cursor = self._db.execute(
                "INSERT INTO chunks (case_rowid, field, text) VALUES (?, ?, ?)",
                (case_rowid, field, text),
            )
            ids.append(int(cursor.lastrowid or 0))
        if pending:
            self._db.executemany("INSERT INTO temp.pending (id) VALUES (?)",
                                 [(i,) for i in ids])
        return ids

    # Chunks written in this run but not yet embedded wait in a temporary table (spilled to
    # a temporary file by SQLite, never part of the generation), so that a large build
    # holds no texts in memory: they are read back in batches to be embedded at commit.

    def track_pending(self) -> None:
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY)")

    def drop_pending(self, chunk_ids: Sequence[int]) -> set[int]:
        """Of `chunk_ids`, those still to embed; they are no longer listed as pending."""
        if not chunk_ids:
            return set()
        marks = ",".join("?" * len(chunk_ids))
        found = {int(r) for (r,) in self._db.execute(
            f"SELECT id FROM temp.pending WHERE id IN ({marks})", list(chunk_ids))}
        if found:
            self._db.execute(f"DELETE FROM temp.pending WHERE id IN ({marks})", list(chunk_ids))
        return found

    def pending_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM temp.pending").fetchone()[0])

    def pending_batches(self, size: int) -> Iterable[tuple[list[int], list[str]]]:
        """(chunk ids, texts) of the chunks still to embed, `size` at a time, by id."""
        last = -1
        while True:
            rows = self._db.execute(
                "SELECT chunks.id, chunks.text FROM temp.pending JOIN chunks"
                " ON chunks.id = pending.id WHERE pending.id > ? ORDER BY pending.id LIMIT ?",
                (last, size)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [int(r[0]) for r in rows], [str(r[1]) for r in rows]

    def delete_rowids(self, rowids: Iterable[int]) -> list[int]:
        """Delete cases by rowid; returns the chunk ids that went with them."""
        rowids = list(rowids)
        marks = ",".join("?" * len(rowids))
        chunk_ids = [
            row[0]
            for row in self._db.execute(
                f"SELECT id FROM chunks WHERE case_rowid IN ({marks})", rowids
            )
        ]
        self._db.execute(f"DELETE FROM chunks WHERE case_rowid IN ({marks})", rowids)
        self._db.execute(f"DELETE FROM case_tags WHERE case_rowid IN ({marks})", rowids)
        self._delete_fts(rowids)
        self._db.execute(f"DELETE FROM case_sketches WHERE rowid IN ({marks})", rowids)
        self._db.execute("DELETE FROM case_inputs WHERE id IN (SELECT id FROM cases"
                         f" WHERE rowid IN ({marks}))", rowids)
        self._db.execute(f"DELETE FROM cases WHERE rowid IN ({marks})", rowids)
        return chunk_ids

    def commit(self) -> None:
        self._db.commit()

    # ---- reading ------------------------------------------------------------------------

    def count(self, *, resolved_only: bool = False) -> int:
        sql = "SELECT count(*) FROM cases" + (" WHERE resolved = 1" if resolved_only else "")
        return int(self._db.execute(sql).fetchone()[0])

    def chunk_map(self) -> ChunkMap:
        """Every chunk id and its case, for id -> case lookups in both directions."""
        rows = self._db.execute("SELECT id, case_rowid FROM chunks ORDER BY id").fetchall()
        array = np.array(rows, dtype=np.int64).reshape(-1, 2)
        return ChunkMap(array[:, 0].copy(), array[:, 1].copy())

    def cases_by_rowid(self, rowids: Sequence[int]) -> dict[int, Case]:
        if not rowids:
            return {}
        if self._decoded is None:
            return self._read_cases(rowids)
        return self._decoded.get(rowids, self._read_cases)

    def _read_cases(self, rowids: Sequence[int]) -> dict[int, Case]:
        marks = ",".join("?" * len(rowids))
        rows = self._db.execute(
            f"SELECT rowid, data FROM cases WHERE rowid IN ({marks})", list(rowids)
        )
        return {rowid: case_from_dict(json.loads(data)) for rowid, data in rows}

    def case_by_id(self, case_id: str) -> Case | None:
        row = self._db.execute("SELECT data FROM cases WHERE id = ?", (case_id,)).fetchone()
        return case_from_dict(json.loads(row[0])) if row else None

    def hashes(self) -> dict[str, tuple[int, str]]:
        """case id -> (rowid, content hash), to find what changed on an update."""
        rows = self._db.execute("SELECT id, rowid, content_hash FROM cases")
        return {case_id: (rowid, digest) for case_id, rowid, digest in rows}

    def chunk_rows(self, case_rowid: int) -> list[tuple[int, str, str]]:
        """(chunk id, field, text) of one case, in order."""
        return self._db.execute(
            "SELECT id, field, text FROM chunks WHERE case_rowid = ? ORDER BY id", (case_rowid,)
        ).fetchall()

    def filtered_rowids(
        self,
        *,
        resolved_only: bool,
        sources: Sequence[str] = (),
        channels: Sequence[str] = (),
        tags: Sequence[str] = (),
        since: float | None = None,
        until: float | None = None,
        exclude: Sequence[str] = (),
    ) -> np.ndarray:
        """Rowids of the cases that pass every filter (filters are ANDed, values ORed)."""
        where, params = _filter_sql(resolved_only, sources, channels, tags, since, until,
                                    exclude)
        sql = "SELECT rowid FROM cases" + (" WHERE " + where if where else "")
        return np.array([r[0] for r in self._db.execute(sql, params)], dtype=np.int64)

    # ---- lexical (FTS5) -------------------------------------------------------------------

    def lexical_search(
        self,
        match: str,
        *,
        weights: Sequence[float],
        resolved_only: bool = False,
        sources: Sequence[str] = (),
        channels: Sequence[str] = (),
        tags: Sequence[str] = (),
        since: float | None = None,
        until: float | None = None,
        exclude: Sequence[str] = (),
    ) -> list[tuple[int, float]]:
        """(case rowid, BM25 score, higher is better) of every case matching `match`, best first.

        `match` must come from `lexical.match_expression` over terms chosen within a
        postings budget (`lexical.select_terms`), so the rows are few and a caller can
        query before it knows the dense candidates and look their scores up afterwards.
        Filters are applied inside the query.
        """
        sql, args = _bm25_query(match, weights, resolved_only, sources, channels, tags,
                                since, until, exclude)
        rows = self._db.execute(sql + " ORDER BY score DESC", args)
        return [(int(r), float(v)) for r, v in rows]

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """How many cases hold each (stemmed) term; terms no case holds are absent."""
        if not terms:
            return {}
        marks = ",".join("?" * len(terms))
        rows = self._db.execute(f"SELECT term, df FROM lexicon WHERE term IN ({marks})",
                                list(terms))
        return {term: int(df) for term, df in rows}

    def finish_lexical(self) -> None:
        """Before a generation is committed: merge the FTS5 segments and count terms.

        A generation is never written again, so its FTS5 b-trees are merged once (fewer
        segments per posting lookup) and document frequencies are copied out of the
        `fts5vocab` view, which scans the whole vocabulary on every read, into a keyed
        table that answers a query's terms in microseconds.
        """
        self._db.execute("INSERT INTO cases_fts (cases_fts) VALUES ('optimize')")
        self._db.executescript(
            "DROP TABLE IF EXISTS lexicon;"
            "CREATE TABLE lexicon (term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID;"
            "INSERT INTO lexicon SELECT term, doc FROM cases_fts_vocab;"
        )

    def finish_postings(self) -> None:
        """Before a generation is committed (after `finish_lexical`): the BM25 postings of
        every term its changes touched, or of every term when the base generation had no
        current postings; and the table's rows, tokens and case lengths."""
        db = self._db
        db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.cases_fts_instance"
                   " USING fts5vocab(main, cases_fts, 'instance')")
        if self._postings_base:
            touched = "SELECT term FROM temp.lexical_changed_terms"
            db.execute(f"DELETE FROM postings WHERE term IN ({touched})")
        else:
            touched = "SELECT term FROM lexicon"
            db.execute("DELETE FROM postings")
        # One pass over the touched terms' instances (FTS5 seeks each term).
        rows = db.execute(
            "SELECT term, doc, col, count(*) FROM temp.cases_fts_instance WHERE term IN"
            f" (SELECT term FROM lexicon WHERE df <= ? AND term IN ({touched}))"
            " GROUP BY term, doc, col", (postings.MAX_DF,)).fetchall()
        db.executemany("INSERT INTO postings (term, data) VALUES (?, ?)", postings.grouped(rows))
        # What bm25() reads besides: FTS5's averages record (rows, then each column's
        # tokens) and each row's size record (its tokens in each column).
        record = db.execute("SELECT block FROM cases_fts_data WHERE id = 1").fetchone()
        averages = postings.varints(record[0]) if record else []
        averages = averages or [0]  # an empty table may have no averages yet
        sizes = db.execute("SELECT id, sz FROM cases_fts_docsize").fetchall()
        lengths = np.zeros(max((r for r, _ in sizes), default=0) + 1, dtype=np.int32)
        for rowid, size in sizes:
            lengths[rowid] = sum(postings.varints(size))
        db.executemany("INSERT OR REPLACE INTO postings_meta (key, value) VALUES (?, ?)", [
            ("scheme", postings.SCHEME), ("rows", averages[0]), ("tokens", sum(averages[1:])),
            ("lengths", lengths.tobytes())])

    def bm25(self, terms: Sequence[str], *, weights: Sequence[float],
             allowed: np.ndarray | None = None) -> list[tuple[int, float]] | None:
        """As `lexical_search` for `match_expression` over these (stemmed) terms, scored
        from the stored postings; None where they cannot answer (a generation without
        current postings, or a term held by too many cases to have any): ask FTS5.
        `allowed`: the rowids the filters let through (None: every case)."""
        stats = self._postings_stats
        if stats is None:
            return None
        if not terms:
            return []
        marks = ",".join("?" * len(terms))
        found = dict(self._db.execute(
            f"SELECT term, data FROM postings WHERE term IN ({marks})", list(terms)))
        if len(found) < len(set(terms)):
            return None
        rows, tokens, lengths = stats
        try:
            held = [postings.unpack(found[t], cases=len(lengths)) for t in terms]
        except ValueError as exc:
            raise IndexFormatError(f"{self.path}: damaged BM25 postings ({exc}); rebuild the "
                                   "index (`casematch reindex --full`)") from exc
        rowids, scores = postings.bm25(held, weights, rows, tokens, lengths, allowed)
        return list(zip(rowids.tolist(), scores.tolist(), strict=True))

    @functools.cached_property
    def _postings_stats(self) -> tuple[int, int, np.ndarray] | None:
        try:
            meta = dict(self._db.execute("SELECT key, value FROM postings_meta"))
        except sqlite3.OperationalError:  # written before postings were kept
            return None
        if meta.get("scheme") != postings.SCHEME:
            return None
        lengths = np.frombuffer(meta["lengths"], dtype=np.int32).astype(np.float64)
        return int(meta["rows"]), int(meta["tokens"]), lengths

    def finish_sketches(self) -> int:
        """Before a generation is committed: store the sketch of every case without one
        (the base generation was written before sketches were stored, or under another
        scheme); returns how many were computed."""
        rows = self._db.execute(
            "SELECT rowid, data FROM cases WHERE rowid NOT IN"
            " (SELECT rowid FROM case_sketches WHERE scheme = ?)", (SKETCH_SCHEME,)
        ).fetchall()
        for rowid, data in rows:
            self._add_sketch(rowid, case_from_dict(json.loads(data)))
        return len(rows)

    def sketches(self, rowids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """rowid -> (collapse sketch, bits set) of those of `rowids` that have one stored
        under the current scheme (`storage.sketches`); a caller computes the others."""
        if not rowids or not self._has_sketches:
            return {}
        if self._sketches is None:
            return self._read_sketches(rowids)
        return self._sketches.get(rowids, self._read_sketches)

    def _read_sketches(self, rowids: Sequence[int]) -> dict[int, tuple[int, int]]:
        marks = ",".join("?" * len(rowids))
        rows = self._db.execute(
            f"SELECT rowid, bits, sketch FROM case_sketches WHERE rowid IN ({marks})"
            " AND scheme = ?", [*rowids, SKETCH_SCHEME])
        return {rowid: (sketch_from_bytes(sketch), bits) for rowid, bits, sketch in rows}

    @functools.cached_property
    def _has_sketches(self) -> bool:
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                                " AND name = 'case_sketches'").fetchone() is not None

    def stats(self) -> dict[str, Any]:
        by_source = dict(
            self._db.execute("SELECT source, count(*) FROM cases GROUP BY source").fetchall()
        )
        by_channel = dict(
            self._db.execute(
                "SELECT channel, count(*) FROM cases WHERE channel != '' GROUP BY channel"
            ).fetchall()
        )
        return {
            "cases": self.count(),
            "resolved": self.count(resolved_only=True),
            "chunks": int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]),
            "by_source": by_source,
            "by_channel": by_channel,
        }


def _bm25_query(match: str, weights: Sequence[float], resolved_only: bool,
                sources: Sequence[str], channels: Sequence[str], tags: Sequence[str],
                since: float | None, until: float | None,
                exclude: Sequence[str] = ()) -> tuple[str, list[Any]]:
    """SELECT (rowid, score) of the cases matching `match` within the filters, unordered."""
    where, params = _filter_sql(resolved_only, sources, channels, tags, since, until,
                                exclude)
    # bm25() is negative in FTS5 (more negative is better); weights are per column.
    marks = ",".join("?" * len(weights))
    # CROSS JOIN keeps the FTS5 scan as the outer loop; the planner would otherwise drive
    # from `cases` and run the MATCH once per filtered case (seconds at 10k).
    sql = (
        f"SELECT cases_fts.rowid, -bm25(cases_fts, {marks}) AS score FROM cases_fts"
        + (" CROSS JOIN cases ON cases.rowid = cases_fts.rowid" if where else "")
        + " WHERE cases_fts MATCH ?"
        + (f" AND {where}" if where else "")
    )
    return sql, [*weights, match, *params]


def _filter_sql(
    resolved_only: bool,
    sources: Sequence[str],
    channels: Sequence[str],
    tags: Sequence[str],
    since: float | None,
    until: float | None,
    exclude: Sequence[str] = (),
) -> tuple[str, list[Any]]:
    """A WHERE clause over `cases` (without the keyword) and its parameters."""
    where: list[str] = []
    params: list[Any] = []
    if resolved_only:
        where.append("cases.resolved = 1")
    for column, values in (("source", sources), ("channel", channels)):
        if values:
            where.append(f"cases.{column} IN ({','.join('?' * len(values))})")
            params.extend(values)
    if tags:
        where.append(
            "cases.rowid IN (SELECT case_rowid FROM case_tags"
            f" WHERE tag IN ({','.join('?' * len(tags))}))"
        )
        params.extend(tags)
    if since is not None:
        where.append("cases.created_at >= ?")
        params.append(since)
    if until is not None:
        where.append("cases.created_at <= ?")
        params.append(until)
    if exclude:
        where.append(f"cases.id NOT IN ({','.join('?' * len(exclude))})")
        params.extend(exclude)
    return " AND ".join(where), params


class ChunkMap:
    """Chunk ids (FAISS ids) and the case rowid of each, for one immutable generation."""

    def __init__(self, ids: np.ndarray, cases: np.ndarray) -> None:
        self.ids = ids  # sorted
        self.cases = cases

    def __len__(self) -> int:
        return len(self.ids)

    def cases_of(self, chunk_ids: np.ndarray) -> np.ndarray:
        """The case rowid of each of `chunk_ids` (ids that exist in this generation)."""
        result: np.ndarray = self.cases[np.searchsorted(self.ids, chunk_ids)]
        return result

    def chunks_in(self, rowids: np.ndarray) -> np.ndarray:
        """Every chunk id of the cases `rowids`."""
        result: np.ndarray = self.ids[np.isin(self.cases, rowids)]
        return result

    def chunks_of_each(self, rowids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(every chunk id of the cases `rowids`, in their order; how many each case has)."""
        cases, ids = self._by_case
        wanted = np.asarray(rowids, dtype=cases.dtype)
        lo, hi = np.searchsorted(cases, wanted, "left"), np.searchsorted(cases, wanted, "right")
        counts = hi - lo
        # Position of every chunk: its case's first position plus its place among them.
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return ids[np.repeat(lo, counts) + offsets], counts

    @functools.cached_property
    def _by_case(self) -> tuple[np.ndarray, np.ndarray]:
        # Built on first use, once per opened generation.
        order = np.argsort(self.cases, kind="stable")
        return self.cases[order], self.ids[order]
