"""`reindex`: pull what changed from every configured source, write one new generation.

The order is what makes it crash-safe:

1. take the index lock (a second reindex fails at once: `IndexLockedError`);
2. read every source completely into memory (a source that fails contributes nothing,
   so a half-read source never deletes or overwrites anything);
3. upsert and delete through one `IndexWriter`: only changed text is embedded, and the
   generation is switched atomically at commit;
4. only then save the cursors (`sync.sqlite`). A crash before 4 re-fetches the same
   changes next time, which costs a little time and changes nothing.

Exports are full snapshots: a case a source yielded last time and not now was deleted.
API sources are incremental: deletions come from the source itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casematch.cases import clean_case
from casematch.config import Settings
from casematch.encoders import Encoder, load_encoder
from casematch.errors import CasematchError, ConfigError, IndexLockedError, InputError
from casematch.index import IndexModel, attach_query_model
from casematch.sources import SourceConfig, SyncBatch, pull
from casematch.storage.generations import (
    CURRENT,
    check_index_folder,
    check_unlocked,
    current_generation,
    read_manifest,
)
from casematch.storage.writer import IndexWriter, UpdateResult
from casematch.sync.cursors import (
    DEFAULT_MAX_DELETE_RATIO,
    Newest,
    SyncState,
    check_delete_ratio,
)
from casematch.sync.embedding import on_ray

# Exit codes of `casematch reindex` (cron wrappers rely on them; see `--help`). A quiet night
# exits 0 like any success; EXIT_NOTHING only with --detailed-exitcode.
EXIT_INDEXED, EXIT_FAILED, EXIT_PARTIAL, EXIT_NOTHING, EXIT_LOCKED = 0, 1, 3, 4, 75

# (source label, cases read so far); None once the source is done.
Progress = Callable[[str, int | None], None]


@dataclass
class SourceOutcome:
    name: str
    type: str
    read: int = 0
    deleted: int = 0
    error: str = ""
    problems: list[str] = field(default_factory=list)
    # Read, but not completely (a bad file, an unreadable folder): it deleted nothing.
    partial: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "read": self.read,
                "deleted_at_source": self.deleted, "error": self.error or None,
                "partial": self.partial, "problems": self.problems[:20]}


@dataclass
class ReindexResult:
    update: UpdateResult
    sources: list[SourceOutcome]
    dry_run: bool = False
    full: bool = False
    seconds: float = 0.0

    @property
    def failed(self) -> list[SourceOutcome]:
        return [s for s in self.sources if s.error]

    @property
    def status(self) -> str:
        if self.failed:
            # A --full run writes nothing unless every source was read.
            everything = self.full or len(self.failed) == len(self.sources)
            return "failed" if everything else "partial"
        if any(s.partial for s in self.sources):
            return "partial"
        return "indexed" if self.update.changed else "nothing-to-do"

    @property
    def exit_code(self) -> int:
        """0 also when nothing changed: schedulers read any other code as a failure."""
        return EXIT_INDEXED if self.status == "nothing-to-do" else self.detailed_exit_code

    @property
    def detailed_exit_code(self) -> int:
        """`exit_code`, but EXIT_NOTHING when nothing changed (`--detailed-exitcode`)."""
        return {"failed": EXIT_FAILED, "partial": EXIT_PARTIAL, "indexed": EXIT_INDEXED,
                "nothing-to-do": EXIT_NOTHING}[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {**self.update.to_dict(), "seconds": round(self.seconds, 3),
                "status": self.status, "exit_code": self.exit_code,
                "detailed_exit_code": self.detailed_exit_code, "dry_run": self.dry_run,
                "full": self.full, "sources": [s.to_dict() for s in self.sources]}


class _DryRun(Exception):
    """Leaves the writer's `with` block so that it throws its work away."""


def reindex(
    settings: Settings,
    *,
    encoder: Encoder | None = None,
    full: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    embed_progress: bool = False,
    max_delete_ratio: float = DEFAULT_MAX_DELETE_RATIO,
) -> ReindexResult:
    """Bring the index at `settings.index_path` up to date with `settings.sources`.

    `full` ignores the cursors, reads every source whole and re-embeds everything (every
    source must succeed, or nothing is written). `dry_run` reads and compares, writes nothing.
    """
    started = time.perf_counter()
    if not settings.sources:
        where = settings.config_file or "casematch.toml"
        raise ConfigError(f"{where}: no [[sources]] to reindex; add one (see "
                          "examples/casematch.toml)")
    root = Path(settings.index_path)
    check_index_folder(root)
    check_unlocked(root)  # fail before spending seconds loading the model
    if encoder is None:
        local = _index_encoder(root, settings)
        inside = root / local.name if isinstance(local, IndexModel) else None
        encoder = on_ray(settings, local, str(inside) if inside else None)
    outcomes: list[SourceOutcome] = []
    try:
        with IndexWriter(root, encoder, include_unresolved=settings.include_unresolved,
                         fresh=full and not dry_run) as writer, SyncState(root) as state:
            batches = _pull_all(settings, state, full, outcomes, progress)
            if len(batches) < len(settings.sources) and (full or not batches):
                # Nothing usable (or a --full run missing a source): keep the index as is.
                raise _DryRun
            held = _deletions(state, batches, outcomes, max_delete_ratio)
            embedded = _apply(writer, batches, held, full=full, dry_run=dry_run)
            if dry_run:
                writer.result.embedded = embedded
                raise _DryRun
            result = writer.commit(progress=embed_progress)
            attach_query_model(root, encoder)  # a copied index starts fast anywhere
            if full:
                state.reset()
            for source, batch in batches:
                _save(state, source, batch, result.generation,
                      whole=source.label not in held.partial)
            state.commit()
    except _DryRun:
        result = writer.result
    return ReindexResult(update=result, sources=outcomes, dry_run=dry_run, full=full,
                         seconds=time.perf_counter() - started)


def _index_encoder(root: Path, settings: Settings) -> Encoder:
    """The configured model, else the one the index uses (a tuned model keeps embedding
    new cases), else the default."""
    model = settings.model
    if model is None and (root / CURRENT).exists():
        model = read_manifest(root / current_generation(root))["model"]
    model = model or "default"
    inside = IndexModel.inside(root, model)
    encoder = load_encoder(str(root / model) if inside else model, device=settings.device,
                           batch_size=settings.batch_size, runtime=settings.runtime)
    return IndexModel(model, encoder) if inside else encoder


def _pull_all(settings: Settings, state: SyncState, full: bool, outcomes: list[SourceOutcome],
              progress: Progress | None) -> list[tuple[SourceConfig, SyncBatch]]:
    batches: list[tuple[SourceConfig, SyncBatch]] = []
    for source in settings.sources:
        outcome = SourceOutcome(source.label, source.type)
        outcomes.append(outcome)
        cursor = None if full else state.cursor(source.label)

        def tick(count: int, label: str = source.label) -> None:
            if progress:
                progress(label, count)

        try:
            batch = pull(source, cursor, settings.read_options, progress=tick)
        except Exception as exc:
            # Any failure of one source (bad token, network, a bug on odd data) must not
            # stop the others; its cursor does not move, so the next run retries it.
            outcome.error = _redact(_describe(exc), settings)
            continue
        finally:
            if progress:
                progress(source.label, None)
        # API sources bypass read_source: their text is cleaned here.
        cleaned = [clean_case(case) for case in batch.cases]
        batch.cases = [case for case, _ in cleaned]
        batch.report.cleaned += sum(count for _, count in cleaned)
        outcome.read = len(batch.cases)
        outcome.deleted = len(batch.deleted)
        outcome.problems = [_redact(p, settings) for p in batch.report.problems]
        outcome.partial = batch.complete and batch.report.partial
        if full and outcome.partial:
            # A --full run deletes whatever it did not see: it needs every source whole.
            outcome.error = (f"read incompletely ({len(batch.report.problems)} problems); "
                             "a --full run needs every source read whole")
            outcome.partial = False
            continue
        batches.append((source, batch))
    return batches


@dataclass
class _Held:
    """What `_deletions` decided: ids to delete, sources whose ownership must not shrink."""

    gone: set[str] = field(default_factory=set)
    partial: set[str] = field(default_factory=set)
    newest: Newest = field(default_factory=Newest)


def _deletions(state: SyncState, batches: list[tuple[SourceConfig, SyncBatch]],
               outcomes: list[SourceOutcome], max_ratio: float) -> _Held:
    """Which ids go: those an incremental source deleted, and those a complete snapshot
    lost, unless it was read only partly or would lose more than `max_ratio` of its cases."""
    held = _Held()
    for source, batch in batches:
        for case in batch.cases:
            held.newest.add(case, source.label, batch.report)
    by_name = {o.name: o for o in outcomes}
    for source, batch in batches:
        held.gone |= set(batch.deleted)
        if not batch.complete:
            continue
        outcome = by_name[source.label]
        if batch.report.partial:
            held.partial.add(source.label)
            continue
        owned = state.owned(source.label)
        lost = owned - held.newest.ids
        try:
            check_delete_ratio(source.label, len(lost), len(owned), max_ratio)
        except InputError as exc:
            outcome.problems.insert(0, str(exc).replace("nothing was written",
                                                        "its cases were kept"))
            outcome.partial = True
            held.partial.add(source.label)
            continue
        held.gone |= lost
    held.gone -= held.newest.ids
    return held


def _apply(writer: IndexWriter, batches: list[tuple[SourceConfig, SyncBatch]], held: _Held,
           *, full: bool, dry_run: bool) -> int:
    """Upserts and deletions into the writer; returns the texts a dry run would embed."""
    would_embed = 0
    for case in held.newest:
        before = writer.result.added + writer.result.updated
        writer.upsert(case)
        changed = writer.result.added + writer.result.updated > before
        # A real --full run re-embeds every case it keeps, changed or not.
        kept = case.resolved or writer.include_unresolved
        if dry_run and (changed or (full and kept)):
            would_embed += len(writer.encoder.chunk(case.search_text()))
    for case_id in sorted(held.gone):
        writer.delete(case_id)
    if full:
        writer.delete_unseen()  # every source was read whole: the union is the index
    return would_embed


def _save(state: SyncState, source: SourceConfig, batch: SyncBatch, generation: str, *,
          whole: bool) -> None:
    ids = [case.id for case in batch.cases]
    state.save(source.label, cursor=batch.cursor if batch.cursor is not None else {},
               generation=generation, add=ids, remove=batch.deleted,
               replace_owned=batch.complete and whole)


def failure_dict(exc: CasematchError) -> dict[str, Any]:
    """The `--json` object of a run that failed before it started (locked, bad config)."""
    locked = isinstance(exc, IndexLockedError)
    return {**UpdateResult().to_dict(), "status": "locked" if locked else "failed",
            "exit_code": EXIT_LOCKED if locked else EXIT_FAILED, "error": str(exc)}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CasematchError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _redact(message: str, settings: Settings) -> str:
    """Defence in depth: no secret value survives into a message, whatever raised it."""
    for source in settings.sources:
        token = source.credentials.token
        if token and len(token) >= 4:
            message = message.replace(token, "***")
    return message
