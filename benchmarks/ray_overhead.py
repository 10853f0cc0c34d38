"""Embedding on Ray (local mode) against in-process embedding, and a paper estimate at scale.

    python benchmarks/ray_overhead.py [--texts 10000] [--workers 2] [--repeat 1]

Texts: short DISCO chat messages from ../shared/data (synthetic short texts where that
folder is absent). Side by side, interleaved per repeat, the same encoder and runtime:

- in-process: `SentenceTransformerEncoder.encode(texts)`, one call, torch on all cores;
- Ray: `RayEncoder.encode(texts)` on a local Ray with `--workers` CPUs, one actor per CPU,
  each loading the model (the actor start and model load are inside the timing, as they
  are for every reindex); `ray.init` is timed apart (a cluster is already running).

Per-worker throughput is measured on the worker's own terms: one process, torch on one
thread, the same texts, model already loaded; in tokens/s too, so that the estimate for
re-embedding 5 million cases uses the token count of real case texts (DISCO conversations
as cases, chunked into model windows), not of chat messages.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import faiss  # noqa: F401  (before torch: they share libgomp, the first one sets threads)

from casematch.encoders import load_encoder

CASES_AT_SCALE = 5_000_000


def short_texts(count: int) -> tuple[list[str], str]:
    if (common.DATA / "swarms" / "disco").is_dir():
        messages = common.disco_messages()
        if len(messages) >= count:
            return messages[:count], "DISCO chat messages (>= 6 words)"
    words = ["printer", "vpn", "login", "disk", "build", "deploy", "timeout", "password",
             "cache", "restart"]
    return ([f"{words[i % 10]} fails after {words[(i * 7) % 10]} on host {i % 97}, ticket {i}"
             for i in range(count)], "synthetic short texts")


def case_tokens(encoder: Any, limit: int = 2000) -> tuple[float, float] | None:
    """(tokens per case, chunks per case) over DISCO conversations taken as cases."""
    if not (common.DATA / "swarms" / "disco").is_dir():
        return None
    tokenizer = encoder._model.tokenizer
    tokens = chunks = cases = 0
    for _stem, _conversation, messages in common._disco_threads(common.DATA):
        text = "\n".join(messages)
        pieces = encoder.chunk(text)
        tokens += sum(len(tokenizer(p, add_special_tokens=True)["input_ids"]) for p in pieces)
        chunks += len(pieces)
        cases += 1
        if cases >= limit:
            break
    return tokens / cases, chunks / cases


def one_thread_rate(encoder: Any, texts: list[str]) -> float:
    """Texts/s of one worker: one process, torch on one thread, model loaded."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encoder.encode(texts[:32])  # warm
        started = time.perf_counter()
        encoder.encode(texts)
        return len(texts) / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--gpu-rate", type=float, default=None,
                        help="Measured texts/s of one GPU worker, for the estimate table.")
    args = parser.parse_args()

    import ray

    from casematch.encoders.ray import RayEncoder

    texts, kind = short_texts(args.texts)
    encoder = load_encoder("default")
    tokenizer = encoder._model.tokenizer
    text_tokens = statistics.mean(len(tokenizer(t)["input_ids"]) for t in texts[:2000])
    encoder.encode(texts[:32])  # the in-process side starts warm, as a loaded CLI would

    started = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    init_s = time.perf_counter() - started
    remote = RayEncoder(encoder, None, workers=args.workers)
    local_s: list[float] = []
    ray_s: list[float] = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        local = encoder.encode(texts)
        local_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        far = remote.encode(texts)
        ray_s.append(time.perf_counter() - started)
        worst = float((local * far).sum(axis=1).min())
    ray.shutdown()
    per_worker = one_thread_rate(encoder, texts[: min(len(texts), 1000)])
    cases = case_tokens(encoder)

    local_med, ray_med = statistics.median(local_s), statistics.median(ray_s)
    lines = [
        f"Texts: {len(texts)} {kind}, {text_tokens:.0f} tokens each on average; runtime "
        f"{encoder.runtime}; {args.workers} Ray workers (one CPU each); "
        f"{args.repeat} repeat(s), medians.",
        "",
        "| | seconds | texts/s | vs in-process |",
        "|---|---|---|---|",
        f"| in-process, one call | {local_med:.1f} | {len(texts) / local_med:.0f} | 1.00x |",
        f"| Ray local mode, encode() incl. actor start + model load | {ray_med:.1f} | "
        f"{len(texts) / ray_med:.0f} | {ray_med / local_med:.2f}x |",
        f"| Ray local mode incl. ray.init ({init_s:.1f} s) | {ray_med + init_s:.1f} | "
        f"{len(texts) / (ray_med + init_s):.0f} | {(ray_med + init_s) / local_med:.2f}x |",
        f"| in-process, torch on one thread (first {min(len(texts), 1000)} texts) | "
        f"{min(len(texts), 1000) / per_worker:.1f} | {per_worker:.0f} | - |",
        "",
        f"Vectors: min cosine Ray vs in-process {worst:.6f}.",
        f"One CPU worker (one process, torch on one thread, model loaded): "
        f"{per_worker:.0f} texts/s = {per_worker * text_tokens:.0f} tokens/s on these texts.",
    ]
    if cases is not None:
        tokens_per_case, chunks_per_case = cases
        seconds_per_case = tokens_per_case / (per_worker * text_tokens)
        lines += [
            "",
            f"Re-embedding {CASES_AT_SCALE:,} cases on paper: a case taken as a DISCO "
            f"conversation is {tokens_per_case:.0f} tokens in {chunks_per_case:.2f} chunks "
            "(first 2,000 conversations); time = cases x tokens per case / (workers x tokens/s "
            "per worker), assuming throughput scales with tokens and workers (no padding or "
            "attention growth beyond the short texts measured; the driver's writer and the "
            "transfer of 1.5 KB of vector per chunk are small next to it).",
            "",
            "| workers | hours |",
            "|---|---|",
        ]
        for workers in (1, 2, 16, 64, 256):
            hours = CASES_AT_SCALE * seconds_per_case / workers / 3600
            lines.append(f"| {workers} CPU (one core each) | {hours:,.1f} |")
        if args.gpu_rate:
            gpu_seconds = CASES_AT_SCALE * chunks_per_case / args.gpu_rate
            for workers in (1, 4, 8):
                lines.append(f"| {workers} GPU ({args.gpu_rate:.0f} chunks/s each, measured) | "
                             f"{gpu_seconds / workers / 3600:,.1f} |")
    lines += ["", f"Python {platform.python_version()}, Ray {ray.__version__}."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
