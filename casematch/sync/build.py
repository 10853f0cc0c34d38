"""`casematch index`: read source files and write them into an index in one run.

The same rules as `reindex` (sync/reindex.py): the lock is taken before any source is read,
each source owns the cases it yielded (sync/cursors.py, keyed by its resolved path), and a
source deletes only its own cases, only when it was read completely, and only up to
`max_delete_ratio` of them. Cases of sources not given stay unless `prune` is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casematch.cases import Case
from casematch.config import Settings
from casematch.encoders import Encoder, load_encoder
from casematch.errors import InputError
from casematch.index import attach_query_model
from casematch.sources import ReadReport, Unchanged, read_source_changes
from casematch.storage.generations import (
    check_index_folder,
    check_unlocked,
    iter_current_case_ids,
)
from casematch.storage.writer import IndexWriter, UpdateResult
from casematch.sync.cursors import (
    DEFAULT_MAX_DELETE_RATIO,
    RunCases,
    SyncState,
    check_delete_ratio,
    newness,
)
from casematch.sync.embedding import ray_encoder


@dataclass
class BuildResult:
    """What `build_index` read and what it changed in the index."""

    read: ReadReport
    update: UpdateResult
    path: Path
    # Cases removed because their source was not given (only with `prune`).
    pruned: int = 0
    # Sources not read completely: none of their cases was deleted.
    partial_sources: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "partial" if self.partial_sources else "indexed"

    def to_dict(self) -> dict[str, Any]:
        return {"read": self.read.to_dict(), "index": self.update.to_dict(),
                "path": str(self.path), "status": self.status, "pruned": self.pruned,
                "partial_sources": self.partial_sources}


def source_key(source: str | Path) -> str:
    """The name a source's cases are owned under: its absolute path."""
    return f"path:{Path(source).resolve()}"


def build_index(sources: Sequence[str | Path], settings: Settings, *, format: str | None = None,
                include_unresolved: bool = False, full: bool = False,
                progress: bool = False, prune: bool = False,
                max_delete_ratio: float = DEFAULT_MAX_DELETE_RATIO,
                encoder: Encoder | None = None) -> BuildResult:
    """Read `sources` and bring their cases into the index at `settings.index_path`.

    Raises:
        InputError: a source cannot be read at all, nothing could be read, none of the
            cases is resolved, or a source would lose more than `max_delete_ratio` of its
            cases (the existing index is then left as it was).
        IndexLockedError: another process is writing the index (before anything is read).
        IndexFormatError: the folder is not an index, or the index is damaged.
    """
    root = Path(settings.index_path)
    check_index_folder(root)
    check_unlocked(root)  # refuse before spending seconds loading the model
    for source in sources:
        if not Path(source).exists():
            raise InputError(source, "no such file or directory")
    encoder = encoder or ray_encoder(settings) or load_encoder(
        settings.model or "default", device=settings.device, runtime=settings.runtime,
        batch_size=settings.batch_size)
    # Cases stream into the writer as they are read, so a large export is never held in
    # memory. An id given twice needs its newest copy: then the run starts over and reads
    # the sources twice, first to find each id's newest copy, then to write the winners.
    try:
        return _build(sources, settings, encoder, format=format, full=full,
                      include_unresolved=include_unresolved, progress=progress, prune=prune,
                      max_delete_ratio=max_delete_ratio, two_pass=False)
    except _Duplicates:
        return _build(sources, settings, encoder, format=format, full=full,
                      include_unresolved=include_unresolved, progress=progress, prune=prune,
                      max_delete_ratio=max_delete_ratio, two_pass=True)


class _Duplicates(Exception):
    """A one-pass run met an id twice: it is thrown away and redone in two passes."""


class _Memo:
    """The index being written, as a reader's `InputMemo`: unchanged input is recalled from
    the writer's store; the fingerprints of cases built wait here until they are written."""

    def __init__(self, writer: IndexWriter) -> None:
        self.writer = writer
        self._noted: dict[str, str] = {}

    def recall(self, case_id: str, fingerprint: str) -> Unchanged | None:
        return self.writer.recall(case_id, fingerprint)

    def note(self, case_id: str, fingerprint: str) -> None:
        self._noted[case_id] = fingerprint

    def upsert(self, case: Case | Unchanged, cleaned: int, write: bool = True) -> None:
        """Hand `case` to the writer (unless not `write`), with its fingerprint if noted."""
        fingerprint = self._noted.pop(case.id, None)
        if not write:
            return
        if isinstance(case, Unchanged) or fingerprint is None:
            self.writer.upsert(case)
        else:
            self.writer.upsert(case, memo=(fingerprint, newness(case), cleaned))


def _build(sources: Sequence[str | Path], settings: Settings, encoder: Encoder, *,
           format: str | None, include_unresolved: bool, full: bool, progress: bool,
           prune: bool, max_delete_ratio: float, two_pass: bool) -> BuildResult:
    root = Path(settings.index_path)
    report = ReadReport()
    partial: list[str] = []
    keys: dict[str, str] = {}
    with IndexWriter(root, encoder, include_unresolved=include_unresolved,
                     fresh=full) as writer, SyncState(root) as state:
        # Each id's newest copy and who yielded it wait in SQLite, not in memory.
        newest = state.run_cases()
        memo = _Memo(writer)
        for source in sources:
            key = keys[str(source)] = source_key(source)
            part = ReadReport()
            cleaned = 0
            for case in read_source_changes(source, memo=memo, format=format,
                                            options=settings.read_options, report=part):
                newest.add(case, key, part)
                if not two_pass and part.duplicates:
                    raise _Duplicates
                memo.upsert(case, part.cleaned - cleaned, write=not two_pass)
                cleaned = part.cleaned
            newest.flush()
            if not two_pass and part.duplicates:
                raise _Duplicates
            if part.partial:
                partial.append(str(source))
            report.merge(part)
        _check_something_to_index(sources, report, newest, include_unresolved)
        if full and partial:
            raise InputError(partial[0], "not read completely, and --full rebuilds from the "
                                         "sources given; fix the problems above first")
        position = written = 0
        for source in sources if two_pass else ():
            again = ReadReport()
            cleaned = 0
            for case in read_source_changes(source, memo=memo, format=format,
                                            options=settings.read_options, report=again):
                wins = newest.wins(case, position)
                memo.upsert(case, again.cleaned - cleaned, write=wins)
                cleaned = again.cleaned
                written += wins
                position += 1
        if two_pass and written != len(newest):
            raise InputError(", ".join(map(str, sources)), "changed while it was being read; "
                                                           "nothing was written, run again")
        given = set(keys.values())
        whole: set[str] = set()
        for source in sources:
            key = keys[str(source)]
            if str(source) in partial:
                continue  # a half-read source deletes nothing
            whole.add(key)
            gone = newest.lost(key)
            check_delete_ratio(str(source), len(gone), state.owned_count(key),
                               max_delete_ratio)
            for case_id in gone:
                writer.delete(case_id)
        pruned = 0
        if full:
            # A --full writer starts empty: what the index held is in the current one.
            others = len(newest.unread(iter_current_case_ids(root)))
            if others and not prune:
                raise InputError(", ".join(map(str, sources)),
                                 f"--full rebuilds from the sources given, and the index "
                                 f"holds {others} cases of other sources; give every "
                                 "source, or add --prune to drop them")
            pruned = others
        elif prune:
            # Every id neither read now nor owned by a half-read source goes.
            doomed = newest.unread(writer.case_ids(), owned_by=[keys[s] for s in partial])
            deleted = writer.result.deleted
            for case_id in sorted(doomed):
                writer.delete(case_id)
            pruned = writer.result.deleted - deleted
        result = writer.commit(progress=progress)
        attach_query_model(root, encoder)  # a copied index starts fast anywhere
        for key in keys.values():
            # Read completely: it owns exactly what it yielded; else it gains what it yielded.
            newest.own(key, replace=key in whole)
        if prune:
            for other in set(state.sources()) - given:
                state.forget(other)
        state.commit()
    return BuildResult(report, result, root, pruned=pruned, partial_sources=partial)


def _check_something_to_index(sources: Sequence[str | Path], report: ReadReport,
                              newest: RunCases, include_unresolved: bool) -> None:
    where = ", ".join(map(str, sources))
    if not len(newest) and report.problems:
        raise InputError(where, f"nothing could be read ({len(report.problems)} problems, "
                                f"the first: {report.problems[0]}); the existing index is "
                                "unchanged")
    if not report.resolved and not include_unresolved:
        raise InputError(where, "no resolved cases: nothing to index (the existing index is "
                                "unchanged; --include-unresolved indexes them anyway)")
