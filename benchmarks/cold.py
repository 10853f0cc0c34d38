"""Cold `casematch query`, warm `search()` and build overhead, side by side with a baseline.

    git worktree add --detach /tmp/casematch-base ef1f43c   # the code to compare against
    python benchmarks/cold.py --baseline /tmp/casematch-base [--cases 10000] [--runs 5]
        [--build-cases 200] [--build-texts cases|messages] [--queries 65]
        [--steps cold,warm,quality] [--warm-rounds 2] [--no-write]

1. Build: `--build-cases` real case texts from ../shared/data (DISCO conversations, GitBugs
   reports, StackFAQ threads, mixed) are indexed with `CaseIndex.build` and the runtime
   "auto" picks for batches (the model loaded beforehand, not timed), then the same chunks
   are encoded bare with the same encoder, before and after the build (mean of the two);
   build / bare encode is the overhead of
   everything that is not the model (chunking, SQLite, FTS5, FAISS, publishing).
   `--build-texts messages` indexes single DISCO chat messages instead (16 words median):
   a 10,000-case build then fits in minutes where real case texts take hours here.
2. The query index: `--cases` cases carrying real texts (cycled, numbered so each is
   distinct); vectors: the real ones of step 1, then mixes of two plus noise (as scale.py),
   so the FAISS and SQLite sizes are those of a real index of that size. The torch-free
   query model is attached as `casematch index` attaches it.
3. Cold query: `casematch query TEXT --index IDX -k 3` in a new process, this tree and the
   baseline tree alternating, `--runs` runs each after one warm-up, under /usr/bin/time
   (wall seconds and peak RSS). Query texts: real chat messages from DISCO.
4. Warm: `CaseIndex.open` + `search()` in one process per tree and round, as the CLI and
   the responder run it (`serve_queries_on_one_thread`), p50 over `--queries` messages,
   `--warm-rounds` rounds alternating the trees.
5. Quality: the torch-free query encoder against torch fp32 on encode.py's texts (a sample
   of each length class): identical chunks, worst cosine.
Every process uses one cache folder in benchmarks/.cache, so the runtime trial runs once
(its time and choice are reported).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import faiss  # noqa: F401  (before torch: they share libgomp, the first one sets threads)

ROOT = Path(__file__).resolve().parent.parent
QUERY = "Upgrade Netty to fix a CVE"

_WARM = r"""
import json, statistics, sys, time
from casematch.index import CaseIndex, serve_queries_on_one_thread
root, queries = sys.argv[1], json.loads(sys.argv[2])
index = CaseIndex.open(root)
serve_queries_on_one_thread()
for q in queries[:5]:
    index.search(q, 5)
times = []
for q in queries:
    start = time.perf_counter()
    index.search(q, 5)
    times.append((time.perf_counter() - start) * 1000)
print(json.dumps({"p50": statistics.median(times), "encoder": type(index.encoder).__name__,
                  "runtime": getattr(index.encoder, "runtime", None)}))
"""


def _env(tree: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEMATCH_")}
    return {**env, "PYTHONPATH": str(tree), "CASEMATCH_CACHE_DIR": str(cache)}


def cold_query(tree: Path, index: Path, text: str, cache: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `casematch query` in a new process."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        started = time.perf_counter()
        result = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M", "-o", out.name, sys.executable, "-m",
             "casematch", "query", text, "--index", str(index), "-k", "3"],
            capture_output=True, text=True, env=_env(tree, cache), cwd=tempfile.gettempdir(),
            check=False)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"query failed in {tree}: {result.stderr[-2000:]}")
        _, peak_kb = out.read().split()[-2:]
    return wall, int(peak_kb) / 1024


def warm(tree: Path, index: Path, queries: list[str], cache: Path) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-c", _WARM, str(index), json.dumps(queries)],
                            capture_output=True, text=True, env=_env(tree, cache),
                            cwd=tempfile.gettempdir(), check=False)
    if result.returncode != 0:
        raise SystemExit(f"warm search failed in {tree}: {result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def build_step(texts: list[str], root: Path) -> dict[str, Any]:
    from casematch.cases import Case
    from casematch.encoders import load_encoder
    from casematch.index import CaseIndex

    started = time.perf_counter()
    encoder = load_encoder("default")  # runs the runtime trial the first time
    load = time.perf_counter() - started
    cases = [Case(id=f"build:{i}", problem=t, resolved=True, resolution="See the thread.")
             for i, t in enumerate(texts)]
    chunks = [piece for case in cases for piece in encoder.chunk(case.search_text())]
    # Bare encodes before and after the build, averaged: a neighbour's load that comes or
    # goes during the run then biases neither side.
    bare_runs = []
    started = time.perf_counter()
    encoder.encode(chunks)
    bare_runs.append(time.perf_counter() - started)
    started = time.perf_counter()
    timed = _TimedEncoder(encoder)
    index, result = CaseIndex.build(cases, root, encoder=timed)
    build = time.perf_counter() - started
    index.close()
    started = time.perf_counter()
    vectors = encoder.encode(chunks)
    bare_runs.append(time.perf_counter() - started)
    bare = statistics.fmean(bare_runs)
    return {"encoder": encoder, "runtime": encoder.runtime, "load_s": load, "build_s": build,
            "bare_s": bare, "bare_runs": bare_runs, "chunks": len(chunks), "cases": len(cases),
            "vectors": vectors, "embedded": result.embedded, "inside_s": timed.seconds}


class _TimedEncoder:
    """The build's own encoder, timing its encode call: what the build adds beside it."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.seconds = inner, 0.0
        self.name, self.dimension, self.runtime = inner.name, inner.dimension, inner.runtime

    def chunk(self, text: str) -> list[str]:
        return list(self.inner.chunk(text))

    def encode(self, texts: Any, *, progress: bool = False) -> np.ndarray:
        started = time.perf_counter()
        try:
            return np.asarray(self.inner.encode(texts, progress=progress))
        finally:
            self.seconds += time.perf_counter() - started

    def query_bundle(self) -> Path:
        return Path(self.inner.query_bundle())


def query_index(size: int, texts: list[str], base: np.ndarray, encoder: Any,
                root: Path) -> None:
    import scale

    from casematch.cases import Case
    from casematch.index import attach_query_model
    from casematch.storage.writer import IndexWriter

    data = scale.synthetic(base, size)
    cases, table = [], {}
    for number in range(size):
        text = texts[number % len(texts)][:2000]
        case = Case(id=f"bench:{number}", problem=f"{text}\n\n(case {number})", resolved=True,
                    resolution="See the thread.")
        cases.append(case)
        table[case.search_text()] = data[number]
    with IndexWriter(root, scale.LookupEncoder(table)) as writer:
        for case in cases:
            writer.upsert(case)
        writer.commit()
        attach_query_model(root, encoder)


def quality(encoder: Any, data: Path, per_class: int) -> dict[str, Any]:
    import encode

    from casematch.encoders.bundle import OnnxQueryEncoder

    query = OnnxQueryEncoder(encoder.query_bundle(), encoder.name)
    fp32 = encoder.with_runtime("fp32")
    sets = encode.texts_by_length(fp32, data)
    rng = np.random.default_rng(3)
    out: dict[str, Any] = {"chunk_mismatches": 0}
    for label, texts in sets.items():
        sample = [texts[i] for i in rng.choice(len(texts), min(per_class, len(texts)),
                                               replace=False)]
        out["chunk_mismatches"] += sum(query.chunk(t) != fp32.chunk(t) for t in sample)
        single = np.vstack([query.encode([t]) for t in sample])
        out[label] = {"texts": len(sample),
                      "min_cosine": float((single * fp32.encode(sample)).sum(axis=1).min())}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True,
                        help="a checkout of the code to compare against (git worktree)")
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--build-cases", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--queries", type=int, default=65)
    parser.add_argument("--quality-texts", type=int, default=60)
    parser.add_argument("--build-texts", choices=("cases", "messages"), default="cases",
                        help="what the build step indexes: real case texts or chat messages")
    parser.add_argument("--steps", default="cold,warm,quality",
                        help="steps after the build (it always runs: its vectors seed the "
                             "query index)")
    parser.add_argument("--warm-rounds", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    data = common.require_data()
    cache = common.CACHE / "cold-cache"
    cache.mkdir(parents=True, exist_ok=True)
    os.environ["CASEMATCH_CACHE_DIR"] = str(cache)
    texts = common.real_case_texts(data)
    rng = np.random.default_rng(5)
    order = rng.permutation(len(texts))
    messages = common.disco_messages(data)
    queries = [messages[i] for i in rng.choice(len(messages), args.queries, replace=False)]

    steps = set(args.steps.split(",")) - {""}
    if steps - {"cold", "warm", "quality"}:
        parser.error(f"unknown steps: {', '.join(sorted(steps - {'cold', 'warm', 'quality'}))}")
    build_texts = ([texts[i] for i in order[: args.build_cases]] if args.build_texts == "cases"
                   else [messages[i] for i in rng.permutation(len(messages))[: args.build_cases]])

    with tempfile.TemporaryDirectory(prefix="casematch-cold-") as tmp:
        built = build_step(build_texts, Path(tmp) / "build")
        print(f"build {built['build_s']:.1f} s, bare encode {built['bare_s']:.1f} s "
              f"({built['chunks']} chunks, {built['runtime']})", file=sys.stderr)
        from casematch.encoders.trial import cached_trial

        record = cached_trial(built["encoder"].name) or {}
        index = Path(tmp) / "query"
        trees = {"this": ROOT, "baseline": args.baseline.resolve()}
        cold: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
        warm_runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        checked: dict[str, Any] = {}
        if steps & {"cold", "warm"}:
            started = time.perf_counter()
            query_index(args.cases, [texts[i] for i in order], built["vectors"],
                        built["encoder"], index)
            print(f"query index of {args.cases} cases written in "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        for tree in trees.values() if "cold" in steps else ():
            cold_query(tree, index, QUERY, cache)  # warm-up: page cache, pyc files
        for run in range(args.runs if "cold" in steps else 0):
            text = queries[run]
            for name, tree in (trees.items() if run % 2 == 0 else reversed(trees.items())):
                cold[name].append(cold_query(tree, index, text, cache))
                print(f"cold {name}: {cold[name][-1][0]:.2f} s {cold[name][-1][1]:.0f} MB",
                      file=sys.stderr)
        for round_ in range(args.warm_rounds if "warm" in steps else 0):
            for name, tree in (trees.items() if round_ % 2 == 0 else reversed(trees.items())):
                warm_runs[name].append(warm(tree, index, queries, cache))
                print(f"warm {name}: {warm_runs[name][-1]}", file=sys.stderr)
        if "quality" in steps:
            checked = quality(built["encoder"], data, args.quality_texts)
    report(args, built, record, cold, warm_runs, checked)
    return 0


def report(args: argparse.Namespace, built: dict[str, Any], record: dict[str, Any],
           cold: dict[str, list[tuple[float, float]]],
           warm_runs: dict[str, list[dict[str, Any]]], checked: dict[str, Any]) -> None:
    def med(name: str, i: int) -> float:
        return statistics.median(r[i] for r in cold[name])

    def p50(name: str) -> float:
        return statistics.median(r["p50"] for r in warm_runs[name])

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    what = "real cases" if args.build_texts == "cases" else "DISCO chat messages"
    lines = [
        f"Machine: {common.machine()}; shared with other jobs (load average during the run: "
        f"{os.getloadavg()[0]:.1f}). Command: `python benchmarks/cold.py --baseline "
        f"<worktree of ef1f43c> --cases {args.cases} --build-cases {args.build_cases} "
        f"--build-texts {args.build_texts} --runs {args.runs} --queries {args.queries} "
        f"--steps {args.steps} --warm-rounds {args.warm_rounds}`.",
        "",
        f"Runtime trial (first use on this machine, {record.get('seconds', '?')} s): "
        f"chose {record.get('choice')}; measured "
        + "; ".join(f"{n} {m['batch_texts_per_s']:.1f} texts/s, {m['query_ms']:.1f} ms/query, "
                    f"min cosine {m['min_cosine']:.5f}"
                    for n, m in (record.get("measurements") or {}).items())
        + f"; ONNX query session: {record.get('query_session')}.",
    ]
    targets = []
    if cold["this"]:
        lines += [
            "",
            f"| cold `casematch query`, {args.cases:,} cases, {args.runs} runs | median wall s "
            "| median peak RSS MB | runs (s) |",
            "|---|---|---|---|",
        ]
        for name in cold:
            lines.append(f"| {name} | {med(name, 0):.2f} | {med(name, 1):.0f} | "
                         + ", ".join(f"{w:.2f}" for w, _ in cold[name]) + " |")
        lines.append(f"| ratio this / baseline | {med('this', 0) / med('baseline', 0):.2f} | "
                     f"{med('this', 1) / med('baseline', 1):.2f} | |")
        wall, rss = med("this", 0), med("this", 1)
        targets += [f"cold wall <= 0.8 s: {verdict(wall <= 0.8)} ({wall:.2f} s; the baseline "
                    f"took {med('baseline', 0):.1f} s in the same run)",
                    f"peak RSS <= 250 MB: {verdict(rss <= 250)} ({rss:.0f} MB)"]
    if warm_runs["this"]:
        lines += [
            "",
            f"| warm `search()` p50 ms, {args.cases:,} cases, {args.queries} queries, "
            f"{args.warm_rounds} rounds | round p50s | median | encoder |",
            "|---|---|---|---|",
        ]
        for name, runs in warm_runs.items():
            lines.append(f"| {name} | " + ", ".join(f"{r['p50']:.1f}" for r in runs)
                         + f" | {p50(name):.1f} | {runs[0]['encoder']} ({runs[0]['runtime']}) |")
        lines.append(f"| ratio this / baseline | | {p50('this') / p50('baseline'):.2f} | |")
        targets.append(f"warm p50 at {args.cases:,} cases no worse: "
                       f"{verdict(p50('this') <= p50('baseline'))} "
                       f"({p50('this') / p50('baseline'):.2f}x)")
    ratio = built["build_s"] / built["bare_s"]
    lines += [
        "",
        f"Build of {built['cases']:,} {what} ({built['chunks']:,} chunks, runtime "
        f"{built['runtime']}, model load {built['load_s']:.1f} s not counted): build "
        f"{built['build_s']:.1f} s, bare encode of the same chunks {built['bare_s']:.1f} s "
        f"(mean of {', '.join(f'{b:.1f}' for b in built['bare_runs'])}: before and after), "
        f"ratio {ratio:.2f}. The same build's own encode call took "
        f"{built['inside_s']:.1f} s: everything else (chunking, SQLite, FTS5, FAISS, "
        f"publishing, the query-model copy) {built['build_s'] - built['inside_s']:.1f} s, "
        f"ratio build / its encode {built['build_s'] / built['inside_s']:.3f}.",
    ]
    targets.append(f"build / bare encode <= 1.15 at {built['cases']:,} {what}: "
                   f"{verdict(ratio <= 1.15)} ({ratio:.2f})")
    if checked:
        lines += [
            "",
            f"Torch-free query encoder vs torch fp32 on encode.py's texts "
            f"({args.quality_texts} per class): chunk mismatches "
            f"{checked['chunk_mismatches']}; worst cosine "
            + ", ".join(f"{k} {v['min_cosine']:.6f}" for k, v in checked.items()
                        if isinstance(v, dict)) + ".",
        ]
    lines += ["", f"Targets of issue 18 on this run (load average {os.getloadavg()[0]:.1f}, "
                  f"2 cores): " + "; ".join(targets) + "."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        common.write_section("Cold start (issue 18)", text)


if __name__ == "__main__":
    raise SystemExit(main())
