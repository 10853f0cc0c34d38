"""Build time, memory, search latency and recall@10 vs exact at 10k, 100k and 1M cases.

    python benchmarks/scale.py [--sizes 10000,100000,1000000] [--queries 200] [--no-write]

Vectors: the real all-MiniLM-L6-v2 embeddings of every real case text in ../shared/data
(DISCO conversations, GitBugs reports, StackFAQ threads; cached in benchmarks/.cache/),
then, to reach 10k/100k/1M, synthetic vectors made from them: normalize(a + 0.5 b + n),
with a, b two random real case vectors and n Gaussian noise (sigma 0.03 per dimension).
Embedding a million texts is not feasible on 2 cores (see "Encoder runtimes").
Queries: real chat messages from DISCO, embedded with the real model.

End-to-end `CaseIndex.search()` is timed at 10k and 100k on a real index directory (SQLite
+ FTS5 + FAISS) whose cases carry real texts (cycled, numbered), with the query embedded by
the real model: the default (hybrid: dense + FTS5 + fusion + fetching cases) and dense-only
modes, interleaved query by query, plus one extra hybrid pass that times each step (query
embedding, term selection, FTS5, FAISS, fetching cases) to show where the time goes. At 1M
only the vector index is measured, with the cost of a nightly-sized update (remove and
re-add 1,000 ids) on each index kind.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import faiss  # before torch (casematch imports it): they share libgomp

import casematch.search.retrieve as search_module
from casematch.cases import Case
from casematch.encoders import DEFAULT_MODEL_NAME, load_encoder
from casematch.index import CaseIndex, serve_queries_on_one_thread
from casematch.search import SearchOptions
from casematch.storage import vectors as V
from casematch.storage.writer import IndexWriter

NOISE = 0.03
UPDATE_IDS = 1_000


def embeddings(texts: list[str], label: str) -> np.ndarray:
    """Real fp32 embeddings of `texts`, cached by content in benchmarks/.cache/."""
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
    path = common.CACHE / f"{label}-{digest}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    common.CACHE.mkdir(parents=True, exist_ok=True)
    encoder = load_encoder("default", runtime="fp32")
    started = time.perf_counter()
    vectors = encoder.encode(texts, progress=True)
    print(f"embedded {len(texts)} {label} texts in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    np.save(path, vectors)
    return vectors


def synthetic(real: np.ndarray, count: int, seed: int = 7) -> np.ndarray:
    """`count` vectors: the real ones first, then mixes of two real ones plus noise."""
    if count <= len(real):
        return real[:count].copy()
    rng = np.random.default_rng(seed)
    extra = count - len(real)
    out = np.empty((count, real.shape[1]), dtype=np.float32)
    out[: len(real)] = real
    for start in range(0, extra, 100_000):
        n = min(100_000, extra - start)
        a = real[rng.integers(0, len(real), n)]
        b = real[rng.integers(0, len(real), n)]
        mixed = a + 0.5 * b + rng.normal(0, NOISE, a.shape).astype(np.float32)
        mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
        out[len(real) + start : len(real) + start + n] = mixed
    return out


def latencies(index: Any, queries: np.ndarray, k: int = 10,
              parts: int | None = None) -> tuple[list[float], np.ndarray]:
    wrapped = V.VectorIndex(index, parts=parts)
    for q in queries[:5]:
        wrapped.search(q[None], k)
    times, found = [], []
    for q in queries:
        started = time.perf_counter()
        _, ids = wrapped.search(q[None], k)
        times.append((time.perf_counter() - started) * 1000)
        found.append(ids[0])
    return times, np.array(found)


def recall(exact: np.ndarray, approx: np.ndarray) -> float:
    return statistics.fmean(len(set(e) & set(a)) / len(e) for e, a in zip(exact, approx,
                                                                        strict=True))


def rss_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


class LookupEncoder:
    """Hands the writer precomputed vectors (encoding is measured in encode.py)."""

    name = DEFAULT_MODEL_NAME
    dimension = 384

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def chunk(self, text: str) -> list[str]:
        return [text]

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])


def vector_level(size: int, base: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    data = synthetic(base, size)
    ids = np.arange(size, dtype=np.int64)
    before = rss_mb()
    started = time.perf_counter()
    flat = V.new_index(data.shape[1])
    flat.add_with_ids(data, ids)
    flat_build = time.perf_counter() - started
    flat_mb = rss_mb() - before
    flat_times, found = latencies(flat, queries)
    # The reference: 32-bit floats, one thread (what the index stored before fp16 codes).
    reference = faiss.IndexIDMap2(faiss.IndexFlatIP(data.shape[1]))
    reference.add_with_ids(data, ids)
    fp32_times, exact = latencies(reference, queries, parts=1)
    del reference
    row: dict[str, Any] = {
        "size": size, "flat_build_s": flat_build, "flat_mb": flat_mb,
        "flat_p50": common.percentile(flat_times, 50),
        "flat_p99": common.percentile(flat_times, 99),
        "fp32_p50": common.percentile(fp32_times, 50),
        "fp32_p99": common.percentile(fp32_times, 99),
        "flat_recall": recall(exact, found),
        "flat_parts": V.VectorIndex(flat).scan_parts,
        "flat_mem_mb": V.memory_bytes(flat) / 2**20,
        "flat_update_ms": update_ms(flat, data),
    }
    started = time.perf_counter()
    ivf = V.fit(flat, exact_limit=min(size - 1, V.EXACT_LIMIT))
    row["ivf_build_s"] = time.perf_counter() - started
    row["ivf_mem_mb"] = V.memory_bytes(ivf) / 2**20
    row["ivf"] = V.describe(ivf)
    row["ivf_update_ms"] = update_ms(ivf, data)
    del flat
    ivf_index = faiss.extract_index_ivf(ivf)
    sweep = []
    default_nprobe = ivf_index.nprobe
    for nprobe in sorted({min(ivf_index.nlist, max(1, n)) for n in (
            default_nprobe // 4, default_nprobe // 2, default_nprobe, default_nprobe * 2,
            ivf_index.nlist // 2)}):
        ivf_index.nprobe = nprobe
        times, found = latencies(ivf, queries)
        sweep.append((ivf_index.nprobe, recall(exact, found), common.percentile(times, 50),
                      common.percentile(times, 99)))
    ivf_index.nprobe = default_nprobe
    row["sweep"] = sweep
    row["ivf_recall"], row["ivf_p50"], row["ivf_p99"] = next(
        (r, p50, p99) for n, r, p50, p99 in sweep if n == default_nprobe)
    return row


def update_ms(index: Any, data: np.ndarray) -> float:
    """Remove `UPDATE_IDS` ids and add them back (a nightly update's index work), in ms."""
    ids = np.random.default_rng(1).choice(len(data), min(UPDATE_IDS, len(data) // 2),
                                          replace=False).astype(np.int64)
    before = index.ntotal
    started = time.perf_counter()
    removed = index.remove_ids(ids)  # as the writer does (IVF needs an IDSelectorArray)
    index.add_with_ids(data[ids], ids)
    elapsed = (time.perf_counter() - started) * 1000
    assert removed == len(ids) and index.ntotal == before, (removed, index.ntotal, before)
    return elapsed


# The lexical side (query terms, lexicon, FTS5) runs in a worker thread while the query is
# embedded and FAISS searches: its time overlaps the others, so it is reported but not
# subtracted from the total.
BESIDE = "query terms, lexicon and FTS5 (in a worker, beside the embedding; not part of the sum)"


class StepTimer:
    """Wall time of each step inside `CaseIndex.search()`, per query, by wrapping the
    callables the search path goes through (the library itself is not changed)."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.queries: list[dict[str, float]] = []

    def wrap(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                elapsed = (time.perf_counter() - started) * 1000
                self.current[name] = self.current.get(name, 0.0) + elapsed
        return timed

    @contextlib.contextmanager
    def patched(self, index: CaseIndex) -> Iterator[None]:
        store, encoder, vectors = index.storage.store, index.encoder, index.storage.vectors
        targets: list[tuple[Any, str, str]] = [
            (encoder, "encode", "query embedding"),
            (vectors, "search", "FAISS search"),
            (search_module, "_lexical_side", BESIDE),
            (search_module, "_dense_for", "cosines of lexical-only hits"),
            (store, "cases_by_rowid", "fetching cases"),
        ]
        saved = [(obj, attr, obj.__dict__.get(attr)) for obj, attr, _ in targets]
        for obj, attr, name in targets:
            setattr(obj, attr, self.wrap(name, getattr(obj, attr)))
        try:
            yield
        finally:
            for obj, attr, old in saved:
                if old is None:
                    delattr(obj, attr)
                else:
                    setattr(obj, attr, old)

    def run(self, func: Callable[[], Any]) -> None:
        self.current = {}
        started = time.perf_counter()
        func()
        total = (time.perf_counter() - started) * 1000
        self.current["total"] = total
        self.current["rest (fusion, collapse, Python)"] = total - sum(
            v for k, v in self.current.items() if k not in ("total", BESIDE))
        self.queries.append(self.current)

    def medians(self) -> dict[str, float]:
        names = [k for k in self.queries[0] if k != "total"] + ["total"]
        for query in self.queries:
            names += [k for k in query if k not in names]
        return {n: statistics.median(q.get(n, 0.0) for q in self.queries) for n in names}


def bench_cases(size: int, base: np.ndarray,
                texts: list[str]) -> tuple[list[Case], dict[str, np.ndarray]]:
    """`size` cases of the real `texts`, cycled, and each one's vector (synthetic, from
    `base`) by its search text, for a `LookupEncoder`."""
    data = synthetic(base, size)
    cases, table = [], {}
    for number in range(size):
        text = texts[number % len(texts)]
        # Numbered so every case is distinct (own id, own content hash).
        problem = text if number < len(texts) else f"{text}\n\n(case {number})"
        case = Case(id=f"bench:{number}", problem=problem, resolved=True,
                    resolution="See the thread.")
        cases.append(case)
        table[case.search_text()] = data[number]
    return cases, table


def end_to_end(size: int, base: np.ndarray, texts: list[str], queries: list[str],
               repeat: int, hybrid_limit: int) -> dict[str, Any]:
    """A real index directory of `size` cases, searched through `CaseIndex.search()`."""
    cases, table = bench_cases(size, base, texts)
    encoder = LookupEncoder(table)
    with tempfile.TemporaryDirectory(prefix="casematch-scale-") as tmp:
        started = time.perf_counter()
        with IndexWriter(Path(tmp), encoder) as writer:
            for case in cases:
                writer.upsert(case)
            writer.commit()
        build = time.perf_counter() - started
        del cases, table
        size_mb = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 2**20
        # Opened as a query process opens it: the model loads on first use, and torch
        # runs on one thread, as the CLI and the responder ask for.
        index = CaseIndex.open(tmp)
        serve_queries_on_one_thread()
        real = index.encoder
        dense = SearchOptions(mode="dense")
        for query in queries[:5]:
            index.search(query, 5, options=dense)
            if size <= hybrid_limit:
                index.search(query, 5)
        times: dict[str, list[float]] = {"dense": [], "embed": [], "faiss": []}
        if size <= hybrid_limit:
            times["hybrid"] = []
        # CPU time of every thread of the process, beside the wall time: on 2 cores a
        # search can never take less wall time than its CPU time / 2.
        cpu: dict[str, list[float]] = {name: [] for name in times}

        def timed(name: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            wall, used = time.perf_counter(), time.process_time()
            result = func(*args, **kwargs)
            times[name].append((time.perf_counter() - wall) * 1000)
            cpu[name].append((time.process_time() - used) * 1000)
            return result

        for _ in range(repeat):
            for query in queries:
                # Interleaved query by query: a burst of load on the shared machine hits
                # both modes alike.
                timed("dense", index.search, query, 5, options=dense)
                if size <= hybrid_limit:
                    timed("hybrid", index.search, query, 5)  # the default
        for query in queries:
            vector = timed("embed", real.encode, [query])
            timed("faiss", index.storage.vectors.search, vector, 200)
        steps: dict[str, float] = {}
        if size <= hybrid_limit:
            timer = StepTimer()
            with timer.patched(index):
                for query in queries:
                    timer.run(functools.partial(index.search, query, 5))
            steps = timer.medians()
        kind = V.describe(index.storage.vectors.index)
        index.close()
    row: dict[str, Any] = {"size": size, "build_s": build, "disk_mb": size_mb, "kind": kind,
                           "runtime": getattr(real, "runtime", "?"), "steps": steps,
                           "samples": len(times["dense"])}
    for name, values in times.items():
        row[f"{name}_p50"] = common.percentile(values, 50)
        row[f"{name}_p99"] = common.percentile(values, 99)
        row[f"{name}_cpu_p50"] = common.percentile(cpu[name], 50)
    row["cores"] = len(os.sched_getaffinity(0))
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=common.DATA)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--e2e-sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--e2e-queries", type=int, default=100)
    parser.add_argument("--hybrid-limit", type=int, default=1_000_000,
                        help="largest size at which the default (hybrid) search is timed")
    parser.add_argument("--real", type=int, default=2000, help="real case texts to embed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    common.require_data(args.data)
    args.load = [os.getloadavg()[0]]
    # A sample of the real texts: embedding all ~5,400 takes ~10 minutes on a busy 2 cores.
    every = common.real_case_texts(args.data)
    texts = [every[i] for i in np.random.default_rng(5).permutation(len(every))[: args.real]]
    base = embeddings(texts, "cases")
    messages = common.disco_messages(args.data)
    rng = np.random.default_rng(3)
    query_texts = [messages[i] for i in rng.choice(len(messages), args.queries, replace=False)]
    query_vectors = embeddings(query_texts, "queries")
    print(f"{len(texts)} real case vectors, {len(query_texts)} real queries", file=sys.stderr)

    rows = []
    for size in (int(s) for s in args.sizes.split(",") if s):
        rows.append(vector_level(size, base, query_vectors))
        print(rows[-1], file=sys.stderr)
    e2e = []
    for size in (int(s) for s in args.e2e_sizes.split(",") if s):
        e2e.append(end_to_end(size, base, texts, query_texts[: args.e2e_queries], args.repeat,
                              args.hybrid_limit))
        print(e2e[-1], file=sys.stderr)
    args.load.append(os.getloadavg()[0])
    body = report(rows, e2e, len(texts), args)
    print(body)
    if not args.no_write:
        common.write_section("Scale", body)
    return 0


def report(rows: list[dict[str, Any]], e2e: list[dict[str, Any]], real_count: int,
           args: argparse.Namespace) -> str:
    lines = [
        f"Machine: {common.machine()}; shared with other engineers' test runs while measured, "
        "so absolute times are noisy (ratios hold better); 1-minute load average "
        f"{args.load[0]:.1f} at the start, {args.load[-1]:.1f} at the end.",
        f"Command: `python benchmarks/scale.py --sizes {args.sizes} --e2e-sizes "
        f"{args.e2e_sizes} --queries {args.queries} --e2e-queries {args.e2e_queries} "
        f"--hybrid-limit {args.hybrid_limit} --repeat {args.repeat} --real {args.real}`.",
        "",
        f"Vectors: {real_count:,} real all-MiniLM-L6-v2 case embeddings (a random sample of "
        "DISCO conversations, GitBugs, StackFAQ), the rest synthetic: "
        "normalize(a + 0.5 b + noise), a and b random "
        f"real vectors, Gaussian noise sigma {NOISE}/dim. Queries: {args.queries} real DISCO "
        "chat messages. Latency is one query at a time (k=10) through `VectorIndex`: an "
        "exact fp16 scan is split across the cores, IVF and the fp32 reference run on one "
        "thread.",
        "",
        "### Vector index alone",
        "",
        "| vectors | exact build s | exact fp32, 1 thread p50 / p99 ms (reference) | "
        "exact fp16 p50 / p99 ms (scan parts) | fp16 recall@10 vs fp32 | IVF | "
        "IVF build s (train+add) | IVF p50 / p99 ms | IVF recall@10 vs exact fp32 | "
        "memory exact / IVF MB (est.) | "
        f"update ms exact / IVF (remove + re-add {UPDATE_IDS:,} ids) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']:,} | {r['flat_build_s']:.2f} | {r['fp32_p50']:.2f} / "
            f"{r['fp32_p99']:.2f} | {r['flat_p50']:.2f} / {r['flat_p99']:.2f} "
            f"({r['flat_parts']}) | {r['flat_recall']:.3f} | "
            f"{r['ivf']} | {r['ivf_build_s']:.1f} | {r['ivf_p50']:.2f} / "
            f"{r['ivf_p99']:.2f} | {r['ivf_recall']:.3f} | {r['flat_mem_mb']:.0f} / "
            f"{r['ivf_mem_mb']:.0f} | {r['flat_update_ms']:.0f} / {r['ivf_update_ms']:.0f} |")
    lines += ["", "nprobe sweep (recall@10 vs exact fp32, p50 / p99 ms):", ""]
    for r in rows:
        cells = ", ".join(f"nprobe {n}: {rec:.3f} at {p50:.2f} / {p99:.2f}"
                          for n, rec, p50, p99 in r["sweep"])
        lines.append(f"- {r['size']:,}: {cells}")
    if e2e:
        lines += [
            "", "### End to end: `CaseIndex.search(text, 5)` on a real index directory", "",
            "The default hybrid mode (query embedding + FAISS + FTS5 + fusion + fetching "
            "cases + collapse) and dense mode (no FTS5), interleaved query by query, over "
            f"{args.e2e_queries} real queries x {args.repeat} (hybrid timed up to "
            f"{args.hybrid_limit:,} cases). Target at 100,000 cases: hybrid p50 <= 20 ms, "
            "p99 <= 50 ms.", "",
            "| cases | index | writer build s (no encoding) | on disk MB | search() dense "
            "p50 / p99 ms | search() hybrid p50 / p99 ms | query embedding p50 / p99 ms | "
            "FAISS k=200 p50 / p99 ms | runtime |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for e in e2e:
            hybrid = (f"{e['hybrid_p50']:.0f} / {e['hybrid_p99']:.0f}" if "hybrid_p50" in e
                      else "not run")
            lines.append(
                f"| {e['size']:,} | {e['kind']} | {e['build_s']:.1f} | {e['disk_mb']:.0f} | "
                f"{e['dense_p50']:.1f} / {e['dense_p99']:.1f} | {hybrid} | "
                f"{e['embed_p50']:.1f} / {e['embed_p99']:.1f} | {e['faiss_p50']:.2f} / "
                f"{e['faiss_p99']:.2f} | {e['runtime']} |")
        lines += [
            "", "CPU time of one search (every thread of the process, median ms; "
            "`time.process_time()` around the same calls as above), and the least wall time "
            "it allows on this machine's cores:", "",
            "| cases | dense CPU ms | hybrid CPU ms | of which query embedding | of which "
            "FAISS k=200 | cores | hybrid wall floor ms (CPU / cores) |",
            "|---|---|---|---|---|---|---|",
        ]
        for e in e2e:
            hybrid_cpu = e.get("hybrid_cpu_p50")
            hybrid, floor = "not run", "-"
            if hybrid_cpu is not None:
                hybrid, floor = f"{hybrid_cpu:.1f}", f"{hybrid_cpu / e['cores']:.1f}"
            lines.append(
                f"| {e['size']:,} | {e['dense_cpu_p50']:.1f} | {hybrid} | "
                f"{e['embed_cpu_p50']:.1f} | {e['faiss_cpu_p50']:.1f} | {e['cores']} | "
                f"{floor} |")
        for e in e2e:
            if not e["steps"]:
                continue
            total = e["steps"]["total"]
            lines += ["", f"Where a hybrid `search()` spends its time at {e['size']:,} cases "
                      f"(a separate pass, {args.e2e_queries} queries, median ms per query; "
                      "steps wrapped from the benchmark):", "",
                      "| step | median ms | share of median total |", "|---|---|---|"]
            lines += [f"| {name} | {ms:.2f} | {ms / total:.0%} |"
                      for name, ms in e["steps"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
