"""`casematch tune` settings and budget: one setting per run, scored on the dev queries.

    python benchmarks/tune_budget.py corpus OUT.jsonl          # the 2,500-case corpus
    python benchmarks/tune_budget.py tune BASE_INDEX WORK NAME '{"max_tokens": 128}'
    python benchmarks/tune_budget.py score INDEX QUERIES OUT.json
    python benchmarks/tune_budget.py compare BASE.json RUN.json [RUN.json ...]

`corpus`: the budget corpus of issue 17 — the 1,076 GitBugs SeaMonkey reports and the 63
StackFAQ threads (as `benchmarks/quality.py` writes them) and every ~3rd DISCO Slack
conversation (first message = problem, replies = resolution), 2,500 cases in all; index it
with `casematch index OUT.jsonl --format jsonl --index DIR`.

`tune`: copies BASE_INDEX to WORK/NAME and runs `casematch.tune.tune` on the copy with the
given `TuneOptions` fields (the code `casematch tune` runs); prints the report as JSON. Run
it under `/usr/bin/time -v` for the peak RSS of the tune alone.

`score`: `quality.per_query` on an index (reciprocal rank and recall@10 of every query under
each fusion rule) into OUT.json; `compare` prints MRR and R@10 means and paired bootstrap
intervals of each run against the first file (the base).

Skips (exit 0, with a message) when the data folder is absent.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import common
import quality

BUDGET_CASES = 2500


def corpus(out: Path) -> int:
    common.require_data()
    rows = quality.as_rows(common.gitbugs())[0] + quality.as_rows(common.stackfaq())[0]
    disco = common.disco_cases()
    wanted = BUDGET_CASES - len(rows)
    step = len(disco) / wanted
    for number in range(wanted):
        case = disco[int(number * step)]
        rows.append({"id": case.id, "title": case.title, "problem": case.problem,
                     "resolution": case.resolution, "resolved": True})
    quality.write_jsonl(out, rows)
    print(f"{out}: {len(rows)} cases ({len(rows) - wanted} dev-set cases, {wanted} of "
          f"{len(disco)} DISCO conversations)", file=sys.stderr)
    return 0


def tune_copy(base: Path, work: Path, name: str, options: str) -> int:
    from casematch.tune import TuneOptions, tune

    root = work / name
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(base, root)
    started = time.perf_counter()
    report = tune(root, options=TuneOptions(**json.loads(options)),
                  say=lambda line: print(line, file=sys.stderr, flush=True))
    out = report.to_dict() | {"wall_s": round(time.perf_counter() - started, 1)}
    print(json.dumps(out))
    return 0


def score(index: Path, queries: Path, out: Path) -> int:
    recall: dict[str, list[float]] = {}
    rr = quality.per_query(index, queries, recall)
    out.write_text(json.dumps({"rr": rr, "recall": recall}), encoding="utf-8")
    mean = {rule: round(sum(v) / len(v), 4) for rule, v in rr.items()}
    print(f"{index}: MRR {mean}; R@10 "
          f"{ {rule: round(sum(v) / len(v), 4) for rule, v in recall.items()} }")
    return 0


def compare(files: list[Path]) -> int:
    runs = {f.stem: json.loads(f.read_text(encoding="utf-8")) for f in files}
    base_name = files[0].stem
    base = runs[base_name]
    for name, run in runs.items():
        rr, rec = run["rr"], run["recall"]
        d = quality.paired_interval(rr["default"], rr["dense"])
        line = (f"{name}: default MRR {_mean(rr['default']):.3f} dense {_mean(rr['dense']):.3f}"
                f" | R@10 default {_mean(rec['default']):.3f} dense {_mean(rec['dense']):.3f}"
                f" | default - dense {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]")
        if name != base_name:
            for rule in ("default", "dense"):
                m = quality.paired_interval(rr[rule], base["rr"][rule])
                r = quality.paired_interval(rec[rule], base["recall"][rule])
                line += (f"\n    {rule} - {base_name}: MRR {m[0]:+.3f} [{m[1]:+.3f}, {m[2]:+.3f}]"
                         f", R@10 {r[0]:+.3f} [{r[1]:+.3f}, {r[2]:+.3f}]")
        print(line)
    return 0


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("corpus", "tune", "score", "compare"):
        print(__doc__, file=sys.stderr)
        return 2
    if not (common.DATA / "eval").is_dir():
        print(f"skipped: {common.DATA} is absent; see ../shared/data/README.md",
              file=sys.stderr)
        return 0
    what, args = argv[0], argv[1:]
    if what == "corpus":
        return corpus(Path(args[0]))
    if what == "tune":
        return tune_copy(Path(args[0]), Path(args[1]), args[2], args[3])
    if what == "score":
        return score(Path(args[0]), Path(args[1]), Path(args[2]))
    return compare([Path(a) for a in args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
