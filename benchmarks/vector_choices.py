"""Evidence for the vector index choices, on real embeddings where there are enough.

    python benchmarks/vector_choices.py [--queries 500] [--size 100000] [--no-write]

1. IVF recall on real vectors. `scale.py` has to reach 100k and 1M with synthetic vectors
   (mixes of two real ones), so its IVF recall could flatter or wrong IVF. Here every real
   text in ../shared/data is embedded (each DISCO chat message of 6+ words and every real
   case text: ~48,000 vectors, ~15 minutes on 2 cores the first time, then cached in
   benchmarks/.cache/), some held-out messages are the queries, and the library's own IVF
   (`vectors.fit` past the exact limit) is swept over nprobe, beside synthetic vectors of
   the same count made as `scale.py` makes them.
2. Scan time by code type: one query, one thread, k=200, at `--size` vectors, with recall@10
   against exact fp32 as scanned and after re-scoring the 200 candidates exactly: what a
   smaller code would buy the exact scan.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import common
import faiss  # before torch (casematch imports it): they share libgomp
import numpy as np
import scale

from casematch.storage import vectors as V

# k asked of the scan: what `search.py` asks for k=50 candidates.
CANDIDATES = 200


def exact_top10(corpus: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The reference: each query's 10 nearest by an exact fp32 scan."""
    reference = faiss.IndexFlatIP(corpus.shape[1])
    reference.add(corpus)
    return reference.search(queries, 10)[1]


def ivf_sweep(corpus: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    exact = exact_top10(corpus, queries)
    flat = V.new_index(corpus.shape[1])
    flat.add_with_ids(corpus, np.arange(len(corpus), dtype=np.int64))
    index = V.fit(flat, exact_limit=0)  # the library's IVF for this many vectors
    ivf = faiss.extract_index_ivf(index)
    chosen = ivf.nprobe
    sweep = []
    for nprobe in sorted({max(1, ivf.nlist // d) for d in (32, 16, 8, 4, 2)} | {chosen}):
        ivf.nprobe = nprobe
        _, found = index.search(queries, 10)
        sweep.append((nprobe, nprobe / ivf.nlist, scale.recall(exact, found)))
    return {"n": len(corpus), "nlist": ivf.nlist, "chosen": chosen, "sweep": sweep}


def code_types(corpus: np.ndarray,
               queries: np.ndarray) -> list[tuple[str, int, float, float, float]]:
    exact = exact_top10(corpus, queries)
    kinds: dict[str, Any] = {"fp32 (IndexFlatIP)": None}
    for name in ("fp16", "bf16", "8bit", "8bit_uniform", "6bit", "4bit"):
        if hasattr(faiss.ScalarQuantizer, f"QT_{name}"):
            kinds[f"SQ {name}"] = getattr(faiss.ScalarQuantizer, f"QT_{name}")
    rows = []
    faiss.omp_set_num_threads(1)
    for name, qtype in kinds.items():
        index: Any
        if qtype is None:
            index = faiss.IndexFlatIP(corpus.shape[1])
        else:
            index = faiss.IndexScalarQuantizer(corpus.shape[1], qtype,
                                               faiss.METRIC_INNER_PRODUCT)
            index.train(corpus)
        index.add(corpus)
        for query in queries[:5]:
            index.search(query[None], CANDIDATES)
        times, found, rescored = [], [], []
        for query in queries:
            started = time.perf_counter()
            _, ids = index.search(query[None], CANDIDATES)
            times.append((time.perf_counter() - started) * 1000)
            found.append(ids[0][:10])
            rescored.append(ids[0][np.argsort(-(corpus[ids[0]] @ query))][:10])
        rows.append((name, index.code_size, common.percentile(times, 50),
                     scale.recall(exact, np.array(found)), scale.recall(exact, np.array(rescored))))
        print(rows[-1], file=sys.stderr)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=common.DATA)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    common.require_data(args.data)
    load = [os.getloadavg()[0]]
    messages = sorted(set(common.disco_messages(args.data)))
    cases = common.real_case_texts(args.data)
    message_vectors = scale.embeddings(messages, "messages")
    case_vectors = scale.embeddings(cases, "allcases")
    rng = np.random.default_rng(11)
    order = rng.permutation(len(message_vectors))
    queries = message_vectors[order[: args.queries]]
    corpus = np.concatenate([message_vectors[order[args.queries:]], case_vectors])
    real = ivf_sweep(corpus, queries)
    # As scale.py makes them: mixes of two of 2,000 real case vectors, plus noise.
    base = case_vectors[rng.permutation(len(case_vectors))[:2000]]
    synthetic = ivf_sweep(scale.synthetic(base, len(corpus)), queries)
    for row in (real, synthetic):
        print(row, file=sys.stderr)
    codes = code_types(scale.synthetic(corpus, args.size), queries[:200])
    load.append(os.getloadavg()[0])
    body = report(real, synthetic, codes, len(messages), len(cases), args, load)
    print(body)
    if not args.no_write:
        common.write_section("Vector index choices on real embeddings", body)
    return 0


def report(real: dict[str, Any], synthetic: dict[str, Any],
           codes: list[tuple[str, int, float, float, float]], messages: int, cases: int,
           args: argparse.Namespace, load: list[float]) -> str:
    lines = [
        f"Machine: {common.machine()}; 1-minute load average {load[0]:.1f} at the start, "
        f"{load[-1]:.1f} at the end.",
        f"Command: `python benchmarks/vector_choices.py --queries {args.queries} --size "
        f"{args.size}`.",
        "",
        f"Real vectors: all-MiniLM-L6-v2 embeddings of {messages:,} distinct DISCO chat "
        f"messages (6+ words) and {cases:,} real case texts; {args.queries} of the messages, "
        f"held out, are the queries, the other {real['n']:,} vectors the corpus. Synthetic: "
        "the same count made as `scale.py` makes them. IVF is the library's own "
        f"(`vectors.fit` past the exact limit: IVF{real['nlist']}, fp16 codes, spherical "
        f"k-means), its default nprobe {real['chosen']}; recall@10 against exact fp32.",
        "",
        "| nprobe | share of lists scanned | recall@10, real vectors | recall@10, synthetic |",
        "|---|---|---|---|",
    ]
    synthetic_recall = {nprobe: value for nprobe, _, value in synthetic["sweep"]}
    for nprobe, share, value in real["sweep"]:
        default = " (default)" if nprobe == real["chosen"] else ""
        lines.append(f"| {nprobe}{default} | {share:.0%} | {value:.3f} | "
                     f"{synthetic_recall.get(nprobe, float('nan')):.3f} |")
    lines += [
        "",
        f"Scan time by code type: {args.size:,} vectors (the real ones above, then mixes of "
        f"them as in `scale.py`), one query at a time on one thread, k={CANDIDATES}, "
        f"{min(200, args.queries)} held-out real queries; recall@10 against exact fp32 as "
        f"scanned, and after re-scoring the {CANDIDATES} candidates with the fp32 vectors.",
        "",
        "| codes | scan p50 ms | recall@10 as scanned | recall@10 re-scored | bytes per vector |",
        "|---|---|---|---|---|",
    ]
    for name, code_size, p50, raw, rescored in codes:
        lines.append(f"| {name} | {p50:.2f} | {raw:.3f} | {rescored:.3f} | {code_size} |")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
