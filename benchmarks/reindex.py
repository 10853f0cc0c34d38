"""Nightly reindex benchmark: a full build vs an incremental run where 1% of cases changed.

Cases come from DISCO (real Slack Q&A conversations in ../shared/data/swarms/disco): each
conversation is cut into windows of consecutive messages, the first message of a window is
the problem and the rest the resolution, until there are --cases of them. They go through the
same `reindex` path as any export (a `jsonl` source), with the real default model.

    python benchmarks/reindex.py [--cases 20000] [--changed 0.01]

Skips with a message when the data folder is absent.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import common

DATA = common.DATA / "swarms" / "disco"
WINDOW = 4


def make_cases(count: int) -> list[dict[str, str]]:
    cases: list[dict[str, str]] = []
    for number, texts in enumerate(common.disco_conversations()):
        for start in range(0, len(texts) - 1, WINDOW - 1):
            window = texts[start:start + WINDOW]
            if len(window) < 2:
                continue
            cases.append({"id": f"disco-{number}-{start}", "problem": window[0],
                          "resolution": "\n".join(window[1:])})
            if len(cases) == count:
                return cases
    return cases


def write(path: Path, cases: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--changed", type=float, default=0.01)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is missing (the DISCO conversations of ../shared/data)")
        return 0
    from casematch.config import Settings
    from casematch.encoders import load_encoder
    from casematch.sync.reindex import reindex

    cases = make_cases(args.cases)
    if len(cases) < args.cases:
        # Said up front: a smaller index than asked for must not pass for the target size.
        print(f"note: DISCO yields only {len(cases)} cases (windows of {WINDOW} messages); "
              f"asked for {args.cases}", file=sys.stderr)
    encoder = load_encoder("default")
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "casematch.toml").write_text(
            '[index]\npath = "idx"\n[[sources]]\ntype = "jsonl"\npath = "cases.jsonl"\n',
            encoding="utf-8")
        settings = Settings.load(root / "casematch.toml", env={})
        write(root / "cases.jsonl", cases)
        full = reindex(settings, encoder=encoder, full=True)

        # 1% changed: half edited (a reply added), a quarter deleted, a quarter new.
        changed = max(4, int(len(cases) * args.changed))
        picked = rng.sample(range(len(cases)), changed)
        edited, deleted = picked[: changed // 2], set(picked[changed // 2: 3 * changed // 4])
        for n in edited:
            cases[n] = {**cases[n], "resolution": cases[n]["resolution"] + "\nthanks, that worked"}
        extra = make_cases(len(cases) + changed // 4)[len(cases):] or [
            {"id": f"new-{n}", "problem": cases[n]["problem"] + " (again)",
             "resolution": cases[n]["resolution"]} for n in range(changed // 4)]
        write(root / "cases.jsonl",
              [c for n, c in enumerate(cases) if n not in deleted] + extra)
        started = time.perf_counter()
        incremental = reindex(settings, encoder=encoder)
        wall = time.perf_counter() - started

    ratio = incremental.seconds / full.seconds
    print(f"cases: {len(cases)} (DISCO windows of {WINDOW} messages), changed: {changed}")
    print(f"full build:  {full.seconds:8.1f} s, embedded {full.update.embedded} texts")
    print(f"incremental: {incremental.seconds:8.1f} s (wall {wall:.1f} s), embedded "
          f"{incremental.update.embedded}; added {incremental.update.added}, updated "
          f"{incremental.update.updated}, deleted {incremental.update.deleted}, unchanged "
          f"{incremental.update.unchanged}")
    print(f"incremental / full: {ratio:.1%} (target <= 5%)")
    return 0 if ratio <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
