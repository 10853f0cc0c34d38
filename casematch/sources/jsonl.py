"""The neutral JSONL case format: one case per line, `id` and `problem` required."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from casematch.cases import Case, case_from_dict, case_to_json
from casematch.errors import InputError
from casematch.sources import ReadOptions, ReadReport


def read_jsonl(path: str | Path, *, options: ReadOptions | None = None,
               report: ReadReport | None = None) -> Iterator[Case]:
    """Yield the cases of a JSONL file. A bad line is reported and skipped, not fatal.

    Lines carry their own resolution, so `options` (resolution rules) do not apply.
    """
    path = Path(path)
    report = report if report is not None else ReadReport()
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(path, f"cannot open: {exc.strerror or exc}") from exc
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield case_from_dict(json.loads(line))
                except (ValueError, TypeError, AttributeError, OverflowError, OSError,
                        RecursionError) as exc:
                    report.problem(f"{path}:{number}", _describe(exc))
                    report.skip("invalid line")
        except UnicodeDecodeError as exc:
            raise InputError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _describe(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON ({exc.msg}, column {exc.colno}); fix or remove the line"
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply; fix or remove the line"
    if isinstance(exc, ValueError):
        return f"{exc}; fix or remove the line"
    return f"unusable value ({exc}); fix or remove the line"


def write_jsonl(cases: Iterable[Case], path: str | Path) -> int:
    """Write cases as JSONL; returns how many were written."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as handle:
        for case in cases:
            handle.write(case_to_json(case) + "\n")
            count += 1
    return count
