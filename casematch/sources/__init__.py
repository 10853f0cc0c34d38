"""Sources turn exports and APIs into `Case`s. This module is their one registry.

`FORMATS` are the file formats `read_source` reads (detected from a path's shape);
`SOURCE_TYPES` are the kinds of `[[sources]]` a reindex pulls from: the exports (read whole,
each run) and the APIs (incremental, from a cursor). `pull` is the one dispatcher over them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from casematch.cases import Case, clean_case
from casematch.errors import CasematchError, ConfigError, InputError
from casematch.rules import DEFAULT_RULES, ResolutionRules

FORMATS = ("slack-export", "zendesk", "jsonl")
# Threads passed over that a report keeps by id (the counts are always complete).
MAX_PASSED_OVER = 10_000
# Source type -> the file format it reads, or None for an API source (pulled incrementally).
SOURCE_TYPES: Mapping[str, str | None] = {
    "slack-export": "slack-export",
    "zendesk-export": "zendesk",
    "jsonl": "jsonl",
    "slack-api": None,
    "zendesk-api": None,
}
# What each source type must name in its [[sources]] table.
REQUIRED = {
    "slack-export": ("path", "the export file or folder"),
    "zendesk-export": ("path", "the export file or folder"),
    "jsonl": ("path", "the JSONL file"),
    "slack-api": ("channels", "the channel names or ids to read"),
    "zendesk-api": ("subdomain", "'acme' for acme.zendesk.com"),
}


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """Reader settings that come from configuration (`Settings.read_options`).

    Attributes:
        rules: what marks a thread resolved and which message is its fix.
        slack_domain: workspace domain for permalinks ("acme" or "acme.slack.com").
        include_internal_notes: let Zendesk internal notes help matching (never shown).
    """

    rules: ResolutionRules = DEFAULT_RULES
    # Workspace domain ("acme" or "acme.slack.com") for thread permalinks; none -> no url.
    slack_domain: str | None = None
    # Helpdesk internal notes help matching only when a team opts in; never displayed.
    include_internal_notes: bool = False


@dataclass(frozen=True, slots=True)
class Unchanged:
    """A case whose raw input matches the fingerprint the index stored with it: it is not
    built again (no fix choice, no cleaning, no hashing). Carries what the run's safety
    rules need of it: its id, whether it is resolved, its stored content hash and newness
    (duplicate ids), the characters cleaned when it was built (the report's counts), and
    its row in the store being written."""

    id: str
    resolved: bool
    digest: str
    newness: tuple[float, float, float]
    cleaned: int
    rowid: int

    def content_hash(self) -> str:
        return self.digest


class InputMemo(Protocol):
    """What a reader asks of the index being written to skip building unchanged cases.

    `recall` returns the case stored under `case_id` when it was built from input with
    this `fingerprint`, else None; `note` records the fingerprint of a case that is built.
    """

    def recall(self, case_id: str, fingerprint: str) -> Unchanged | None: ...

    def note(self, case_id: str, fingerprint: str) -> None: ...


@dataclass
class ReadReport:
    """What a read produced and what it had to skip, for the summary a user sees.

    Attributes:
        read, resolved: cases yielded, and how many of them are resolved.
        skipped: reason -> count of messages or threads not taken.
        problems: "file: what was wrong" for each recoverable problem.
        passed_over: (id, reason, detail) of threads read but judged not to be cases.
        partial: something that may hold cases could not be read (nothing of this
            source is deleted on its account).
        cleaned: invalid characters removed from text.
        duplicates: ids seen more than once (the newest copy was kept).
    """

    read: int = 0
    resolved: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    # Recoverable problems, each "file: what was wrong"; the rest of the source was read.
    problems: list[str] = field(default_factory=list)
    # Threads or tickets that were read and judged not to be cases: (id, why, detail).
    passed_over: list[tuple[str, str, str]] = field(default_factory=list)
    # True once anything that may hold cases (a file, a line, a message) could not be read:
    # such a source is not a full snapshot, so nothing may be deleted on its account.
    partial: bool = False
    # Lone surrogates and control characters removed from the text of the cases read.
    cleaned: int = 0
    # Ids seen more than once; the newest copy was kept.
    duplicates: list[str] = field(default_factory=list)

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] += count

    def pass_over(self, case_id: str, reason: str, detail: str = "") -> None:
        """A thread that is not a case, kept with its id for `--explain-skipped`."""
        self.skip(reason)
        if len(self.passed_over) < MAX_PASSED_OVER:
            self.passed_over.append((case_id, reason, detail))

    def problem(self, path: str | Path, message: str, *, lost: bool = True) -> None:
        """Record a problem; `lost=False` when no case can have been lost by it."""
        self.problems.append(f"{path}: {message}")
        self.partial = self.partial or lost

    def merge(self, other: ReadReport) -> None:
        self.read += other.read
        self.resolved += other.resolved
        self.skipped.update(other.skipped)
        self.problems += other.problems
        self.partial = self.partial or other.partial
        self.cleaned += other.cleaned
        self.duplicates += other.duplicates
        self.passed_over += other.passed_over[:MAX_PASSED_OVER - len(self.passed_over)]

    def to_dict(self) -> dict[str, object]:
        return {
            "read": self.read,
            "resolved": self.resolved,
            "skipped": dict(self.skipped),
            "problems": list(self.problems),
            "partial": self.partial,
            "cleaned_characters": self.cleaned,
            "duplicate_ids": list(self.duplicates[:20]),
            "passed_over": [{"id": i, "reason": why, "detail": detail}
                            for i, why, detail in self.passed_over],
        }


@dataclass(frozen=True, slots=True)
class Credentials:
    """A secret read from the environment. `repr` never shows the token (logs, tracebacks)."""

    user: str = ""
    token: str = field(default="", repr=False)
    # The variables it came from, so that messages can say which one to set or fix.
    user_env: str = ""
    token_env: str = ""


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One `[[sources]]` table: where cases come from on a reindex."""

    type: str
    path: str = ""
    channels: tuple[str, ...] = ()
    subdomain: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    # Key of this source's sync cursor; stable across runs (default: type and path/channels).
    name: str = ""
    # API sources: the base URL (tests point it at a local server) and the secrets.
    api_url: str = ""
    credentials: Credentials = field(default_factory=Credentials)

    @property
    def label(self) -> str:
        return self.name or f"{self.type}:{self.path or self.subdomain or ','.join(self.channels)}"


@dataclass
class SyncBatch:
    """What one source yielded on one run, before any of it is written."""

    cases: list[Case] = field(default_factory=list)
    # Ids the source says were deleted (a deleted message, a ticket in status deleted).
    deleted: list[str] = field(default_factory=list)
    # True for exports: a full snapshot, so ids this source held before and lacks now are gone.
    complete: bool = False
    # The cursor to save once the generation holding these cases is committed.
    cursor: dict[str, Any] | None = None
    report: ReadReport = field(default_factory=ReadReport)


def detect_format(path: Path) -> str:
    """Guess a source's format from its shape; raises InputError when it cannot tell."""
    if not path.exists():
        raise InputError(path, "no such file or directory")
    if path.is_dir():
        if (path / "channels.json").exists() or (path / "groups.json").exists():
            return "slack-export"
        if any(path.glob("*/[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9].json")):
            # Channel folders of day files: a Slack export that lost its channel list.
            raise InputError(path, "looks like a Slack export, but has no channels.json or "
                                   "groups.json at its top level; restore the channel list")
        if any(path.glob("*.jsonl")) or any(path.glob("*.ndjson")) or any(path.glob("*.json")):
            return "zendesk"
        raise InputError(path, "folder is neither a Slack export (no channels.json) nor "
                               "a Zendesk export (no .json/.ndjson files); pass --format")
    if path.suffix == ".zip":
        return "slack-export"
    if path.suffix == ".jsonl":
        return _sniff_jsonl(path)
    if path.suffix in (".json", ".ndjson"):
        return "zendesk"
    raise InputError(path, "cannot tell the format from the file name; pass --format")


def _sniff_jsonl(path: Path) -> str:
    # Zendesk full exports are NDJSON too: a ticket line has a "status" and "subject" or a
    # "description" where a neutral case line has a "problem".
    try:
        with path.open(encoding="utf-8") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read: {exc}") from exc
    return "zendesk" if '"problem"' not in first and '"status"' in first else "jsonl"


def read_source(
    path: str | Path,
    *,
    format: str | None = None,
    options: ReadOptions | None = None,
    report: ReadReport | None = None,
) -> Iterator[Case]:
    """Yield every case of one source (resolved or not), counting them into `report`.

    Args:
        path: a Slack export (folder or .zip), a Zendesk export (.json, .ndjson, a folder)
            or a JSONL file of cases.
        format: "slack-export", "zendesk" or "jsonl"; detected from the path when None.
        options: resolution rules, the Slack workspace domain, internal-note handling.
        report: collects counts, skipped threads and per-file problems; a partial read
            sets `report.partial`.

    Returns:
        An iterator of `Case`s; the source is read as it is consumed.

    Raises:
        InputError: the source as a whole cannot be read (missing, not an export, a
            truncated zip, an unknown format). Problems in one file, line or message are
            recorded in `report` instead, and the rest is read.
    """
    for case in _read(Path(path), format, options, report, None):
        if isinstance(case, Case):  # always: without a memo every case is built
            yield case


def read_source_changes(
    path: str | Path,
    *,
    memo: InputMemo,
    format: str | None = None,
    options: ReadOptions | None = None,
    report: ReadReport | None = None,
) -> Iterator[Case | Unchanged]:
    """`read_source`, except that a case whose raw input `memo` recalls unchanged is yielded
    as an `Unchanged` instead of being built (readers that cannot tell build every case)."""
    return _read(Path(path), format, options, report, memo)


def _read(path: Path, format: str | None, options: ReadOptions | None,
          report: ReadReport | None, memo: InputMemo | None) -> Iterator[Case | Unchanged]:
    options = options or ReadOptions()
    report = report if report is not None else ReadReport()
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise InputError(path, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    extra: dict[str, Any] = {"memo": memo} if memo is not None and fmt == "zendesk" else {}
    cases = _reader(fmt)(path, options=options, report=report, **extra)
    try:
        for case in cases:
            if isinstance(case, Unchanged):
                report.cleaned += case.cleaned
                report.read += 1
                report.resolved += case.resolved
                yield case
                continue
            case, removed = clean_case(case)
            report.cleaned += removed
            report.read += 1
            report.resolved += case.resolved
            yield case
    except CasematchError:
        raise
    except (OSError, ValueError, TypeError, AttributeError, KeyError, IndexError,
            RecursionError, OverflowError, MemoryError) as exc:
        # A reader met content it did not expect: still one clear line, never a traceback.
        report.partial = True
        raise InputError(path, f"cannot read this {fmt} source ({type(exc).__name__}: "
                               f"{str(exc)[:120]}); check the file, or report it as a bug"
                         ) from exc


Reader = Callable[..., Iterator[Case | Unchanged]]


def _reader(fmt: str) -> Reader:
    # Imported on use: each reader pulls in only what its format needs.
    if fmt == "slack-export":
        from casematch.sources.slack_export import read_slack_export

        return read_slack_export
    if fmt == "zendesk":
        from casematch.sources.zendesk import read_zendesk

        return read_zendesk
    from casematch.sources.jsonl import read_jsonl

    return read_jsonl


def pull(source: SourceConfig, cursor: Mapping[str, Any] | None, options: ReadOptions, *,
         progress: Callable[[int], None] | None = None) -> SyncBatch:
    """What one `[[sources]]` entry yields on this run (everything, for exports)."""
    if source.type not in SOURCE_TYPES:
        raise ConfigError(f"{source.label}: unknown source type {source.type!r}; use one of "
                          f"{', '.join(SOURCE_TYPES)}")
    fmt = SOURCE_TYPES[source.type]
    if fmt is None and source.type == "slack-api":
        from casematch.sources.slack_api import pull_slack

        return pull_slack(source, cursor, options, progress=progress)
    if fmt is None:
        from casematch.sources.zendesk_api import pull_zendesk

        return pull_zendesk(source, cursor, options, progress=progress)
    batch = SyncBatch(complete=True)
    for case in read_source(source.path, format=fmt, options=options, report=batch.report):
        batch.cases.append(case)
        if progress and len(batch.cases) % 500 == 0:
            progress(len(batch.cases))
    return batch
