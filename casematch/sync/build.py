"""`casematch index`: read source files and write them into an index in one run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from casematch.cases import Case
from casematch.config import Settings
from casematch.errors import InputError
from casematch.index import CaseIndex
from casematch.sources import ReadReport, read_source
from casematch.storage.writer import UpdateResult
from casematch.sync.embedding import ray_encoder


@dataclass
class BuildResult:
    """What `build_index` read and what it changed in the index."""

    read: ReadReport
    update: UpdateResult
    path: Path

    def to_dict(self) -> dict[str, Any]:
        return {"read": self.read.to_dict(), "index": self.update.to_dict(),
                "path": str(self.path)}


def build_index(sources: Sequence[str | Path], settings: Settings, *, format: str | None = None,
                include_unresolved: bool = False, full: bool = False,
                progress: bool = False) -> BuildResult:
    """Read `sources` and make the index at `settings.index_path` hold exactly their cases.

    Raises:
        InputError: a source cannot be read at all, or none of its cases is resolved
            (the existing index is then left as it was).
        IndexLockedError: another process is writing the index.
    """
    report = ReadReport()
    cases: list[Case] = []
    for source in sources:
        cases.extend(read_source(source, format=format, options=settings.read_options,
                                 report=report))
    if not any(c.resolved for c in cases) and not include_unresolved:
        raise InputError(
            ", ".join(map(str, sources)),
            "no resolved cases: nothing to index (the existing index is unchanged; "
            "--include-unresolved indexes them anyway)")
    index, update = CaseIndex.build(
        cases, settings.index_path, model=settings.model, encoder=ray_encoder(settings),
        include_unresolved=include_unresolved, reuse=not full, progress=progress,
        device=settings.device, runtime=settings.runtime, batch_size=settings.batch_size,
    )
    index.close()
    return BuildResult(report, update, Path(settings.index_path))
