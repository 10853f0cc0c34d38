"""The torch-free query encoder's two graphs, fp32 and int8, side by side in one process.

    python benchmarks/query_graphs.py [--work DIR] [--rounds 8] [--no-write]

1. Quality: GitBugs SeaMonkey and StackFAQ dev indexed once each (`CaseIndex.build`, the
   batch runtime `auto` picks), every dev query searched with each graph (`search(q, 10)`
   with defaults, hybrid; GitBugs leaves the query's own report out, as `casematch eval`):
   MRR@10, Recall@10, the top-10 overlap of the two rankings, and the worst cosine of the
   int8 query vectors to fp32's.
2. Speed: on the SeaMonkey index, 100 DISCO chat messages (as peers.py queries),
   `search(text, 10)` p50 per round, the two graphs alternating round by round, and the
   bare embedding (one text at a time) the same way. Both sessions take the threads and
   spinning the runtime trial chose.

Writes `## Query graphs: fp32 and int8 (issue 18)` of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from casematch.cases import Case, Filters
from casematch.encoders.bundle import OnnxQueryEncoder
from casematch.index import CaseIndex, serve_queries_on_one_thread

SECTION = "Query graphs: fp32 and int8 (issue 18)"
GRAPHS = ("fp32", "int8")


def open_index(dev: common.DevSet, folder: Path) -> CaseIndex:
    if not (folder / "current").exists():
        cases = [Case(id=c.id, title=c.title or c.problem, problem=c.problem,
                      resolution=c.resolution, resolved=True) for c in dev.cases]
        CaseIndex.build(cases, folder)[0].close()
    return CaseIndex.open(folder)


def graphs_of(index: CaseIndex) -> dict[str, OnnxQueryEncoder]:
    encoder = index.warm()
    if not isinstance(encoder, OnnxQueryEncoder):
        raise SystemExit(f"queries run on {type(encoder).__name__} here, not the ONNX "
                         "query encoder")
    graphs = {weights: OnnxQueryEncoder(encoder.folder, encoder.name, threads=encoder.threads,
                                        spinning=encoder.spinning, weights=weights)
              for weights in GRAPHS}
    if graphs["int8"].weights != "int8":
        raise SystemExit(f"{encoder.folder} has no int8 graph (a bundle older than version 3)")
    return graphs


def use(index: CaseIndex, graph: OnnxQueryEncoder) -> None:
    # The opened index searches with the encoder it loaded; swap in the one under test.
    index._encoder = graph


def quality(dev: common.DevSet, index: CaseIndex) -> dict[str, Any]:
    graphs = graphs_of(index)
    ranked: dict[str, list[list[str]]] = {}
    for weights, graph in graphs.items():
        use(index, graph)
        ranked[weights] = [
            [m.case.id for m in index.search(
                query, 10, filters=Filters(exclude=tuple(sorted(exclude))) if exclude else None)]
            for query, exclude in zip(dev.queries, dev.exclude, strict=True)]
    out: dict[str, Any] = {"queries": len(dev.queries)}
    for weights, rows in ranked.items():
        out[f"mrr_{weights}"] = statistics.fmean(
            next((1 / n for n, c in enumerate(row, 1) if c in relevant), 0.0)
            for row, relevant in zip(rows, dev.relevant, strict=True))
        out[f"recall_{weights}"] = common.recall_at(rows, dev)
    out["overlap"] = statistics.fmean(len(set(a) & set(b)) / max(1, len(a))
                                      for a, b in zip(ranked["fp32"], ranked["int8"],
                                                      strict=True))
    vectors = {w: np.vstack([g.encode([q]) for q in dev.queries]) for w, g in graphs.items()}
    out["min_cosine"] = float((vectors["fp32"] * vectors["int8"]).sum(axis=1).min())
    return out


def speed(index: CaseIndex, queries: list[str], rounds: int) -> dict[str, dict[str, list[float]]]:
    graphs = graphs_of(index)
    p50s: dict[str, dict[str, list[float]]] = {w: {"search": [], "embed": []} for w in graphs}
    for number in range(rounds):
        order = GRAPHS if number % 2 == 0 else GRAPHS[::-1]
        for weights in order:
            graph = graphs[weights]
            use(index, graph)
            for text in queries[:5]:
                index.search(text, 10)
            for step, run in (("search", lambda t: index.search(t, 10)),
                              ("embed", lambda t, g=graph: g.encode([t]))):
                times = []
                for text in queries:
                    started = time.perf_counter()
                    run(text)
                    times.append((time.perf_counter() - started) * 1000)
                p50s[weights][step].append(statistics.median(times))
        print(f"round {number}: " + ", ".join(
            f"{w} {p50s[w]['search'][-1]:.2f}" for w in GRAPHS), file=sys.stderr)
    return p50s


def report(scores: dict[str, dict[str, Any]], p50s: dict[str, dict[str, list[float]]],
           session: OnnxQueryEncoder, args: argparse.Namespace, load: tuple[float, float]
           ) -> str:
    lines = [
        f"Machine: {common.machine()}; shared with other jobs (1-minute load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end).",
        f"Command: `python benchmarks/query_graphs.py --rounds {args.rounds}`. Both graphs in "
        f"one process, in the session the runtime trial chose ({session.threads} threads, "
        f"spinning {'on' if session.spinning else 'off'}).",
        "",
        "| dev set | queries | MRR@10 fp32 / int8 | Recall@10 fp32 / int8 | top-10 overlap "
        "| lowest query cosine |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in scores.items():
        lines.append(f"| {name} | {s['queries']} | {s['mrr_fp32']:.4f} / {s['mrr_int8']:.4f} "
                     f"| {s['recall_fp32']:.4f} / {s['recall_int8']:.4f} | {s['overlap']:.3f} "
                     f"| {s['min_cosine']:.6f} |")
    lines += ["", f"The GitBugs SeaMonkey index above, 100 DISCO chat messages, {args.rounds} "
              "rounds alternating the graphs (p50 ms per round; median of rounds):", "",
              "| step | fp32 | int8 | int8 / fp32 | rounds int8 faster |", "|---|---|---|---|---|"]
    for step in ("search", "embed"):
        a, b = p50s["fp32"][step], p50s["int8"][step]
        faster = sum(y < x for x, y in zip(a, b, strict=True))
        lines.append(f"| {'whole search(text, 10)' if step == 'search' else 'embedding alone'} "
                     f"| {statistics.median(a):.2f} | {statistics.median(b):.2f} "
                     f"| {statistics.median(b) / statistics.median(a):.2f} "
                     f"| {faster} of {len(a)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=common.DATA)
    parser.add_argument("--work", type=Path, help="Keep the dev indexes here (reused).")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    common.require_data(args.data)
    load_start = os.getloadavg()[0]
    serve_queries_on_one_thread()
    work = args.work or Path(tempfile.mkdtemp(prefix="casematch-graphs-"))
    scores = {}
    speed_index = None
    for dev in (common.gitbugs(args.data), common.stackfaq(args.data)):
        index = open_index(dev, work / dev.name.split()[0].lower())
        scores[dev.name] = quality(dev, index)
        print(dev.name, scores[dev.name], file=sys.stderr)
        if speed_index is None:
            speed_index = index
        else:
            index.close()
    assert speed_index is not None
    messages = common.disco_messages(args.data)
    queries = messages[::max(1, len(messages) // 100)][:100]
    p50s = speed(speed_index, queries, args.rounds)
    session = graphs_of(speed_index)["fp32"]
    body = report(scores, p50s, session, args, (load_start, os.getloadavg()[0]))
    print(body)
    if not args.no_write:
        common.write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
