"""Sources turn exports and APIs into `Case`s; this module picks the reader for a path."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from casematch.cases import Case
from casematch.errors import InputError
from casematch.resolution import DEFAULT_RULES, ResolutionRules

FORMATS = ("slack-export", "zendesk", "jsonl")


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """Reader settings that come from configuration."""

    rules: ResolutionRules = DEFAULT_RULES
    # Workspace domain ("acme" or "acme.slack.com") for thread permalinks; none -> no url.
    slack_domain: str | None = None
    # Helpdesk internal notes help matching only when a team opts in; never displayed.
    include_internal_notes: bool = False


@dataclass
class ReadReport:
    """What a read produced and what it had to skip, for the summary a user sees."""

    read: int = 0
    resolved: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    # Recoverable problems, each "file: what was wrong"; the rest of the source was read.
    problems: list[str] = field(default_factory=list)

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] += count

    def problem(self, path: str | Path, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def merge(self, other: ReadReport) -> None:
        self.read += other.read
        self.resolved += other.resolved
        self.skipped.update(other.skipped)
        self.problems.extend(other.problems)

    def to_dict(self) -> dict[str, object]:
        return {
            "read": self.read,
            "resolved": self.resolved,
            "skipped": dict(self.skipped),
            "problems": list(self.problems),
        }


def detect_format(path: Path) -> str:
    """Guess a source's format from its shape; raises InputError when it cannot tell."""
    if not path.exists():
        raise InputError(path, "no such file or directory")
    if path.is_dir():
        if (path / "channels.json").exists() or (path / "groups.json").exists():
            return "slack-export"
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
    """Yield every case of one source (resolved or not), counting them into `report`."""
    path = Path(path)
    options = options or ReadOptions()
    report = report if report is not None else ReadReport()
    fmt = format or detect_format(path)
    if fmt == "slack-export":
        from casematch.sources.slack_export import read_slack_export

        cases = read_slack_export(path, options=options, report=report)
    elif fmt == "zendesk":
        from casematch.sources.zendesk import read_zendesk

        cases = read_zendesk(path, options=options, report=report)
    elif fmt == "jsonl":
        from casematch.sources.jsonl import read_jsonl

        cases = read_jsonl(path, report=report)
    else:
        raise InputError(path, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    for case in cases:
        report.read += 1
        report.resolved += case.resolved
        yield case
