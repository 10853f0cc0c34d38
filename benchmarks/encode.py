"""Encoder throughput and quality per runtime (fp32, bf16 autocast, ONNX), side by side.

    python benchmarks/encode.py [--repeat 3] [--no-write]

Realistic case texts from ../shared/data: short (single DISCO chat messages), medium
(GitBugs reports and StackFAQ questions, < 256 tokens), long (DISCO conversations, chunked
into model windows as the index does). Each runtime encodes the same texts in one call per
set (sentence-transformers sorts by length within a call), runtimes interleaved per repeat,
medians reported. Quality of every non-fp32 runtime: cosine of its vectors to fp32's
(mean / min) and top-10 overlap (queries = short texts, corpus = medium + long, each
ranked with that runtime's vectors against fp32's ranking). Single-query latency per runtime
as an opened index serves it (torch on one thread; ONNX Runtime on its session's threads).
With onnx, the torch-free query encoder's two graphs (fp32, int8) are also timed one query
at a time, and the int8 graph's query vectors compared with fp32's: cosine on the short
texts, top-10 overlap against the fp32 corpus (an index is built by the batch runtime).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import faiss  # noqa: F401  (before torch: they share libgomp, the first one sets threads)

from casematch.encoders import DEFAULT_BATCH_SIZE, choose_runtime
from casematch.encoders.onnx import onnxruntime_available
from casematch.encoders.sbert import SentenceTransformerEncoder, serve_queries_on_one_thread

SIZES = {"short": 300, "medium": 200, "long": 60}


def texts_by_length(encoder: SentenceTransformerEncoder, data: Path) -> dict[str, list[str]]:
    rng = np.random.default_rng(11)
    messages = common.disco_messages(data)
    short = [messages[i] for i in rng.choice(len(messages), SIZES["short"], replace=False)]
    medium_pool = [c.text() for c in common.gitbugs(data).cases]
    medium_pool += [c.problem for c in common.stackfaq(data).cases]
    medium_pool = [t for t in medium_pool if len(encoder.chunk(t)) == 1 and len(t) > 200]
    medium = [medium_pool[i] for i in rng.choice(len(medium_pool), SIZES["medium"],
                                                 replace=False)]
    conversations = [c.text() for c in common.disco_cases(data)]
    conversations = [t for t in conversations if len(encoder.chunk(t)) > 1]
    long_texts = [conversations[i] for i in rng.choice(len(conversations), SIZES["long"],
                                                       replace=False)]
    # Long cases are indexed as windows: measure exactly what the writer encodes.
    long_chunks = [piece for text in long_texts for piece in encoder.chunk(text)]
    return {"short": short, "medium": medium, "long": long_chunks}


def token_count(encoder: SentenceTransformerEncoder, texts: list[str]) -> int:
    tokenizer: Any = encoder._tokenizer
    limit = encoder._window + 2
    return sum(min(limit, len(ids)) for ids in tokenizer(texts)["input_ids"])


def timed(encoder: SentenceTransformerEncoder, texts: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    vectors = encoder.encode(texts)
    return time.perf_counter() - started, vectors


def single_query_ms(encoder: SentenceTransformerEncoder, texts: list[str],
                    repeat: int) -> tuple[float, float]:
    """p50 / p99 of encoding one text at a time, in ms (how a search embeds its query)."""
    for text in texts[:10]:
        encoder.encode([text])
    samples = []
    for _ in range(repeat):
        for text in texts:
            started = time.perf_counter()
            encoder.encode([text])
            samples.append((time.perf_counter() - started) * 1000)
    return common.percentile(samples, 50), common.percentile(samples, 99)


def query_graphs(encoders: dict[str, SentenceTransformerEncoder]) -> dict[str, Any]:
    """The torch-free query encoder on its fp32 and int8 graphs, in the trial's session."""
    if "onnx" not in encoders:
        return {}
    from casematch.encoders.bundle import OnnxQueryEncoder
    from casematch.encoders.trial import query_session

    name = encoders["fp32"].name
    folder = encoders["onnx"].query_bundle()
    threads, spinning, _ = query_session(name)
    graphs = {}
    for weights in ("fp32", "int8"):
        graph = OnnxQueryEncoder(folder, name, threads=threads, spinning=spinning,
                                 weights=weights)
        if graph.weights == weights:  # a bundle that could not make the int8 graph
            graphs[f"query graph {weights}"] = graph
    return graphs


def top10(queries: np.ndarray, corpus: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ corpus.T), axis=1)[:, :10]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=common.DATA)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-sizes", default="8,16,32,64,128")
    parser.add_argument("--runtimes", default="fp32,bf16,onnx",
                        help="fp32 is always included: the others are compared with it")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    common.require_data(args.data)
    runtimes = list(dict.fromkeys(["fp32", *args.runtimes.split(",")]))
    if "onnx" in runtimes and not onnxruntime_available():
        runtimes.remove("onnx")
    encoders = {runtime: SentenceTransformerEncoder(runtime=runtime) for runtime in runtimes}
    sets = texts_by_length(encoders["fp32"], args.data)
    tokens = {name: token_count(encoders["fp32"], texts) for name, texts in sets.items()}
    for encoder in encoders.values():  # warm-up: first calls allocate and pick kernels
        encoder.encode(sets["short"][:64])
    seconds: dict[tuple[str, str], list[float]] = {}
    vectors: dict[tuple[str, str], np.ndarray] = {}
    for _ in range(args.repeat):
        for name, texts in sets.items():
            for runtime, encoder in encoders.items():
                elapsed, out = timed(encoder, texts)
                seconds.setdefault((runtime, name), []).append(elapsed)
                vectors[(runtime, name)] = out
        print({k: [round(x, 2) for x in v] for k, v in seconds.items()}, file=sys.stderr)

    quality = {}
    corpus_ref = np.vstack([vectors[("fp32", "medium")], vectors[("fp32", "long")]])
    ref_top = top10(vectors[("fp32", "short")], corpus_ref)
    for runtime in encoders:
        cosines = np.concatenate([
            np.sum(vectors[(runtime, n)] * vectors[("fp32", n)], axis=1) for n in sets])
        corpus = np.vstack([vectors[(runtime, "medium")], vectors[(runtime, "long")]])
        mine = top10(vectors[(runtime, "short")], corpus)
        overlap = statistics.fmean(len(set(a) & set(b)) / 10 for a, b in zip(mine, ref_top,
                                                                              strict=True))
        quality[runtime] = (float(cosines.mean()), float(cosines.min()), overlap)

    sweep: list[tuple[str, int, float]] = []
    sweep_texts = sets["medium"] + sets["long"]
    sweep_tokens = tokens["medium"] + tokens["long"]
    # The batch runtime `auto` would pick, where this run measures it.
    for runtime in (r for r in dict.fromkeys(("fp32", choose_runtime("auto"))) if r in encoders):
        encoder = encoders[runtime]
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            encoder.batch_size = batch
            runs = [timed(encoder, sweep_texts)[0] for _ in range(max(1, args.repeat - 1))]
            sweep.append((runtime, batch, statistics.median(runs)))
            print(sweep[-1], file=sys.stderr)
        encoder.batch_size = DEFAULT_BATCH_SIZE

    graphs = query_graphs(encoders)
    for label, graph in graphs.items():
        short = np.vstack([graph.encode([text]) for text in sets["short"]])
        cosines = np.sum(short * vectors[("fp32", "short")], axis=1)
        mine = top10(short, corpus_ref)
        overlap = statistics.fmean(len(set(a) & set(b)) / 10 for a, b in zip(mine, ref_top,
                                                                              strict=True))
        quality[label] = (float(cosines.mean()), float(cosines.min()), overlap)

    # Last, because an index opened for queries leaves torch on one thread for the process.
    serve_queries_on_one_thread()
    single = {runtime: single_query_ms(encoder, sets["short"][:100], args.repeat)
              for runtime, encoder in {**encoders, **graphs}.items()}

    body = report(sets, tokens, seconds, quality, sweep, sweep_tokens, single, args)
    print(body)
    if not args.no_write:
        common.write_section("Encoder runtimes", body)
    return 0


def report(sets: dict[str, list[str]], tokens: dict[str, int],
           seconds: dict[tuple[str, str], list[float]],
           quality: dict[str, tuple[float, float, float]],
           sweep: list[tuple[str, int, float]], sweep_tokens: int,
           single: dict[str, tuple[float, float]], args: argparse.Namespace) -> str:
    auto = choose_runtime("auto")
    lines = [
        f"Machine: {common.machine()}; shared with other engineers' test runs while measured, "
        "so absolute rates are noisy: compare runtimes within a row (interleaved runs).",
        f"Command: `python benchmarks/encode.py --repeat {args.repeat} --batch-sizes "
        f"{args.batch_sizes} --runtimes {args.runtimes}` (model all-MiniLM-L6-v2, batch "
        f"{DEFAULT_BATCH_SIZE}, "
        f"medians of {args.repeat}).",
        f"`runtime=\"auto\"` picks **{auto}** on this machine.",
        "",
        "| texts | n | tokens/text | runtime | texts/s | tokens/s | vs fp32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, texts in sets.items():
        base = statistics.median(seconds[("fp32", name)])
        for runtime in (r for r in quality if (r, name) in seconds):
            s = statistics.median(seconds[(runtime, name)])
            lines.append(f"| {name} | {len(texts)} | {tokens[name] / len(texts):.0f} | {runtime} "
                         f"| {len(texts) / s:.1f} | {tokens[name] / s:,.0f} | x{base / s:.2f} |")
    if any(runtime.startswith("query graph") for runtime in quality):
        lines += ["", "Query graph rows: the torch-free query encoder, on the short texts only "
                  "(as queries), ranked against the fp32 corpus."]
    lines += ["", "| runtime | cosine to fp32 mean / min | top-10 overlap | passes gate "
              "(>= 0.999, >= 0.98) |", "|---|---|---|---|"]
    for runtime, (mean, low, overlap) in quality.items():
        ok = "yes" if mean >= 0.999 and low >= 0.999 and overlap >= 0.98 else "no"
        lines.append(f"| {runtime} | {mean:.5f} / {low:.5f} | {overlap:.3f} | {ok} |")
    lines += ["", "One query at a time (100 short texts x repeats; torch on one thread, as an "
              "opened index runs it):", "", "| runtime | p50 ms | p99 ms |", "|---|---|---|"]
    lines += [f"| {runtime} | {p50:.1f} | {p99:.1f} |" for runtime, (p50, p99) in single.items()]
    lines += ["", "Batch-size sweep, medium + long texts together in one call:", "",
              "| runtime | batch | tokens/s |", "|---|---|---|"]
    lines += [f"| {runtime} | {batch} | {sweep_tokens / s:,.0f} |" for runtime, batch, s in sweep]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
