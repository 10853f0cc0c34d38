"""An index directory on disk: immutable generations, switched atomically.

Layout::

    CURRENT             the name of the generation readers open ("g000003")
    g000003/            manifest.json, vectors.faiss, cases.sqlite
    g000002/            the previous generation, kept for rollback
    .lock               held by the one process writing a new generation
    sync.sqlite         per-source cursors (casematch.sync), outside any generation

A writer builds the next generation in a temporary folder, renames it into place and
only then rewrites CURRENT (`os.replace`, atomic on POSIX). A reader that opened an
older generation keeps its open files; a crash at any point leaves CURRENT naming the
last complete generation.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from casematch.errors import IndexFormatError, IndexLockedError
from casematch.storage import vectors as vector_files
from casematch.storage.store import CaseStore, ChunkMap
from casematch.storage.vectors import VectorIndex

# Version 2: every generation has FTS5 and its lexicon, and 16-bit vector codes.
FORMAT_VERSION = 2
MANIFEST, VECTORS, CASES, CURRENT, LOCK = (
    "manifest.json", "vectors.faiss", "cases.sqlite", "CURRENT", ".lock",
)
KEEP_GENERATIONS = 2


@dataclass(frozen=True)
class Generation:
    """One opened, immutable generation: what a search reads, and nothing else."""

    root: Path
    name: str
    manifest: dict[str, Any]
    store: CaseStore
    vectors: VectorIndex
    chunks: ChunkMap

    @classmethod
    def open(cls, root: Path) -> Generation:
        """The generation CURRENT names, checked for consistency."""
        name = current_generation(root)
        folder = root / name
        manifest = read_manifest(folder)
        raw = vector_files.read(folder / VECTORS)
        store = CaseStore(folder / CASES)
        try:
            chunks = store.chunk_map()
            _check_consistent(folder, manifest, raw, store, chunks)
        except sqlite3.Error as exc:
            store.close()
            raise IndexFormatError(f"{folder / CASES}: unreadable ({exc}); rebuild the "
                                   "index") from exc
        except IndexFormatError:
            store.close()
            raise
        # Wrapped once per process: the query path reads no file after this.
        vectors = CheckedVectors(raw, folder / VECTORS, chunks.ids)
        return cls(root, name, manifest, store, vectors, chunks)

    @property
    def all_resolved(self) -> bool:
        return bool(self.manifest.get("resolved") == self.manifest.get("cases"))

    def close(self) -> None:
        self.store.close()


# How far a stored unit vector's inner product may stray from [-1, 1] through 16-bit codes.
_SCORE_SLACK = 0.01
# Vectors whose norm is checked when a generation opens (evenly spread, all when fewer).
_NORM_SAMPLE = 64


def _check_consistent(folder: Path, manifest: dict[str, Any], raw: Any, store: CaseStore,
                      chunks: ChunkMap) -> None:
    """Raise `IndexFormatError` naming the file when the parts of a generation disagree."""
    vectors_file = folder / VECTORS
    dimension = manifest.get("dimension")
    if dimension is not None and dimension != raw.d:
        raise IndexFormatError(f"{folder / MANIFEST}: dimension {dimension!r}, but "
                               f"{vectors_file} holds {raw.d}-dimensional vectors; the "
                               "index is damaged, rebuild it")
    if len(chunks) != raw.ntotal or manifest.get("chunks", raw.ntotal) != raw.ntotal:
        raise IndexFormatError(
            f"{vectors_file}: {raw.ntotal} vectors, but {len(chunks)} chunks in {CASES} and "
            f"{manifest.get('chunks')!r} in {MANIFEST}; the generation is damaged, rebuild "
            "the index")
    cases = manifest.get("cases")
    # The count taken as the store opened: a generation's store is opened read-only.
    if cases is not None and cases != store.opened_count:
        raise IndexFormatError(f"{folder / MANIFEST}: {cases!r} cases, but {CASES} holds "
                               f"{store.opened_count}; the generation is damaged, rebuild it")
    ids = vector_files.stored_ids(raw)
    # The writer adds vectors in chunk-id order, so the sort is needed only for an index
    # rebuilt otherwise (IVF lists): it was half of what these checks add to an open.
    if len(ids) and not (np.array_equal(ids, chunks.ids)
                         or np.array_equal(np.sort(ids), chunks.ids)):
        raise IndexFormatError(f"{vectors_file}: vector ids that no chunk in {CASES} has; "
                               "the vector file is damaged, rebuild the index")
    if len(ids):
        sample = chunks.ids[np.linspace(0, len(ids) - 1, min(len(ids), _NORM_SAMPLE),
                                        dtype=np.int64)]
        norms = np.linalg.norm(raw.reconstruct_batch(sample), axis=1)
        # Stored vectors are unit length (or zero, for an empty text).
        bad = ~(np.isclose(norms, 1.0, atol=_SCORE_SLACK) | (norms < 1e-6))
        if bad.any():
            raise IndexFormatError(f"{vectors_file}: vectors that are not unit length "
                                   f"(norm {float(norms[bad][0]):.4g}); the vector file is "
                                   "damaged, rebuild the index")


class CheckedVectors(VectorIndex):
    """The vectors of an opened generation; a damaged result raises, never reaches a user.

    The checks at open sample the vectors; this catches the rest as queries touch them.
    """

    def __init__(self, index: Any, path: Path, known_ids: np.ndarray) -> None:
        super().__init__(index)
        self.path = path
        self._known = known_ids  # sorted

    def search(self, queries: np.ndarray, k: int, *,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        distances, ids = super().search(queries, k, allowed=allowed)
        found = ids >= 0
        if found.any():
            scores, hits = distances[found], ids[found]
            if not np.all(np.abs(scores) <= 1 + _SCORE_SLACK):  # NaN fails too
                raise IndexFormatError(f"{self.path}: scores outside [-1, 1]; the vector "
                                       "file is damaged, rebuild the index")
            where = np.minimum(np.searchsorted(self._known, hits), len(self._known) - 1)
            if len(self._known) == 0 or not np.all(self._known[where] == hits):
                raise IndexFormatError(f"{self.path}: a vector id no chunk has; the vector "
                                       "file is damaged, rebuild the index")
        return distances, ids


_GENERATION_NAME = re.compile(r"g\d{6,}")


def current_generation(root: Path) -> str:
    """The name in CURRENT (raises `IndexFormatError` when there is no usable index)."""
    pointer = root / CURRENT
    if not pointer.is_file():
        if not root.exists():
            raise IndexFormatError(
                f"{root}: no index here; build one with `casematch index SOURCE --index {root}`"
            )
        raise IndexFormatError(f"{root}: not a casematch index (no {CURRENT} file)")
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{pointer}: unreadable ({exc}); rebuild the index") from exc
    if not _GENERATION_NAME.fullmatch(name):
        # Only a generation of this folder: never a path that leads to another index.
        raise IndexFormatError(f"{pointer}: {name[:60]!r} is not a generation name like "
                               "g000001; the index is damaged, rebuild it")
    if not (root / name).is_dir():
        raise IndexFormatError(f"{pointer}: names generation {name!r}, which is missing")
    return name


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexFormatError(f"{path}: missing; rebuild the index") from exc
    except OSError as exc:
        raise IndexFormatError(f"{path}: unreadable ({exc.strerror or exc}); check its "
                               "permissions") from exc
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise IndexFormatError(f"{path}: corrupted ({exc}); rebuild the index") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise IndexFormatError(
            f"{path}: index format {found!r}, this casematch reads format {FORMAT_VERSION}; "
            "rebuild the index from its sources (`casematch index ... --full`, or "
            "`casematch reindex --full`)"
        )
    return manifest


def iter_current_case_ids(root: Path) -> Iterator[str]:
    """The case ids of the generation CURRENT names, read as they are consumed."""
    if not (root / CURRENT).exists():
        return
    store = CaseStore(root / current_generation(root) / CASES)
    try:
        yield from store.iter_ids()
    finally:
        store.close()


def current_case_ids(root: Path) -> set[str]:
    """The case ids of the generation CURRENT names (none when there is no index yet)."""
    return set(iter_current_case_ids(root))


# What an index folder may hold besides its generations before its first CURRENT exists.
_INDEX_FILES = frozenset({LOCK, f"{CURRENT}.tmp", "sync.sqlite", "sync.sqlite-journal",
                          "slack.sqlite", "slack.sqlite-journal", "slack.sqlite-wal",
                          "slack.sqlite-shm"})


def _written_here(folder: Path) -> bool:
    """True for a generation folder this index wrote (its manifest names it)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(manifest, dict) and manifest.get("generation") == folder.name


def check_index_folder(root: Path) -> None:
    """Raise `IndexFormatError` unless `root` is missing, empty or a casematch index.

    An index writer creates, and later prunes, folders in `root`: it must never do so in
    a folder of the user's own files.
    """
    if not root.exists() or (root / CURRENT).exists():
        return
    if not root.is_dir():
        raise IndexFormatError(f"{root}: not a folder; choose a new or empty folder for --index")
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise IndexFormatError(f"{root}: cannot read ({exc.strerror or exc}); check its "
                               "permissions") from exc
    for entry in entries:
        known = (entry.name in _INDEX_FILES or entry.name.startswith(".tmp-g")
                 or (_GENERATION_NAME.fullmatch(entry.name) and _written_here(entry)))
        if not known:
            raise IndexFormatError(f"{root}: not a casematch index and not empty (it holds "
                                   f"{entry.name!r}); choose a new or empty folder for "
                                   "--index")


def generation_folders(root: Path) -> list[Path]:
    """This index's generation folders, oldest first."""
    return sorted(p for p in root.glob("g[0-9]*") if p.is_dir())


def next_generation_name(root: Path) -> str:
    existing = generation_folders(root)
    number = int(existing[-1].name[1:]) + 1 if existing else 1
    return f"g{number:06d}"


def fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps({"format": FORMAT_VERSION, **manifest}, indent=2),
                                   encoding="utf-8")


def publish(root: Path, tmp: Path, name: str) -> None:
    """Move a complete generation into place and point CURRENT at it, durably."""
    for file in (CASES, VECTORS, MANIFEST):
        fsync_file(tmp / file)
    os.rename(tmp, root / name)
    pointer = root / f"{CURRENT}.tmp"
    pointer.write_text(name + "\n", encoding="utf-8")
    fsync_file(pointer)
    os.replace(pointer, root / CURRENT)
    fsync_dir(root)


def prune(root: Path) -> None:
    """Delete all but the newest `KEEP_GENERATIONS` generations this index wrote."""
    for old in [g for g in generation_folders(root) if _written_here(g)][:-KEEP_GENERATIONS]:
        shutil.rmtree(old, ignore_errors=True)


def remove_leftovers(root: Path) -> None:
    """Temporary folders of writers that died mid-way (call only while holding the lock)."""
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _locked(root: Path) -> IndexLockedError:
    return IndexLockedError(
        f"{root}: another casematch process is writing this index; "
        "try again when it has finished"
    )


@contextmanager
def write_lock(root: Path) -> Iterator[None]:
    """Hold the index's one-writer lock (released by the OS if the process dies)."""
    from filelock import FileLock, Timeout

    lock = FileLock(root / LOCK)
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
    except Timeout as exc:
        raise _locked(root) from exc
    except OSError as exc:
        raise IndexFormatError(f"{root}: cannot write the index here ({exc.strerror or exc}); "
                               "fix the folder's permissions or choose another --index"
                               ) from exc
    try:
        yield
    finally:
        lock.release()


def check_unlocked(root: Path) -> None:
    """Raise `IndexLockedError` now if a writer holds the index (before any slow work)."""
    if (root / LOCK).exists():
        with write_lock(root):
            pass
