"""The one writer of an index: builds the next generation from the current one.

Cases whose text did not change keep their vectors (matched by content hash); only new or
changed text is embedded, at commit, in large batches that the encoder sorts by length for
little padding. What is still to embed waits in the new generation's SQLite file, not in
memory, and each case's id and hash are looked up there, so a build's memory does not grow
with the number of cases.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from casematch.cases import Case
from casematch.encoders import Encoder
from casematch.errors import IndexFormatError
from casematch.sources import Unchanged
from casematch.storage import generations as gens
from casematch.storage import vectors
from casematch.storage.store import CaseStore
from casematch.storage.vectors import EXACT_LIMIT
from casematch.version import __version__


@dataclass
class UpdateResult:
    """What one build or update changed; `embedded` counts texts sent to the model.

    Attributes:
        added, updated, deleted, unchanged: cases by what happened to them.
        embedded: texts (windows) sent to the encoder.
        skipped_unresolved: unresolved cases left out.
        refreshed: cases whose text did not change but whose metadata did.
        generation: the generation serving after the run.
        seconds: wall time of the run.
    """

    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    embedded: int = 0
    skipped_unresolved: int = 0
    # Unchanged text, changed metadata (a reaction, a url): no embedding, still written.
    refreshed: int = 0
    generation: str = ""
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted or self.refreshed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "embedded": self.embedded,
            "skipped_unresolved": self.skipped_unresolved,
            "refreshed": self.refreshed,
            "generation": self.generation,
            "seconds": round(self.seconds, 3),
        }


# Texts embedded per encoder call at commit: large enough that length sorting still pads
# little, small enough that a batch's texts and vectors are a few megabytes.
EMBED_BATCH = 8192


class IndexWriter:
    """Builds the next generation of an index. One writer per index at a time (a lock)."""

    def __init__(self, root: Path, encoder: Encoder, *, include_unresolved: bool = False,
                 fresh: bool = False) -> None:
        self.root = root
        self.encoder = encoder
        self.include_unresolved = include_unresolved
        self.fresh = fresh
        # Vectors above which the index becomes approximate (lowered by tests).
        self.exact_limit = EXACT_LIMIT
        self.result = UpdateResult()
        self._removed: list[int] = []
        # Rowids given to this writer, one bit each (`delete_unseen`), rather than a set of ids.
        self._seen = bytearray()
        # Input fingerprints written (`upsert`'s `memo`): they alone are worth a generation,
        # or an index written before them would build every case again on every run.
        self._inputs_written = False
        self._started = time.perf_counter()

    def __enter__(self) -> IndexWriter:
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(gens.write_lock(self.root))
        try:
            self._open_base()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if getattr(self, "_store", None) is not None:
                self._store.close()
            if exc_type is not None and self._tmp.exists():
                shutil.rmtree(self._tmp, ignore_errors=True)
        finally:
            self._stack.close()

    def _open_base(self) -> None:
        self.generation = gens.next_generation_name(self.root)
        gens.remove_leftovers(self.root)  # we hold the lock, so no writer is alive
        self._tmp = self.root / f".tmp-{self.generation}-{os.getpid()}"
        self._tmp.mkdir()
        base_gen = None
        if not self.fresh and (self.root / gens.CURRENT).exists():
            base_gen = gens.current_generation(self.root)
            manifest = gens.read_manifest(self.root / base_gen)
            if manifest["model"] != self.encoder.name:
                base_gen = None  # another model: nothing can be reused
        self._base = base_gen
        if base_gen is not None:
            # sqlite3's backup API copies a consistent snapshot, whatever readers do.
            source = sqlite3.connect(f"file:{self.root / base_gen / gens.CASES}?mode=ro",
                                     uri=True)
            target = sqlite3.connect(self._tmp / gens.CASES)
            source.backup(target)
            source.close()
            target.close()
            self._vectors = vectors.read(self.root / base_gen / gens.VECTORS)
        else:
            # Exact to start with; commit() switches to IVF past a size (storage.vectors).
            self._vectors = vectors.new_index(self.encoder.dimension)
        self._store = CaseStore(self._tmp / gens.CASES, create=True)
        self._store.track_pending()

    # ---- changes ------------------------------------------------------------------------

    def recall(self, case_id: str, fingerprint: str) -> Unchanged | None:
        """The case stored under `case_id` when it was built from input with `fingerprint`
        (then `upsert` it as it is, unbuilt), else None."""
        found = self._store.recall_input(case_id, fingerprint)
        if found is None:
            return None
        rowid, digest, resolved, newness, cleaned = found
        return Unchanged(case_id, resolved, digest, newness, cleaned, rowid)

    def upsert(self, case: Case | Unchanged, *,
               memo: tuple[str, tuple[float, float, float], int] | None = None) -> None:
        """Add or update `case`. `memo` is (input fingerprint, newness, characters cleaned)
        of a case built from input a later run can recognise (`recall`)."""
        if isinstance(case, Unchanged):
            if not case.resolved and not self.include_unresolved:
                self.result.skipped_unresolved += 1
                self._remove_rowids([case.rowid])
                self.result.deleted += 1
                return
            self.result.unchanged += 1
            self._see(case.rowid)
            return
        known = self._store.known(case.id)
        if not case.resolved and not self.include_unresolved:
            self.result.skipped_unresolved += 1
            if known:
                self._remove_rowids([known[0]])
                self.result.deleted += 1
            return
        digest = case.content_hash()
        if known and known[1] == digest:
            self.result.unchanged += 1
            self._see(known[0])
            # Metadata (reactions, url, members) may change without the text changing.
            self.result.refreshed += self._store.update_case(known[0], case, known[2])
            self._remember_input(case.id, digest, memo, known=True)
            return
        if known:
            self._remove_rowids([known[0]])
            self.result.updated += 1
        else:
            self.result.added += 1
        rowid = self._store.add_case(case, digest)
        self._see(rowid)
        self._store.add_chunks(rowid, "case", self.encoder.chunk(case.search_text()),
                               pending=True)
        self._remember_input(case.id, digest, memo, known=False)

    def _remember_input(self, case_id: str, digest: str,
                        memo: tuple[str, tuple[float, float, float], int] | None, *,
                        known: bool) -> None:
        if memo is not None:
            self._store.set_input(case_id, memo[0], digest, memo[1], memo[2])
            self._inputs_written = True
        elif known:
            # Built without a fingerprint (reindex, another format): whatever was recorded
            # for it no longer describes the stored case.
            self._store.forget_input(case_id)

    def _see(self, rowid: int) -> None:
        byte = rowid >> 3
        if byte >= len(self._seen):
            self._seen.extend(bytes(byte + 1 - len(self._seen) + len(self._seen) // 2))
        self._seen[byte] |= 1 << (rowid & 7)

    def _seen_rowid(self, rowid: int) -> bool:
        byte = rowid >> 3
        return byte < len(self._seen) and bool(self._seen[byte] & (1 << (rowid & 7)))

    def delete(self, case_id: str) -> None:
        known = self._store.known(case_id)
        if known:
            self._remove_rowids([known[0]])
            self.result.deleted += 1

    def case_ids(self) -> Iterator[str]:
        """The ids the next generation holds so far, read as they are consumed (finish
        before changing anything)."""
        return self._store.iter_ids()

    def delete_unseen(self) -> None:
        """Delete every case this writer was not given (a full rebuild from a source)."""
        for rowid, _case_id in self._store.rowids_and_ids():
            if not self._seen_rowid(rowid):
                self._remove_rowids([rowid])
                self.result.deleted += 1

    def _remove_rowids(self, rowids: list[int]) -> None:
        # Removal from a flat index rewrites the whole array: do it once, at commit.
        removed = self._store.delete_rowids(rowids)
        # Chunks added in this run (an id given twice) are not in the vectors yet: drop them
        # from what is still to embed rather than from the index.
        pending = self._store.drop_pending(removed)
        self._removed += [cid for cid in removed if cid not in pending]

    # ---- commit ---------------------------------------------------------------------------

    def commit(self, *, progress: bool = False) -> UpdateResult:
        """Write the generation and switch to it; a no-op when nothing changed."""
        if self._base is not None and not self.result.changed and not self._inputs_written:
            self._store.close()
            shutil.rmtree(self._tmp, ignore_errors=True)
            self.result.generation = self._base
            self.result.seconds = time.perf_counter() - self._started
            return self.result
        self.result.embedded = self._store.pending_count()
        if self._removed:
            vectors.remove(self._vectors, self._removed)
        for chunk_ids, texts in self._store.pending_batches(EMBED_BATCH):
            vectors.add(self._vectors, self.encoder.encode(texts, progress=progress), chunk_ids)
        # Exact or approximate by size; may retrain or convert (once per generation).
        self._vectors = vectors.fit(self._vectors, exact_limit=self.exact_limit)
        stats = self._store.stats()
        if stats["chunks"] != self._vectors.ntotal:
            raise IndexFormatError(
                f"{self.root}: internal mismatch, {stats['chunks']} chunks and "
                f"{self._vectors.ntotal} vectors; nothing was written"
            )
        self._store.finish_lexical()
        self._store.finish_postings()
        self._store.finish_sketches()
        self._store.commit()
        self._store.close()
        vectors.write(self._vectors, self._tmp / gens.VECTORS)
        gens.write_manifest(self._tmp, {
            "casematch_version": __version__,
            "model": self.encoder.name,
            "dimension": self.encoder.dimension,
            "normalized": True,
            "metric": "inner_product",
            "faiss_index": vectors.describe(self._vectors),
            # Informational: bf16 and fp32 vectors are interchangeable (cosine >= 0.9999).
            "encoder_runtime": getattr(self.encoder, "runtime", None),
            # Lexical side: an FTS5 table in the SQLite file (title, problem, resolution).
            "lexical": "fts5",
            "cases": stats["cases"],
            "resolved": stats["resolved"],
            "chunks": stats["chunks"],
            "include_unresolved": self.include_unresolved,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "generation": self.generation,
        })
        gens.publish(self.root, self._tmp, self.generation)
        gens.prune(self.root)
        self.result.generation = self.generation
        self.result.seconds = time.perf_counter() - self._started
        return self.result
