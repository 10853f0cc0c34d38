"""Retrieval quality on the real dev sets: default (hybrid) vs dense-only vs BM25-only.

    python benchmarks/quality.py [--data ../shared/data] [--work DIR] [--no-write]
    python benchmarks/quality.py --tune [--work DIR] [--no-write]

`--tune` measures issue 17 instead: every fusion rule (dense, BM25, the old fixed weight,
the default) before and after `casematch tune`, with paired bootstrap intervals, and the
tune's time and peak memory; it writes `## Tuning and fusion (issue 17)`.

Converts the labelled sets in `<data>/eval` into case JSONL + query JSONL, then runs the
real command line: `casematch index` once per set and `casematch eval --json` once per
mode, so the baselines go through exactly the code path of the default. Writes the table
and the command into the `## Retrieval quality` section of benchmarks/RESULTS.md.
Skips (exit 0, with a message) when the data folder is absent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
SECTION = "## Retrieval quality"
MODES = ("hybrid", "dense", "lexical")
COMMAND = "python benchmarks/quality.py"


def as_rows(dev: common.DevSet) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """A dev set as case JSONL rows and query JSONL rows, the files the CLI reads."""
    cases: list[dict[str, object]] = [
        {"id": c.id, "title": c.title or c.problem, "problem": c.problem,
         "resolution": c.resolution, "resolved": True} for c in dev.cases]
    queries: list[dict[str, object]] = [
        {"query": q, "relevant": sorted(r), **({"exclude": sorted(e)} if e else {})}
        for q, r, e in zip(dev.queries, dev.relevant, dev.exclude, strict=True)]
    return cases, queries


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")


def casematch(*args: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-m", "casematch", *args], check=True,
                         capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout)


def run(data: Path, work: Path) -> list[tuple[str, str, dict[str, object]]]:
    sets = [common.gitbugs(data), common.stackfaq(data)]
    rows = []
    for number, dev in enumerate(sets):
        folder = work / f"set{number}"
        folder.mkdir(parents=True, exist_ok=True)
        cases, queries = as_rows(dev)
        write_jsonl(folder / "cases.jsonl", cases)
        write_jsonl(folder / "queries.jsonl", queries)
        index = folder / "index"
        started = time.perf_counter()
        casematch("index", str(folder / "cases.jsonl"), "--format", "jsonl",
                  "--index", str(index), "--json")
        print(f"{dev.name}: indexed {len(cases)} cases in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        for mode in MODES:
            report = casematch("eval", str(folder / "queries.jsonl"), "--index", str(index),
                               "--mode", mode, "--no-collapse", "--json")
            print(f"  {mode}: {report}", file=sys.stderr)
            rows.append((dev.name, mode, report))
    return rows


def table(rows: list[tuple[str, str, dict[str, object]]]) -> str:
    label = {"hybrid": "**default (hybrid)**", "dense": "dense only", "lexical": "BM25 only"}
    lines = ["| set | mode | queries | R@1 | R@5 | R@10 | MRR | nDCG@10 | "
             "threshold for P@1 ≥ 0.8 (coverage) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, mode, r in rows:
        cal = r.get("calibration") or {}
        assert isinstance(cal, dict)
        threshold = "—" if cal.get("threshold") is None else (
            f"{cal['threshold']:.3f} ({cal['coverage']:.0%})")
        lines.append(
            f"| {name} | {label[mode]} | {r['queries']} | {r['recall@1']:.3f} | "
            f"{r['recall@5']:.3f} | {r['recall@10']:.3f} | {r['mrr']:.3f} | "
            f"{r['ndcg@10']:.3f} | {threshold} |")
    return "\n".join(lines)


TUNE_SECTION = "Tuning and fusion (issue 17)"
RULES = ("default", "dense", "lexical", "fixed 0.3")


def per_query(index_dir: Path, queries: Path,
              recall: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Reciprocal rank @10 of every query under each rule, from one candidate pass
    (and, into `recall` when given, each query's share of relevant cases in the top 10:
    `casematch eval`'s recall@10).

    The same `gather` and `fuse` as `casematch eval --no-collapse` (collapse off), so the
    rules differ only in how the two scores are combined: differences are paired.
    """
    from casematch.cases import Filters
    from casematch.index import CaseIndex
    from casematch.search import SearchOptions
    from casematch.search.fusion import fuse, reciprocal_rank
    from casematch.search.retrieve import gather

    rows = [json.loads(line) for line in queries.read_text(encoding="utf-8").splitlines()]
    out: dict[str, list[float]] = {rule: [] for rule in RULES}
    with CaseIndex.open(index_dir) as index:
        ids = {rowid: case_id for case_id, (rowid, _d) in index.storage.store.hashes().items()}
        options = SearchOptions(collapse_above=None)
        weight = index.fitted_lexical_weight
        for row in rows:
            excluded = set(row.get("exclude") or ())
            # Left out inside the search, as `casematch eval` does.
            gathered = gather(index.storage, index.encoder, row["query"], options.candidates,
                              Filters(exclude=tuple(excluded)), options)
            found = gathered.candidates
            gold = {r for r in found if ids[r] in set(row["relevant"])}
            wanted = len(set(row["relevant"]) - excluded)
            for rule, mode, w in (("default", "hybrid", weight), ("dense", "dense", None),
                                  ("lexical", "lexical", None), ("fixed 0.3", "hybrid", 0.3)):
                scores = fuse(found, mode, w, query_terms=gathered.query_terms)
                out[rule].append(reciprocal_rank(scores, gold))
                if recall is not None:
                    top = sorted(scores, key=lambda r: -scores[r])[:10]
                    recall.setdefault(rule, []).append(
                        len(gold.intersection(top)) / wanted if wanted else 0.0)
    return out


def paired_interval(a: list[float], b: list[float], rounds: int = 5000,
                    seed: int = 17) -> tuple[float, float, float]:
    """Mean of a - b and its 95% paired bootstrap interval."""
    import numpy as np

    diff = np.asarray(a) - np.asarray(b)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (rounds, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def run_tune(data: Path, work: Path, reuse: bool = False) -> str:
    import resource
    import shutil

    lines = ["| set | model | default MRR | dense MRR | BM25 MRR | fixed 0.3 MRR | default hit@10 "
             "| default - max(dense, BM25) [95% CI] | default - fixed 0.3 [95% CI] |",
             "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for number, dev in enumerate([common.gitbugs(data), common.stackfaq(data)]):
        folder = work / f"set{number}"
        folder.mkdir(parents=True, exist_ok=True)
        cases, queries = as_rows(dev)
        write_jsonl(folder / "cases.jsonl", cases)
        write_jsonl(folder / "queries.jsonl", queries)
        index = folder / "index"
        if not (index / "CURRENT").exists():
            casematch("index", str(folder / "cases.jsonl"), "--format", "jsonl",
                      "--index", str(index), "--json")
        tuned = folder / "tuned"
        if reuse and (tuned / "tuning.json").is_file():
            # A tune already run into --work (e.g. in the background on a loaded machine).
            report = json.loads((tuned / "tuning.json").read_text(encoding="utf-8"))["runs"][-1]
            seconds, peak = float(report["seconds"]), float(report["peak_rss_mb"])
        else:
            shutil.rmtree(tuned, ignore_errors=True)
            shutil.copytree(index, tuned)
            started = time.perf_counter()
            report = casematch("tune", "--index", str(tuned), "--json")
            seconds = time.perf_counter() - started
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        held = report["heldout"]
        assert isinstance(held, dict)
        notes.append(f"- {dev.name}: `casematch tune` on {len(cases)} cases: "
                     f"{report['pairs_train']} training pairs, {report['steps']} steps, "
                     f"{seconds:.0f} s wall in all (training {report['train_seconds']} s), peak "
                     f"RSS {peak:.0f} MB (largest child so far); held-out MRR base "
                     f"{held['base']:.3f} → tuned {held['tuned']:.3f}: **{report['decision']}**")
        for label, where in (("base", index), ("after tune", tuned)):
            rr = per_query(where, folder / "queries.jsonl")
            mean = {rule: sum(v) / len(v) for rule, v in rr.items()}
            best = "dense" if mean["dense"] >= mean["lexical"] else "lexical"
            vs_best = paired_interval(rr["default"], rr[best])
            vs_fixed = paired_interval(rr["default"], rr["fixed 0.3"])
            r10 = sum(1 for x in rr["default"] if x > 0) / len(rr["default"])
            lines.append(
                f"| {dev.name} ({len(rr['default'])} q.) | {label} | **{mean['default']:.3f}** "
                f"| {mean['dense']:.3f} | {mean['lexical']:.3f} | {mean['fixed 0.3']:.3f} "
                f"| {r10:.3f} | {vs_best[0]:+.3f} [{vs_best[1]:+.3f}, {vs_best[2]:+.3f}] "
                f"| {vs_fixed[0]:+.3f} [{vs_fixed[1]:+.3f}, {vs_fixed[2]:+.3f}] |")
            print(lines[-1], file=sys.stderr)
    return "\n".join(lines) + "\n\n" + "\n".join(notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, help="Keep converted sets and indexes here.")
    parser.add_argument("--no-write", action="store_true", help="Do not touch RESULTS.md.")
    parser.add_argument("--reuse", action="store_true",
                        help="With --tune: reuse indexes and tunes already in --work.")
    parser.add_argument("--tune", action="store_true",
                        help="Measure fusion rules before and after `casematch tune`.")
    args = parser.parse_args()
    needed = [args.data / "eval" / "gitbugs-seamonkey" / "SeaMonkey_bugs.csv",
              args.data / "eval" / "stackfaq" / "stackfaq-dev.json"]
    absent = [str(p) for p in needed if not p.is_file()]
    if absent:
        print(f"skipped: dev data not found ({', '.join(absent)}); "
              "see ../shared/data/README.md", file=sys.stderr)
        return 0
    if args.tune:
        with tempfile.TemporaryDirectory() as tmp:
            body = run_tune(args.data, args.work or Path(tmp), reuse=args.reuse)
        print(body)
        if not args.no_write:
            common.write_section(TUNE_SECTION, f"Measured with `{COMMAND} --tune` on "
                                 f"{common.machine()} (shared, loaded).\n\n{body}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args.data, args.work or Path(tmp))
    result = table(rows)
    print(result)
    if not args.no_write:
        body = RESULTS_TEXT.format(command=COMMAND, table=result)
        common.write_section(SECTION.removeprefix("## "), body)
    return 0


RESULTS_TEXT = """\
Measured with `{command}` (dev sets from `../shared/data/eval`, model all-MiniLM-L6-v2).
Every row is `casematch eval QUERIES --index DIR --mode MODE --no-collapse --json` on the
same index. Collapse is off here because GitBugs' gold answers *are* near-identical reports
of one incident: collapse would fold them into one result, which is the product behaviour
but hides them from a per-id metric.

{table}
"""

if __name__ == "__main__":
    raise SystemExit(main())
