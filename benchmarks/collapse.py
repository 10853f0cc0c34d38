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
of the rest (fusion, collapse, reading the matches). The two indexes must return the same
matches, duplicates and scores; the script stops otherwise.

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
    db.execute("DROP TABLE case_sketches")
    db.commit()
    db.execute("VACUUM")
    db.close()
    return target


def sqlite_bytes(folder: Path) -> int:
    generation = (folder / CURRENT).read_text(encoding="utf-8").strip()
    return (folder / generation / CASES).stat().st_size


class GatherClock:
    """Times `retrieve.gather` inside each search (the rest of a search is what differs)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._gather = retrieve.gather

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._gather(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def empty_caches(index: CaseIndex) -> None:
    store = index.storage.store
    with store._decoded_lock:
        if store._decoded is not None:
            store._decoded.clear()
    collapse._cached_shingles.cache_clear()


def keep_caches() -> None:
    pass


def one_pass(index: CaseIndex, queries: list[str], clock: GatherClock,
             before: Callable[[], None]) -> tuple[dict[str, float], list[Any]]:
    whole, gather, answers = [], [], []
    for text in queries:
        before()
        clock.seconds = 0.0
        started = time.perf_counter()
        matches = index.search(text, 10)
        whole.append((time.perf_counter() - started) * 1000)
        gather.append(clock.seconds * 1000)
        answers.append([(m.case.id, m.duplicates, m.score) for m in matches])
    rest = [w - g for w, g in zip(whole, gather, strict=True)]
    return ({"search": statistics.median(whole), "gather": statistics.median(gather),
             "rest": statistics.median(rest)}, answers)


def measure(indexes: dict[str, CaseIndex], queries: list[str],
            rounds: int) -> dict[tuple[str, str], list[dict[str, float]]]:
    clock = GatherClock()
    retrieve.gather = clock
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        for index in indexes.values():
            for text in queries[:5]:
                index.search(text, 10)
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
    finally:
        retrieve.gather = clock._gather
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
        "| caches | sketches | whole search | gather (embedding, retrievers) | the rest "
        "(fusion, collapse, reading matches) | rest, stored / computed |",
        "|---|---|---|---|---|---|",
    ]
    for state in STATES:
        for kind in KINDS:
            ratio = median("stored", state, "rest") / median("computed", state, "rest")
            lines.append(
                f"| {state} | {kind} | {median(kind, state, 'search'):.2f} | "
                f"{median(kind, state, 'gather'):.2f} | {median(kind, state, 'rest'):.2f} | "
                + (f"**{ratio:.2f}** |" if kind == "stored" else "- |"))
    lines += [
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
