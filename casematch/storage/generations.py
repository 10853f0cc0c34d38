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
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        # Wrapped once per process: the query path reads no file after this.
        vectors = VectorIndex(vector_files.read(folder / VECTORS))
        store = CaseStore(folder / CASES)
        chunks = store.chunk_map()
        if len(chunks) != vectors.ntotal:
            store.close()
            raise IndexFormatError(
                f"{folder}: {vectors.ntotal} vectors but {len(chunks)} chunks; the "
                "generation is damaged, rebuild the index"
            )
        return cls(root, name, manifest, store, vectors, chunks)

    @property
    def all_resolved(self) -> bool:
        return bool(self.manifest.get("resolved") == self.manifest.get("cases"))

    def close(self) -> None:
        self.store.close()


def current_generation(root: Path) -> str:
    """The name in CURRENT (raises `IndexFormatError` when there is no usable index)."""
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


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexFormatError(f"{path}: missing; rebuild the index") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{path}: corrupted ({exc}); rebuild the index") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise IndexFormatError(
            f"{path}: index format {found!r}, this casematch reads format {FORMAT_VERSION}; "
            "rebuild the index from its sources (`casematch index ... --full`, or "
            "`casematch reindex --full`)"
        )
    return manifest


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
    """Delete all but the newest `KEEP_GENERATIONS` generations."""
    for old in generation_folders(root)[:-KEEP_GENERATIONS]:
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

    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        raise _locked(root) from exc
    try:
        yield
    finally:
        lock.release()


def check_unlocked(root: Path) -> None:
    """Raise `IndexLockedError` now if a writer holds the index (before any slow work)."""
    if (root / LOCK).exists():
        with write_lock(root):
            pass
