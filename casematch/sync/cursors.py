"""Per-source sync cursors, kept in `DIR/sync.sqlite` beside the index generations.

Cursors live at the index root, not inside a generation, so that switching or pruning
generations never loses them. They are written only after a new generation is committed
(or after a run that changed nothing): a crash before that leaves the old cursors, and the
next run fetches the same changes again, which is harmless because upserts are idempotent
(content hashes).

Besides the cursor, each source's case ids are remembered ("ownership"): an export is a
full snapshot, so the ids a source held last time and no longer yields were deleted there.
Only the one index writer (who holds the index lock) writes this file.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from casematch.cases import Case
from casematch.errors import IndexFormatError, InputError
from casematch.sources import ReadReport, Unchanged

SYNC_FILE = "sync.sqlite"
# A complete source may lose at most this share of the cases it held in one run; more is
# refused unless the user raises it (as rsync's --max-delete): a truncated export or a
# wrong path looks exactly like mass deletion.
DEFAULT_MAX_DELETE_RATIO = 0.2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursors (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    generation TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS owned (
    source TEXT NOT NULL,
    case_id TEXT NOT NULL,
    PRIMARY KEY (source, case_id)
) WITHOUT ROWID;
"""


class SyncState:
    """Read and write the cursors and case ownership of every source of one index."""

    def __init__(self, root: Path) -> None:
        self.path = root / SYNC_FILE
        try:
            self._db = sqlite3.connect(self.path)
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise IndexFormatError(
                f"{self.path}: unreadable sync state ({exc}); delete it and run "
                "`casematch reindex --full`"
            ) from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SyncState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cursor(self, source: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT cursor FROM cursors WHERE source = ?", (source,)).fetchone()
        return json.loads(row[0]) if row else None

    def cursors(self) -> dict[str, dict[str, Any]]:
        rows = self._db.execute("SELECT source, cursor FROM cursors").fetchall()
        return {source: json.loads(cursor) for source, cursor in rows}

    def owned(self, source: str) -> set[str]:
        rows = self._db.execute("SELECT case_id FROM owned WHERE source = ?", (source,))
        return {case_id for (case_id,) in rows}

    def owned_count(self, source: str) -> int:
        row = self._db.execute("SELECT count(*) FROM owned WHERE source = ?", (source,))
        return int(row.fetchone()[0])

    def run_cases(self) -> RunCases:
        """A record of the cases this run reads, beside the ownership it is checked against."""
        return RunCases(self._db)

    def save(
        self,
        source: str,
        *,
        cursor: Mapping[str, Any] | None,
        generation: str,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
        replace_owned: bool = False,
    ) -> None:
        """Record one source's progress; call `commit` once every source is saved."""
        if cursor is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO cursors VALUES (?, ?, ?, ?)",
                (source, json.dumps(cursor, sort_keys=True), generation,
                 datetime.now(UTC).isoformat(timespec="seconds")),
            )
        if replace_owned:
            self._db.execute("DELETE FROM owned WHERE source = ?", (source,))
        self._db.executemany("DELETE FROM owned WHERE source = ? AND case_id = ?",
                             ((source, case_id) for case_id in remove))
        self._db.executemany("INSERT OR IGNORE INTO owned VALUES (?, ?)",
                             ((source, case_id) for case_id in add))

    def sources(self) -> list[str]:
        """Every source that owns a case or has a cursor."""
        rows = self._db.execute("SELECT source FROM owned UNION SELECT source FROM cursors")
        return sorted(source for (source,) in rows)

    def forget(self, source: str) -> None:
        """Drop a source's cursor and ownership (its cases were pruned from the index)."""
        self._db.execute("DELETE FROM cursors WHERE source = ?", (source,))
        self._db.execute("DELETE FROM owned WHERE source = ?", (source,))

    def reset(self) -> None:
        """Forget every cursor (a --full run starts every source from the beginning)."""
        self._db.execute("DELETE FROM cursors")
        self._db.execute("DELETE FROM owned")

    def commit(self) -> None:
        self._db.commit()

    def rollback(self) -> None:
        self._db.rollback()


def newness(case: Case) -> tuple[float, float, float]:
    """What makes one copy of a case newer than another (`Newest`)."""
    def stamp(value: datetime | None) -> float:
        return value.timestamp() if value else float("-inf")

    last_message = max((stamp(m.created_at) for m in case.messages), default=float("-inf"))
    return last_message, stamp(case.resolved_at), stamp(case.created_at)


Newness = tuple[float, float, float]


def _replaces(case_id: str, newness_: Newness, digest: str, known_newness: Newness,
              known_digest: str, source: str, report: ReadReport) -> bool:
    """Whether a second copy of `case_id` replaces the one kept so far (it is reported)."""
    report.duplicates.append(case_id)
    if known_digest != digest:
        report.problem(source, f"case id {case_id!r} appears more than once with "
                               "different content; the newest copy was kept", lost=False)
    return newness_ >= known_newness


def _stamp(case: Case | Unchanged) -> tuple[Newness, str]:
    # An unchanged case (not built again) brings the newness and hash stored with it.
    if isinstance(case, Unchanged):
        return case.newness, case.digest
    return newness(case), case.content_hash()


class Newest:
    """The cases of one run by id, held in memory: a duplicated id keeps its newest copy,
    reported by id (for `reindex`, whose batches hold their cases anyway).

    Two overlapping exports, or one edited reply, give the same id twice; the copy with the
    latest message (then resolution, then creation) wins, and a tie goes to the later one.
    """

    def __init__(self) -> None:
        self._cases: dict[str, tuple[Newness, int, str, Case]] = {}
        self._position = 0

    def add(self, case: Case, source: str, report: ReadReport) -> None:
        position = self._position
        self._position += 1
        newness_, digest = _stamp(case)
        known = self._cases.get(case.id)
        if known is None or _replaces(case.id, newness_, digest, known[0], known[2], source,
                                      report):
            self._cases[case.id] = (newness_, position, digest, case)

    def __len__(self) -> int:
        return len(self._cases)

    def __iter__(self) -> Iterator[Case]:
        return (entry[3] for entry in self._cases.values())

    @property
    def ids(self) -> set[str]:
        return set(self._cases)


# (case id, newness as three numbers, position in the stream, content hash): one read.
_Row = tuple[str, float, float, float, int, str]
# Reads of one run resolved against the tables at a time: enough to make the SQLite work a
# few statements per batch, few enough that the batch's records stay a few hundred KB.
RUN_BATCH = 2048
# Pages of the temporary tables kept in memory (KiB); beyond it SQLite spills them to its
# temporary file, so the run's memory stays the same however many cases it reads.
_RUN_CACHE_KIB = 8192

_RUN_SCHEMA = """
CREATE TEMP TABLE IF NOT EXISTS run_newest (
    case_id TEXT PRIMARY KEY,
    n0 REAL NOT NULL, n1 REAL NOT NULL, n2 REAL NOT NULL,
    position INTEGER NOT NULL,
    digest TEXT NOT NULL
) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS run_yielded (
    source TEXT NOT NULL,
    case_id TEXT NOT NULL,
    PRIMARY KEY (source, case_id)
) WITHOUT ROWID;
"""


class RunCases:
    """The cases one `casematch index` run has read, by id, as `Newest` decides them, kept
    in temporary tables of the sync state's connection rather than in memory.

    Per id it keeps the winner's newness, position in the stream and content hash, and
    which sources yielded the id (ownership). SQLite keeps temporary tables in a file of
    its own that it deletes when the connection closes (and unlinks as soon as it opens
    it, so a killed run leaves nothing behind); at most `_RUN_CACHE_KIB` of it is cached.

    Reads wait in a batch of up to `RUN_BATCH` and are resolved together: one query for the
    winners so far, then the batch in stream order exactly as `Newest` would, then one
    upsert. Call `flush` before reading a report's duplicates or any count.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        db.execute(f"PRAGMA temp.cache_size = -{_RUN_CACHE_KIB}")
        db.executescript(_RUN_SCHEMA)
        self._position = 0
        # Read since the last flush, in stream order, as rows of `run_newest`.
        self._batch: list[_Row] = []
        self._batch_from: tuple[str, ReadReport] | None = None

    def add(self, case: Case | Unchanged, source: str, report: ReadReport) -> None:
        if self._batch_from is not None and (self._batch_from[0] != source
                                             or self._batch_from[1] is not report):
            self.flush()
        self._batch_from = (source, report)
        newness_, digest = _stamp(case)
        self._batch.append((case.id, *newness_, self._position, digest))
        self._position += 1
        if len(self._batch) >= RUN_BATCH:
            self.flush()

    def flush(self) -> None:
        """Resolve the reads waiting in the batch (duplicates go to their report)."""
        if not self._batch or self._batch_from is None:
            return
        source, report = self._batch_from
        batch, self._batch = self._batch, []
        ids = json.dumps([row[0] for row in batch])
        known: dict[str, _Row] = {row[0]: row for row in self._db.execute(
            "SELECT case_id, n0, n1, n2, position, digest FROM temp.run_newest"
            " WHERE case_id IN (SELECT value FROM json_each(?))", (ids,))}
        winners: dict[str, _Row] = {}
        for row in batch:
            previous = known.get(row[0])
            if previous is None or _replaces(row[0], row[1:4], row[5], previous[1:4],
                                             previous[5], source, report):
                known[row[0]] = winners[row[0]] = row
        self._db.executemany("INSERT OR REPLACE INTO temp.run_newest VALUES (?, ?, ?, ?, ?, ?)",
                             list(winners.values()))
        self._db.executemany("INSERT OR IGNORE INTO temp.run_yielded VALUES (?, ?)",
                             [(source, row[0]) for row in batch])

    def wins(self, case: Case | Unchanged, position: int) -> bool:
        """True when `case`, at `position` of a second read of the stream, is the winner."""
        row = self._db.execute("SELECT position, digest FROM temp.run_newest WHERE case_id = ?",
                               (case.id,)).fetchone()
        return row is not None and row[0] == position and row[1] == case.content_hash()

    def __len__(self) -> int:
        self.flush()
        return int(self._db.execute("SELECT count(*) FROM temp.run_newest").fetchone()[0])

    def lost(self, source: str) -> list[str]:
        """The ids `source` owns that no source of this run yielded, sorted."""
        self.flush()
        rows = self._db.execute(
            "SELECT case_id FROM owned WHERE source = ? AND case_id NOT IN"
            " (SELECT case_id FROM temp.run_newest) ORDER BY case_id", (source,))
        return [case_id for (case_id,) in rows]

    def unread(self, case_ids: Iterable[str], *, owned_by: Sequence[str] = ()) -> list[str]:
        """Of `case_ids`, those this run did not read and none of `owned_by` owns."""
        self.flush()
        marks = ",".join("?" * len(owned_by))
        query = ("SELECT value FROM json_each(?) WHERE value NOT IN"
                 " (SELECT case_id FROM temp.run_newest) AND value NOT IN"
                 f" (SELECT case_id FROM owned WHERE source IN ({marks}))")
        found: list[str] = []
        ids = iter(case_ids)
        while chunk := list(itertools.islice(ids, RUN_BATCH * 8)):
            rows = self._db.execute(query, (json.dumps(chunk), *owned_by))
            found += [case_id for (case_id,) in rows]
        return found

    def own(self, source: str, *, replace: bool) -> None:
        """Record that `source` owns what it yielded in this run; with `replace`, only that
        (it was read completely). Only the difference is written, so an unchanged re-run
        writes nothing."""
        self.flush()
        if replace:
            self._db.execute(
                "DELETE FROM owned WHERE source = ? AND case_id NOT IN"
                " (SELECT case_id FROM temp.run_yielded WHERE source = ?)", (source, source))
        self._db.execute(
            "INSERT OR IGNORE INTO owned SELECT source, case_id FROM temp.run_yielded"
            " WHERE source = ?", (source,))


def check_delete_ratio(source: str, gone: int, owned: int, max_ratio: float) -> None:
    """Raise `InputError` when a run would delete more than `max_ratio` of a source's cases."""
    if owned and gone / owned > max_ratio:
        raise InputError(source, f"would delete {gone} of the {owned} cases it held "
                                 f"({gone / owned:.0%}), more than --max-delete-ratio "
                                 f"{max_ratio:g}; nothing was written. If the source really "
                                 "lost them, run again with --max-delete-ratio 1")
