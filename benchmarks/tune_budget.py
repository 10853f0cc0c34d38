"""`casematch tune` settings and budget: one setting per run, scored on the dev queries.

    python benchmarks/tune_budget.py corpus OUT.jsonl          # the 2,500-case corpus
    python benchmarks/tune_budget.py tune BASE_INDEX WORK NAME '{"max_tokens": 128}'
    python benchmarks/tune_budget.py score INDEX QUERIES OUT.json
    python benchmarks/tune_budget.py compare BASE.json RUN.json [RUN.json ...]
    python benchmarks/tune_budget.py crossval BASE_INDEX QUERIES WORK OUT.json \
        [--folds K] [--split groups|queries] [--options OPTIONS_JSON]

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

`crossval`: `tune --labels` measured without scoring a query on a model that saw it. The
labelled queries are split into K folds; for each fold a copy of BASE_INDEX is tuned with
the other folds' queries as labels (`tune(labels=...)`, which also fits the index's fusion
weight on them), and the fold's own queries are scored on that copy. OUT.json holds every
query's figures in QUERIES' order, as `score` writes them, so `compare` pairs it with the
base and with a tune without labels. `--split groups` (the default) keeps queries that
share a case (relevant or excluded: a duplicate pair, the rephrasings of one FAQ thread) in
one fold, so a test query's cases were never labelled; `--split queries` splits queries
one by one, as a team's votes on earlier questions about the same case would.

Skips (exit 0, with a message) when the data folder is absent.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import common
import quality

BUDGET_CASES = 2500
FOLD_SEED = 17


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


def crossval(base: Path, queries: Path, work: Path, out: Path, folds: int, split: str,
             options: str) -> int:
    from casematch.evaluate import labelled_query
    from casematch.tune import TuneOptions, tune

    rows = [json.loads(line) for line in queries.read_text(encoding="utf-8").splitlines()]
    group = _groups(rows) if split == "groups" else list(range(len(rows)))
    keys = sorted(set(group))
    random.Random(FOLD_SEED).shuffle(keys)
    fold_of = {key: n % folds for n, key in enumerate(keys)}
    rr: dict[str, list[float]] = {}
    recall: dict[str, list[float]] = {}
    position: list[int] = []
    reports = []
    for fold in range(folds):
        test = [n for n, row in enumerate(rows) if fold_of[group[n]] == fold]
        labels = [labelled_query(row) for n, row in enumerate(rows)
                  if fold_of[group[n]] != fold]
        root = work / f"fold{fold}"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(base, root)
        started = time.perf_counter()
        report = tune(root, labels=labels, options=TuneOptions(**json.loads(options)),
                      say=lambda line: print(line, file=sys.stderr, flush=True))
        reports.append(report.to_dict() | {"wall_s": round(time.perf_counter() - started, 1),
                                           "test_queries": len(test)})
        print(f"fold {fold}: {len(labels)} labels, {len(test)} test queries: "
              f"{report.decision}, held-out pairs {report.heldout}, labels "
              f"{report.heldout_labels}, lexical weight {report.lexical_weight}",
              file=sys.stderr, flush=True)
        held = work / f"fold{fold}-test.jsonl"
        quality.write_jsonl(held, [rows[n] for n in test])
        fold_recall: dict[str, list[float]] = {}
        for rule, values in quality.per_query(root, held, fold_recall).items():
            rr.setdefault(rule, []).extend(values)
        for rule, values in fold_recall.items():
            recall.setdefault(rule, []).extend(values)
        position += test
    # Back into QUERIES' order, so the figures pair with `score`'s.
    order = sorted(range(len(position)), key=position.__getitem__)
    result: dict[str, Any] = {"rr": {r: [v[i] for i in order] for r, v in rr.items()},
                              "recall": {r: [v[i] for i in order] for r, v in recall.items()},
                              "folds": reports, "split": split}
    out.write_text(json.dumps(result), encoding="utf-8")
    mean = {rule: round(_mean(values), 4) for rule, values in result["rr"].items()}
    print(f"{out}: MRR {mean}")
    return 0


def _groups(rows: list[dict[str, Any]]) -> list[int]:
    """Each query's group: queries joined by any case they name (union-find over ids)."""
    parent: dict[str, str] = {}

    def find(item: str) -> str:
        while parent.setdefault(item, item) != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    names = [[*row["relevant"], *(row.get("exclude") or ())] for row in rows]
    for ids in names:
        for other in ids[1:]:
            parent[find(other)] = find(ids[0])
    roots = [find(ids[0]) for ids in names]
    number = {root: n for n, root in enumerate(dict.fromkeys(roots))}
    return [number[root] for root in roots]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("corpus", "tune", "score", "compare", "crossval"):
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
    if what == "crossval":
        parser = argparse.ArgumentParser(prog="tune_budget.py crossval")
        parser.add_argument("base", type=Path)
        parser.add_argument("queries", type=Path)
        parser.add_argument("work", type=Path)
        parser.add_argument("out", type=Path)
        parser.add_argument("--options", default="{}", help="TuneOptions fields as JSON")
        parser.add_argument("--folds", type=int, default=2)
        parser.add_argument("--split", choices=("groups", "queries"), default="groups")
        a = parser.parse_args(args)
        return crossval(a.base, a.queries, a.work, a.out, a.folds, a.split, a.options)
    return compare([Path(a) for a in args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
