"""Retrieval quality on the real dev sets: default (hybrid) vs dense-only vs BM25-only.

    python benchmarks/quality.py [--data ../shared/data] [--work DIR] [--no-write]

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, help="Keep converted sets and indexes here.")
    parser.add_argument("--no-write", action="store_true", help="Do not touch RESULTS.md.")
    args = parser.parse_args()
    needed = [args.data / "eval" / "gitbugs-seamonkey" / "SeaMonkey_bugs.csv",
              args.data / "eval" / "stackfaq" / "stackfaq-dev.json"]
    absent = [str(p) for p in needed if not p.is_file()]
    if absent:
        print(f"skipped: dev data not found ({', '.join(absent)}); "
              "see ../shared/data/README.md", file=sys.stderr)
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
