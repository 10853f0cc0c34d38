"""Indexing throughput and query latency on real exports (issue: casematch core).

Indexes, in one run, the real OLake Slack export and the StackFAQ dev set written out as
a Slack export (question = thread root, answers = replies, the first answer marked with
a check mark), then times queries (StackFAQ rephrasings) against the combined index.

    python benchmarks/core.py [--shared ../shared] [--repeat 3]

Reads ../shared/data; skips with a message when it is absent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common

from casematch.encoders import load_encoder
from casematch.index import CaseIndex
from casematch.sources import ReadReport, read_source


def stackfaq_as_slack_export(stackfaq: Path, target: Path) -> list[str]:
    """Write StackFAQ threads as a Slack export; returns the usable rephrasings."""
    pairs = json.loads(stackfaq.read_text(encoding="utf-8"))["root"]["qapair"]
    channel = target / "faq-swarm"
    channel.mkdir(parents=True)
    (target / "channels.json").write_text(json.dumps([{"id": "CFAQ", "name": "faq-swarm"}]))
    (target / "users.json").write_text(json.dumps([
        {"id": "UASK", "name": "asker"}, {"id": "UHELP", "name": "helper"}]))
    messages, queries = [], []
    for number, pair in enumerate(pairs):
        ts = f"{1_700_000_000 + number * 1000}.000100"
        answers = pair["answer"]
        messages.append({"type": "message", "user": "UASK", "text": pair["question"], "ts": ts,
                         "thread_ts": ts, "reply_count": len(answers)})
        for offset, answer in enumerate(answers, start=1):
            reply = {"type": "message", "user": "UHELP", "text": answer,
                     "ts": f"{1_700_000_000 + number * 1000 + offset}.000200", "thread_ts": ts,
                     "parent_user_id": "UASK"}
            if offset == 1:
                reply["reactions"] = [{"name": "white_check_mark", "users": ["UASK"], "count": 1}]
            messages.append(reply)
        queries += [q for q in pair["rephr"] if q.strip() and q.strip() != "*"]
    (channel / "2023-11-14.json").write_text(json.dumps(messages))
    return queries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).parents[1] / ".." / "shared")
    parser.add_argument("--repeat", type=int, default=3, help="index builds to take the median of")
    args = parser.parse_args()
    data = args.shared / "data"
    olake = data / "slack-export" / "olake"
    stackfaq = data / "eval" / "stackfaq" / "stackfaq-dev.json"
    if not olake.is_dir() or not stackfaq.is_file():
        print(f"skipped: {olake} or {stackfaq} is missing (../shared/data is not here)")
        return 0

    encoder = load_encoder("default")
    with tempfile.TemporaryDirectory() as tmp:
        faq_export = Path(tmp) / "stackfaq-export"
        queries = stackfaq_as_slack_export(stackfaq, faq_export)
        report = ReadReport()
        cases = [case for source in (olake, faq_export)
                 for case in read_source(source, report=report)]
        resolved = sum(c.resolved for c in cases)
        build_seconds = []
        for attempt in range(args.repeat):
            started = time.perf_counter()
            index, result = CaseIndex.build(cases, Path(tmp) / f"idx{attempt}", encoder=encoder)
            build_seconds.append(time.perf_counter() - started)
        index.search("warm up")
        latencies = []
        for query in queries:
            started = time.perf_counter()
            index.search(query, k=5)
            latencies.append((time.perf_counter() - started) * 1000)
    build = statistics.median(build_seconds)
    print(f"cases read: {report.read} ({resolved} resolved, indexed), chunks embedded: "
          f"{result.embedded}")
    print(f"index build: median {build:.2f} s of {args.repeat} -> "
          f"{resolved / build:.1f} resolved cases/s")
    print(f"query ({len(queries)} StackFAQ rephrasings, k=5): "
          f"p50 {common.percentile(latencies, 50):.1f} ms, "
          f"p99 {common.percentile(latencies, 99):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
