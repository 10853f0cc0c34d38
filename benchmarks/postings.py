"""BM25 from stored postings against FTS5's bm25(), side by side on one index.

    python benchmarks/postings.py [--sizes 10000] [--rounds 6] [--queries 100] [--no-write]

Each size is indexed once as `scale.py` indexes it end to end (real case texts cycled and
numbered, their real all-MiniLM-L6-v2 vectors mixed into synthetic ones; the writer's own
build, timing its postings step). A copy of the generation has its `postings` tables
dropped: what a generation written before postings were kept looks like, so that its
lexical side is scored by FTS5. Real DISCO chat messages are the queries; the two
indexes alternate round by round, and must return the same matches.

Reported per size: p50 of the lexical side alone (query terms, lexicon, BM25) and of a
whole `search(text, 5)` with defaults, with the CPU time of every thread of the process;
the postings step of the build, an incremental commit (10 cases edited, 5 deleted) and
the SQLite file with and without postings (compacted).

Writes `## BM25 from stored postings (issue 18)` of RESULTS.md.
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import scale

from casematch.cases import Case
from casematch.index import CaseIndex, serve_queries_on_one_thread
from casematch.search import retrieve
from casematch.search.options import DEFAULT_OPTIONS
from casematch.storage.generations import CASES, CURRENT
from casematch.storage.store import CaseStore
from casematch.storage.writer import IndexWriter

SECTION = "BM25 from stored postings (issue 18)"
KINDS = ("postings", "fts5")


class AnyText(scale.LookupEncoder):
    """The lookup encoder, with a unit vector for any text it was not given (edits)."""

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        known = [self.table.get(t) for t in texts]
        rng = np.random.default_rng(len(texts))
        vectors = np.stack([v if v is not None else rng.normal(size=self.dimension)
                            for v in known]).astype(np.float32)
        normed: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return normed


class StepTime:
    """Seconds spent in one `CaseStore` method during a commit."""

    def __init__(self, name: str) -> None:
        self.name, self.seconds = name, 0.0
        self._method = getattr(CaseStore, name)

    def __enter__(self) -> StepTime:
        method = self._method

        def timed(store: CaseStore, *args: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(store, *args)
            finally:
                self.seconds += time.perf_counter() - started

        setattr(CaseStore, self.name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(CaseStore, self.name, self._method)


def build(root: Path, size: int, base: np.ndarray, texts: list[str]) -> dict[str, float]:
    cases, table = scale.bench_cases(size, base, texts)
    encoder = AnyText(table)
    with StepTime("finish_postings") as step:
        started = time.perf_counter()
        with IndexWriter(root, encoder) as writer:
            for case in cases:
                writer.upsert(case)
            writer.commit()
        out = {"build_s": time.perf_counter() - started, "build_postings_s": step.seconds}
    with StepTime("finish_postings") as step:
        started = time.perf_counter()
        with IndexWriter(root, encoder) as writer:
            for number in range(10):
                writer.upsert(Case(id=f"bench:{number * 7}", resolved=True,
                                   problem=f"Edited {number}: printer jams on tray {number}",
                                   resolution="Replaced the fuser."))
            for number in range(5):
                writer.delete(f"bench:{number * 11 + 1}")
            writer.commit()
        out |= {"commit_s": time.perf_counter() - started, "commit_postings_s": step.seconds}
    return out


def without_postings(source: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    db = sqlite3.connect(target / generation(target) / CASES)
    db.execute("DROP TABLE postings")
    db.execute("DROP TABLE postings_meta")
    db.commit()
    db.close()
    return target


def generation(root: Path) -> str:
    return (root / CURRENT).read_text(encoding="utf-8").strip()


def compacted_mb(root: Path) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        compact = Path(scratch) / CASES
        db = sqlite3.connect(root / generation(root) / CASES)
        db.execute("VACUUM INTO ?", (str(compact),))
        db.close()
        return compact.stat().st_size / 1e6


def timed(values: dict[str, list[float]], name: str, call: Callable[[], Any]) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    values[name].append((time.perf_counter() - wall) * 1000)
    values[f"{name} cpu"].append((time.process_time() - cpu) * 1000)


def measure(indexes: dict[str, CaseIndex], queries: list[str],
            rounds: int) -> dict[tuple[str, str], list[float]]:
    for text in queries:
        answers = {kind: [(m.case.id, round(m.score, 9)) for m in index.search(text, 5)]
                   for kind, index in indexes.items()}
        if answers["postings"] != answers["fts5"]:
            raise SystemExit(f"different matches for {text!r}")
    results: dict[tuple[str, str], list[float]] = {}
    for round_ in range(rounds):
        for kind in KINDS if round_ % 2 == 0 else KINDS[::-1]:
            index = indexes[kind]
            values: dict[str, list[float]] = {
                name: [] for name in ("lexical", "lexical cpu", "search", "search cpu")}
            for text in queries:
                timed(values, "lexical", functools.partial(
                    retrieve._lexical_side, index.storage, text.strip(), DEFAULT_OPTIONS, {},
                    None))
            for text in queries:
                timed(values, "search", functools.partial(index.search, text, 5))
            for name, samples in values.items():
                results.setdefault((kind, name), []).append(statistics.median(samples))
        print(f"round {round_ + 1}/{rounds}: " + "; ".join(
            f"{kind} search {results[kind, 'search'][-1]:.2f} ms" for kind in KINDS),
            file=sys.stderr)
    return results


def report(rows: list[dict[str, Any]], args: argparse.Namespace,
           load: tuple[float, float]) -> str:
    lines = [
        f"Machine: {common.machine()}; 1-minute load average {load[0]:.1f} at the start, "
        f"{load[1]:.1f} at the end.",
        f"Command: `python benchmarks/postings.py --sizes {args.sizes} --rounds {args.rounds} "
        f"--queries {args.queries}`.",
        "",
        "Index as `scale.py` builds it end to end; a copy of the same generation without "
        f"its postings (scored by FTS5); {args.queries} DISCO messages. ms are medians over "
        "rounds of each round's p50 (the indexes alternate round by round); CPU is every "
        "thread of the process. Both returned the same matches and scores.",
        "",
        "| cases | lexical side, postings / FTS5 ms | ratio | search(), postings / FTS5 ms "
        "| ratio | search() CPU, postings / FTS5 ms |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        r = row["results"]

        def median(kind: str, name: str, r: dict[tuple[str, str], list[float]] = r) -> float:
            return statistics.median(r[kind, name])

        lines.append(
            f"| {row['size']:,} | {median('postings', 'lexical'):.2f} / "
            f"{median('fts5', 'lexical'):.2f} | "
            f"**{median('postings', 'lexical') / median('fts5', 'lexical'):.2f}** | "
            f"{median('postings', 'search'):.2f} / {median('fts5', 'search'):.2f} | "
            f"**{median('postings', 'search') / median('fts5', 'search'):.2f}** | "
            f"{median('postings', 'search cpu'):.1f} / {median('fts5', 'search cpu'):.1f} |")
    lines += ["", "Search p50 by round, postings / FTS5 (ms):", ""]
    for row in rows:
        r = row["results"]
        pairs = ", ".join(f"{a:.2f} / {b:.2f}" for a, b in
                          zip(r["postings", "search"], r["fts5", "search"], strict=True))
        lines.append(f"- {row['size']:,} cases: {pairs}")
    lines += ["", "What keeping them costs:", "",
              "| cases | build: postings step / whole writer build s (no encoding) | "
              "incremental commit (10 edited, 5 deleted): postings / whole s | "
              "SQLite MB with / without postings |",
              "|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['size']:,} | {row['build_postings_s']:.2f} / {row['build_s']:.1f} | "
            f"{row['commit_postings_s']:.2f} / {row['commit_s']:.2f} | "
            f"{row['mb_postings']:.1f} / {row['mb_fts5']:.1f} "
            f"(+{row['mb_postings'] / row['mb_fts5'] - 1:.0%}) |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--real", type=int, default=2000, help="real case texts (as scale.py)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    args = parser.parse_args()
    common.require_data()
    start_load = os.getloadavg()[0]
    every = common.real_case_texts()
    texts = [every[i] for i in np.random.default_rng(5).permutation(len(every))[: args.real]]
    base = scale.embeddings(texts, "cases")
    messages = common.disco_messages()
    rng = np.random.default_rng(3)
    queries = [messages[i] for i in rng.choice(len(messages), args.queries, replace=False)]
    serve_queries_on_one_thread()
    rows = []
    for size in (int(s) for s in args.sizes.split(",") if s):
        with tempfile.TemporaryDirectory(prefix="casematch-postings-") as scratch:
            stored = Path(scratch) / "postings"
            row: dict[str, Any] = {"size": size, **build(stored, size, base, texts)}
            plain = without_postings(stored, Path(scratch) / "fts5")
            row |= {"mb_postings": compacted_mb(stored), "mb_fts5": compacted_mb(plain)}
            indexes = {"postings": CaseIndex.open(stored), "fts5": CaseIndex.open(plain)}
            for index in indexes.values():
                index.warm()
            row["results"] = measure(indexes, queries, args.rounds)
            for index in indexes.values():
                index.close()
        rows.append(row)
    body = report(rows, args, (start_load, os.getloadavg()[0]))
    print(body)
    if not args.no_write:
        common.write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
