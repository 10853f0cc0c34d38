"""`CaseIndex`: a directory of immutable generations, switched atomically.

Layout of an index directory::

    CURRENT             the name of the generation readers open ("g000003")
    g000003/            manifest.json, vectors.faiss, cases.sqlite
    g000002/            the previous generation, kept for rollback
    .lock               held by the one process writing a new generation

A writer builds the next generation in a temporary folder, renames it into place and
only then rewrites CURRENT (`os.replace`, atomic on POSIX). A reader that opened an
older generation keeps its open files; a crash at any point leaves CURRENT naming the
last complete generation.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from casematch import __version__
from casematch.cases import Case, Match
from casematch.embedding import (
    DEFAULT_BATCH_SIZE,
    Encoder,
    canonical_model_name,
    load_encoder,
    serve_queries_on_one_thread,
)
from casematch.errors import IndexFormatError, IndexLockedError, ModelMismatchError
from casematch.store import CaseStore
from casematch.vectors import EXACT_LIMIT, VectorIndex
from casematch.vectors import describe as describe_vector_index
from casematch.vectors import fit as fit_vector_index
from casematch.vectors import new_index as new_vector_index

if TYPE_CHECKING:
    from casematch.search import Filters, SearchOptions

FORMAT_VERSION = 1
MANIFEST, VECTORS, CASES, CURRENT, LOCK = (
    "manifest.json", "vectors.faiss", "cases.sqlite", "CURRENT", ".lock",
)
KEEP_GENERATIONS = 2


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a hard dependency
        from casematch.errors import MissingDependencyError

        raise MissingDependencyError("faiss is not installed: pip install faiss-cpu") from exc
    return faiss


@dataclass
class UpdateResult:
    """What one build or update changed; `embedded` counts texts sent to the model."""

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


class CaseIndex:
    """An opened index generation: search it, or write the next generation from it."""

    def __init__(
        self,
        root: Path,
        generation: str,
        manifest: dict[str, Any],
        store: CaseStore,
        vectors: Any,
        encoder: Encoder | Callable[[], Encoder],
    ) -> None:
        self.root = root
        self.generation = generation
        self.manifest = manifest
        self.store = store
        self.vectors = vectors
        self._encoder = encoder
        self.chunk_ids, self.chunk_cases = store.chunk_map()
        if len(self.chunk_ids) != self.vectors.ntotal:
            raise IndexFormatError(
                f"{root / generation}: {self.vectors.ntotal} vectors but "
                f"{len(self.chunk_ids)} chunks; the generation is damaged, rebuild the index"
            )

    # ---- opening --------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        model: str | None = None,
        encoder: Encoder | None = None,
        device: str = "cpu",
        runtime: str = "auto",
    ) -> CaseIndex:
        """Open the current generation. The model loads on the first search, not here."""
        root = Path(path)
        generation = current_generation(root)
        gen_dir = root / generation
        manifest = read_manifest(gen_dir)
        wanted = encoder.name if encoder else canonical_model_name(model) if model else None
        if wanted and wanted != manifest["model"]:
            raise ModelMismatchError(
                f"{root} was built with model {manifest['model']!r}, not {wanted!r}: "
                f"open it with --model {manifest['model']} or rebuild it with the new model"
            )
        try:
            # Wrapped once per process: the query path reads no file after this.
            vectors = VectorIndex(_faiss().read_index(str(gen_dir / VECTORS)))
        except RuntimeError as exc:
            raise IndexFormatError(
                f"{gen_dir / VECTORS}: cannot read the vector file ({_first_line(exc)}); "
                "rebuild the index"
            ) from exc
        store = CaseStore(gen_dir / CASES)
        def query_encoder() -> Encoder:
            # An opened index answers queries; building loads its own encoder.
            serve_queries_on_one_thread()
            return load_encoder(manifest["model"], device=device, runtime=runtime)

        lazy: Encoder | Callable[[], Encoder] = encoder or query_encoder
        return cls(root, generation, manifest, store, vectors, lazy)

    @classmethod
    def build(
        cls,
        cases: Iterable[Case],
        path: str | Path,
        *,
        model: str | None = None,
        encoder: Encoder | None = None,
        include_unresolved: bool = False,
        progress: bool = False,
        reuse: bool = True,
        device: str = "cpu",
        runtime: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> tuple[CaseIndex, UpdateResult]:
        """Write a generation holding exactly `cases`; cases missing from it are deleted.

        Vectors of cases whose text did not change are copied from the current generation
        (same model), so rebuilding from a full export re-embeds only what changed.
        """
        root = Path(path)
        encoder = encoder or load_encoder(model or "default", device=device, runtime=runtime,
                                          batch_size=batch_size)
        with IndexWriter(root, encoder, include_unresolved=include_unresolved,
                         fresh=not reuse) as writer:
            for case in cases:
                writer.upsert(case)
            writer.delete_unseen()
            result = writer.commit(progress=progress)
        return cls.open(root, encoder=encoder), result

    def update(
        self,
        cases: Iterable[Case] = (),
        *,
        delete: Iterable[str] = (),
        include_unresolved: bool | None = None,
        progress: bool = False,
    ) -> tuple[CaseIndex, UpdateResult]:
        """Write a new generation with `cases` upserted and `delete` ids removed."""
        keep_unresolved = (
            self.manifest.get("include_unresolved", False)
            if include_unresolved is None else include_unresolved
        )
        with IndexWriter(self.root, self.encoder, include_unresolved=keep_unresolved) as writer:
            for case in cases:
                writer.upsert(case)
            for case_id in delete:
                writer.delete(case_id)
            result = writer.commit(progress=progress)
        return CaseIndex.open(self.root, encoder=self.encoder), result

    # ---- reading --------------------------------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        if not isinstance(self._encoder, Encoder):
            self._encoder = self._encoder()
        return self._encoder

    def search(self, text: str, k: int = 5, *, filters: Filters | None = None,
               options: SearchOptions | None = None) -> list[Match]:
        """The `k` past cases closest to `text`, best first (hybrid dense + lexical)."""
        from casematch.search import search

        return search(self, text, k, filters=filters, options=options)

    def get(self, case_id: str) -> Case | None:
        return self.store.case_by_id(case_id)

    def __len__(self) -> int:
        return int(self.manifest["cases"])

    def stats(self) -> dict[str, Any]:
        return {
            "path": str(self.root),
            "generation": self.generation,
            **{k: self.manifest[k] for k in ("model", "dimension", "built_at", "format")},
            **self.store.stats(),
        }

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> CaseIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- generations on disk ------------------------------------------------------------------


def current_generation(root: Path) -> str:
    pointer = root / CURRENT
    if not pointer.is_file():
        if not root.exists():
            raise IndexFormatError(
                f"{root}: no index here; build one with `casematch index SOURCE --index {root}`"
            )
        raise IndexFormatError(f"{root}: not a casematch index (no {CURRENT} file)")
    name = pointer.read_text(encoding="utf-8").strip()
    if not name or not (root / name).is_dir():
        raise IndexFormatError(f"{pointer}: names generation {name!r}, which is missing")
    return name


def read_manifest(gen_dir: Path) -> dict[str, Any]:
    path = gen_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexFormatError(f"{path}: missing; rebuild the index") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{path}: corrupted ({exc}); rebuild the index") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise IndexFormatError(
            f"{path}: index format {found!r}, this casematch reads {FORMAT_VERSION}; rebuild it"
        )
    return manifest


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _Pending:
    chunk_ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


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
        self._pending = _Pending()
        self._removed: list[int] = []
        self._seen: set[str] = set()
        self._started = time.perf_counter()

    def __enter__(self) -> IndexWriter:
        from filelock import FileLock, Timeout

        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(self.root / LOCK)
        try:
            self._lock.acquire(timeout=0)
        except Timeout as exc:
            raise IndexLockedError(
                f"{self.root}: another casematch process is writing this index; "
                "try again when it has finished"
            ) from exc
        try:
            self._open_base()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if getattr(self, "_store", None) is not None:
                self._store.close()
            if exc_type is not None and self._tmp.exists():
                shutil.rmtree(self._tmp, ignore_errors=True)
        finally:
            self._lock.release()

    def _open_base(self) -> None:
        faiss = _faiss()
        existing = sorted(p.name for p in self.root.glob("g[0-9]*") if p.is_dir())
        number = int(existing[-1][1:]) + 1 if existing else 1
        self.generation = f"g{number:06d}"
        # Leftovers of writers that died mid-way (we hold the lock, so none is alive).
        for stale in self.root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        self._tmp = self.root / f".tmp-{self.generation}-{os.getpid()}"
        self._tmp.mkdir()
        base_gen = None
        if not self.fresh and (self.root / CURRENT).exists():
            base_gen = current_generation(self.root)
            manifest = read_manifest(self.root / base_gen)
            if manifest["model"] != self.encoder.name:
                base_gen = None  # another model: nothing can be reused
        self._base = base_gen
        if base_gen is not None:
            # sqlite3's backup API copies a consistent snapshot, whatever readers do.
            source = sqlite3.connect(f"file:{self.root / base_gen / CASES}?mode=ro", uri=True)
            target = sqlite3.connect(self._tmp / CASES)
            source.backup(target)
            source.close()
            target.close()
            self._vectors = faiss.read_index(str(self.root / base_gen / VECTORS))
        else:
            # Exact to start with; commit() switches to IVF past a size (casematch.vectors).
            self._vectors = new_vector_index(self.encoder.dimension)
        self._store = CaseStore(self._tmp / CASES, create=True)
        self._hashes = self._store.hashes()

    # ---- changes ------------------------------------------------------------------------

    def upsert(self, case: Case) -> None:
        self._seen.add(case.id)
        if not case.resolved and not self.include_unresolved:
            self.result.skipped_unresolved += 1
            if case.id in self._hashes:
                self.delete(case.id)
            return
        digest = case.content_hash()
        known = self._hashes.get(case.id)
        if known and known[1] == digest:
            self.result.unchanged += 1
            # Metadata (reactions, url, members) may change without the text changing.
            self.result.refreshed += self._store.update_case(known[0], case)
            return
        if known:
            self._remove_rowids([known[0]])
            self.result.updated += 1
        else:
            self.result.added += 1
        rowid = self._store.add_case(case, digest)
        self._hashes[case.id] = (rowid, digest)
        texts = self.encoder.chunk(case.search_text())
        self._pending.chunk_ids += self._store.add_chunks(rowid, "case", texts)
        self._pending.texts += texts

    def delete(self, case_id: str) -> None:
        known = self._hashes.pop(case_id, None)
        if known:
            self._remove_rowids([known[0]])
            self.result.deleted += 1

    def delete_unseen(self) -> None:
        """Delete every case this writer was not given (a full rebuild from a source)."""
        for case_id in [c for c in self._hashes if c not in self._seen]:
            self.delete(case_id)

    def _remove_rowids(self, rowids: list[int]) -> None:
        # Removal from a flat index rewrites the whole array: do it once, at commit.
        self._removed += self._store.delete_rowids(rowids)

    # ---- commit ---------------------------------------------------------------------------

    def commit(self, *, progress: bool = False) -> UpdateResult:
        """Write the generation and switch to it; a no-op when nothing changed."""
        faiss = _faiss()
        if self._base is not None and not self.result.changed:
            self._store.close()
            shutil.rmtree(self._tmp, ignore_errors=True)
            self.result.generation = self._base
            self.result.seconds = time.perf_counter() - self._started
            return self.result
        self.result.embedded = len(self._pending.texts)
        if self._removed:
            self._vectors.remove_ids(np.array(self._removed, dtype=np.int64))
        if self._pending.texts:
            vectors = self.encoder.encode(self._pending.texts, progress=progress)
            self._vectors.add_with_ids(vectors, np.array(self._pending.chunk_ids, dtype=np.int64))
        # Exact or approximate by size; may retrain or convert (once per generation).
        self._vectors = fit_vector_index(self._vectors, exact_limit=self.exact_limit)
        stats = self._store.stats()
        if stats["chunks"] != self._vectors.ntotal:
            raise IndexFormatError(
                f"{self.root}: internal mismatch, {stats['chunks']} chunks and "
                f"{self._vectors.ntotal} vectors; nothing was written"
            )
        self._store.finish_lexical()
        self._store.commit()
        self._store.close()
        faiss.write_index(self._vectors, str(self._tmp / VECTORS))
        manifest = {
            "format": FORMAT_VERSION,
            "casematch_version": __version__,
            "model": self.encoder.name,
            "dimension": self.encoder.dimension,
            "normalized": True,
            "metric": "inner_product",
            "faiss_index": describe_vector_index(self._vectors),
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
        }
        (self._tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        for name in (CASES, VECTORS, MANIFEST):
            with (self._tmp / name).open("rb") as handle:
                os.fsync(handle.fileno())
        final = self.root / self.generation
        os.rename(self._tmp, final)
        pointer = self.root / f"{CURRENT}.tmp"
        pointer.write_text(self.generation + "\n", encoding="utf-8")
        with pointer.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(pointer, self.root / CURRENT)
        _fsync_dir(self.root)
        self._prune()
        self.result.generation = self.generation
        self.result.seconds = time.perf_counter() - self._started
        return self.result

    def _prune(self) -> None:
        generations = sorted(p for p in self.root.glob("g[0-9]*") if p.is_dir())
        for old in generations[:-KEEP_GENERATIONS]:
            shutil.rmtree(old, ignore_errors=True)
