"""Collapse with stored sketches against computing them per query, side by side in one process.

    python benchmarks/collapse.py [--work DIR] [--rounds 7] [--no-write]

The GitBugs SeaMonkey reports are indexed once (`CaseIndex.build`, cached under --work).
A copy of that generation has its `case_sketches` table dropped: what a generation written
before sketches were stored looks like, and searching it computes every candidate's
sketch from the decoded case, as every search did before. 100 DISCO chat messages (as
peers.py queries) are searched on both, `search(text, 10)` with defaults, the two indexes
alternating round by round:

- cold: the decoded-case and trigram caches are emptied before each query, the state of a
  query whose candidates no recent query brought back (a large index, varied traffic);
- warm: the same queries again with the caches as the previous pass left them.

Reported per state: p50 of the whole search, of `gather` (embedding, both retrievers) and
of collapse (reading or computing the candidates' sketches, then folding). The two
indexes must return the same matches, duplicates and scores; the script stops otherwise.

Writes `## Collapse sketches stored with the cases (issue 18)` of RESULTS.md.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from casematch.cases import Case
from casematch.index import CaseIndex, serve_queries_on_one_thread
from casematch.search import collapse, retrieve
from casematch.storage.generations import CASES, CURRENT

SECTION = "Collapse sketches stored with the cases (issue 18)"
KINDS = ("stored", "computed")
STATES = ("cold", "warm")


def build(folder: Path) -> Path:
    if not (folder / CURRENT).exists():
        dev = common.gitbugs()
        cases = [Case(id=c.id, title=c.title or c.problem, problem=c.problem,
                      resolution=c.resolution, resolved=True) for c in dev.cases]
        CaseIndex.build(cases, folder)[0].close()
    return folder


def without_sketches(source: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    generation = (target / CURRENT).read_text(encoding="utf-8").strip()
    db = sqlite3.connect(target / generation / CASES)
    # Not vacuumed: both files keep the same layout of every other page.
    db.execute("DROP TABLE case_sketches")
    db.commit()
    db.close()
    return target


def sqlite_bytes(folder: Path) -> int:
    """The size of the generation's SQLite file once compacted (a dropped table leaves its
    pages free in the file)."""
    generation = (folder / CURRENT).read_text(encoding="utf-8").strip()
    with tempfile.TemporaryDirectory() as scratch:
        compact = Path(scratch) / CASES
        db = sqlite3.connect(folder / generation / CASES)
        db.execute("VACUUM INTO ?", (str(compact),))
        db.close()
        return compact.stat().st_size


class StepClock:
    """Times some of `casematch.search.retrieve`'s steps inside each search, by wrapping
    the module's names for them."""

    STEPS = (("gather", ("gather",)), ("collapse", ("sketches_of", "collapse")))

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._originals: dict[str, Any] = {}

    def __enter__(self) -> StepClock:
        for step, names in self.STEPS:
            for name in names:
                self._originals[name] = original = getattr(retrieve, name)
                setattr(retrieve, name, functools.partial(self._timed, step, original))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, original in self._originals.items():
            setattr(retrieve, name, original)

    def _timed(self, step: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - started


def empty_caches(index: CaseIndex) -> None:
    store = index.storage.store
    for kept in (store._decoded, store._sketches):
        if kept is not None:
            kept.clear()
    collapse._cached_shingles.cache_clear()


def keep_caches() -> None:
    pass


def one_pass(index: CaseIndex, queries: list[str], clock: StepClock,
             before: Callable[[], None]) -> tuple[dict[str, float], list[Any]]:
    times: dict[str, list[float]] = {"search": [], "gather": [], "collapse": []}
    answers = []
    for text in queries:
        before()
        clock.seconds.clear()
        started = time.perf_counter()
        matches = index.search(text, 10)
        times["search"].append((time.perf_counter() - started) * 1000)
        for step in ("gather", "collapse"):
            times[step].append(clock.seconds[step] * 1000)
        answers.append([(m.case.id, m.duplicates, m.score) for m in matches])
    return {part: statistics.median(values) for part, values in times.items()}, answers


def measure(indexes: dict[str, CaseIndex], queries: list[str],
            rounds: int) -> dict[tuple[str, str], list[dict[str, float]]]:
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for index in indexes.values():
        for text in queries[:5]:
            index.search(text, 10)
    with StepClock() as clock:
        for round_ in range(rounds):
            order = KINDS if round_ % 2 == 0 else KINDS[::-1]
            answers: dict[str, list[Any]] = {}
            for kind in order:
                index = indexes[kind]
                for state in STATES:
                    before = functools.partial(empty_caches, index) if state == "cold" \
                        else keep_caches
                    p50s, answers[f"{kind} {state}"] = one_pass(index, queries, clock, before)
                    results.setdefault((kind, state), []).append(p50s)
            first = answers[f"{KINDS[0]} cold"]
            if any(got != first for got in answers.values()):
                raise SystemExit("the two indexes returned different matches")
            print(f"round {round_ + 1}/{rounds}: " + "; ".join(
                f"{kind} {state} {results[kind, state][-1]['search']:.2f} ms"
                for kind in KINDS for state in STATES), file=sys.stderr)
    return results


def report(results: dict[tuple[str, str], list[dict[str, float]]], sizes: dict[str, int],
           rounds: int, queries: int, load: tuple[float, float]) -> str:
    def median(kind: str, state: str, part: str) -> float:
        return statistics.median(r[part] for r in results[kind, state])

    lines = [
        f"Machine: {common.machine()}; 1-minute load average {load[0]:.1f} at the start, "
        f"{load[1]:.1f} at the end.",
        f"Command: `python benchmarks/collapse.py --rounds {rounds}`.",
        "",
        "The 1,076 GitBugs SeaMonkey reports; a copy of the same generation without its "
        f"`case_sketches` table; {queries} DISCO messages, `search(text, 10)` with defaults. "
        "The indexes alternate round by round; ms are medians over rounds of each round's "
        "p50. Both returned the same matches, duplicates and scores.",
        "",
        "| caches | sketches | whole search | gather (embedding, retrievers) | collapse "
        "(sketches, folding) | collapse, stored / computed |",
        "|---|---|---|---|---|---|",
    ]
    for state in STATES:
        for kind in KINDS:
            ratio = median("stored", state, "collapse") / median("computed", state, "collapse")
            lines.append(
                f"| {state} | {kind} | {median(kind, state, 'search'):.2f} | "
                f"{median(kind, state, 'gather'):.2f} | {median(kind, state, 'collapse'):.2f} | "
                + (f"**{ratio:.2f}** |" if kind == "stored" else "- |"))
    lines += [
        "",
        "`gather` does the same work on both indexes: the difference between its two "
        "figures, and most of the whole search's, is this machine's round-to-round noise. "
        "The collapse column is the step that differs.",
        "",
        f"SQLite file: {sizes['stored'] / 1e6:.2f} MB with sketches, "
        f"{sizes['computed'] / 1e6:.2f} MB without "
        f"({(sizes['stored'] - sizes['computed']) / 1076:.0f} bytes a case).",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the built index (kept; default: a temporary one)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    args = parser.parse_args()
    start_load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        stored = build(work / "seamonkey")
        computed = without_sketches(stored, work / "seamonkey-unsketched")
        sizes = {"stored": sqlite_bytes(stored), "computed": sqlite_bytes(computed)}
        messages = common.disco_messages()
        queries = messages[::max(1, len(messages) // args.queries)][:args.queries]
        serve_queries_on_one_thread()
        indexes = {"stored": CaseIndex.open(stored), "computed": CaseIndex.open(computed)}
        for index in indexes.values():
            index.warm()
        results = measure(indexes, queries, args.rounds)
        for index in indexes.values():
            index.close()
    body = report(results, sizes, args.rounds, len(queries), (start_load, os.getloadavg()[0]))
    print(body)
    if not args.no_write:
        common.write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
