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
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from casematch.errors import IndexFormatError

SYNC_FILE = "sync.sqlite"

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

    def reset(self) -> None:
        """Forget every cursor (a --full run starts every source from the beginning)."""
        self._db.execute("DELETE FROM cursors")
        self._db.execute("DELETE FROM owned")

    def commit(self) -> None:
        self._db.commit()

    def rollback(self) -> None:
        self._db.rollback()
