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

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
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


class Newest:
    """The cases of one run by id: a duplicated id keeps its newest copy, reported by id.

    Two overlapping exports, or one edited reply, give the same id twice; the copy with the
    latest message (then resolution, then creation) wins, and a tie goes to the later one.
    With `keep_cases=False` only each winner's position in the stream is kept (a few bytes
    per id), so that a large export can be read again and streamed into the writer.
    """

    def __init__(self, *, keep_cases: bool = True) -> None:
        self.keep_cases = keep_cases
        # id -> (newness, position in the stream, content hash, the case when kept)
        self._cases: dict[str, tuple[tuple[float, float, float], int, str, Case | None]] = {}
        self.by_source: dict[str, set[str]] = {}
        self._position = 0

    def add(self, case: Case | Unchanged, source: str, report: ReadReport) -> None:
        position = self._position
        self._position += 1
        self.by_source.setdefault(source, set()).add(case.id)
        # An unchanged case (not built again) brings the newness and hash stored with it.
        if isinstance(case, Unchanged):
            newness_, digest = case.newness, case.digest
        else:
            newness_, digest = newness(case), case.content_hash()
        known = self._cases.get(case.id)
        if known is not None:
            report.duplicates.append(case.id)
            if known[2] != digest:
                report.problem(source, f"case id {case.id!r} appears more than once with "
                                       "different content; the newest copy was kept",
                               lost=False)
            if newness_ < known[0]:
                return
        self._cases[case.id] = (newness_, position, digest,
                                case if self.keep_cases and isinstance(case, Case) else None)

    def wins(self, case: Case | Unchanged, position: int) -> bool:
        """True when `case`, at `position` of a second read of the stream, is the winner."""
        known = self._cases.get(case.id)
        return known is not None and known[1] == position and known[2] == case.content_hash()

    def __len__(self) -> int:
        return len(self._cases)

    def __iter__(self) -> Iterator[Case]:
        if not self.keep_cases:
            raise TypeError("Newest(keep_cases=False) does not keep the cases")
        return (entry[3] for entry in self._cases.values() if entry[3] is not None)

    @property
    def ids(self) -> set[str]:
        return set(self._cases)


def check_delete_ratio(source: str, gone: int, owned: int, max_ratio: float) -> None:
    """Raise `InputError` when a run would delete more than `max_ratio` of a source's cases."""
    if owned and gone / owned > max_ratio:
        raise InputError(source, f"would delete {gone} of the {owned} cases it held "
                                 f"({gone / owned:.0%}), more than --max-delete-ratio "
                                 f"{max_ratio:g}; nothing was written. If the source really "
                                 "lost them, run again with --max-delete-ratio 1")
