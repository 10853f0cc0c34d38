"""Peak memory of `casematch index` on a generated Zendesk NDJSON export, and what the
consistency checks cost when an index opens.

Each size runs in its own process (peak RSS is per process): the tickets are generated into
a temporary NDJSON file, then indexed with a cheap deterministic encoder (64 dimensions, no
model), so the figure is the ingestion path itself: reading, cleaning, deduplicating,
storing and the vector file. The real model adds its own weights and 384-dimensional vectors.

    python benchmarks/ingest_memory.py                  # 50,000 and 200,000 tickets
    python benchmarks/ingest_memory.py --sizes 20000    # quicker
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["printer", "scanner", "vpn", "login", "okta", "token", "router", "firmware",
         "invoice", "refund", "password", "sync", "crash", "timeout", "queue", "disk",
         "backup", "laptop", "monitor", "email", "calendar", "license"]


def generate(path: Path, count: int) -> int:
    """Write `count` solved tickets, one per line, each with two comments."""
    with path.open("w", encoding="utf-8") as handle:
        for n in range(count):
            words = [WORDS[(n * 7 + i * 3) % len(WORDS)] for i in range(24)]
            ticket = {"id": n + 1, "subject": f"{words[0]} {words[1]} fails #{n}",
                      "status": "solved", "requester_id": 1,
                      "created_at": "2026-01-01T00:00:00Z",
                      "updated_at": "2026-01-02T00:00:00Z",
                      "comments": [
                          {"id": 2 * n + 1, "author_id": 1, "public": True,
                           "body": " ".join(words) + f" case {n}"},
                          {"id": 2 * n + 2, "author_id": 2, "public": True,
                           "body": f"Restart the {words[2]} and reset {words[3]} ({n})."}]}
            handle.write(json.dumps(ticket) + "\n")
    return path.stat().st_size


def child(count: int) -> None:
    """Generate, index and report (one JSON line) in this process."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    from conftest import FakeEncoder

    from casematch.config import Settings
    from casematch.sync.build import build_index

    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "tickets.ndjson"
        size = generate(source, count)
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        settings = Settings.load(env={}, index_path=Path(scratch) / "idx")
        started = time.perf_counter()
        built = build_index([source], settings, encoder=FakeEncoder())
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"tickets": count, "file_mb": round(size / 2**20, 1),
                          "cases": built.update.added, "seconds": round(seconds, 1),
                          "baseline_mb": round(baseline / 1024), "peak_mb": round(peak / 1024)}))


def rerun(count: int, tree: str, repeats: int) -> None:
    """Seconds of an unchanged re-run of `casematch index`, with the casematch in `tree`."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, tree)
    from conftest import FakeEncoder

    import casematch.index
    from casematch.config import Settings
    from casematch.sync.build import build_index

    # Trees from before build_index took an encoder load it through casematch.index.
    casematch.index.load_encoder = lambda *a, **k: FakeEncoder()  # type: ignore[assignment]
    kwargs: dict[str, object] = {}
    if "encoder" in build_index.__code__.co_varnames:
        kwargs["encoder"] = FakeEncoder()
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "tickets.ndjson"
        generate(source, count)
        settings = Settings.load(env={}, index_path=Path(scratch) / "idx")
        build_index([source], settings, **kwargs)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            built = build_index([source], settings, **kwargs)
            times.append(time.perf_counter() - started)
            assert built.update.unchanged == count and not built.update.changed
        print(json.dumps({"tree": tree, "cases": count,
                          "rerun_s": round(statistics.median(times), 3)}))


def open_cost(count: int, repeats: int) -> dict[str, float]:
    """Median time of Generation.open with and without the new consistency checks."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    from conftest import FakeEncoder

    from casematch.config import Settings
    from casematch.storage import generations
    from casematch.sync.build import build_index

    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "tickets.ndjson"
        generate(source, count)
        root = Path(scratch) / "idx"
        build_index([source], Settings.load(env={}, index_path=root), encoder=FakeEncoder())
        checks = generations._check_consistent

        def timed() -> float:
            started = time.perf_counter()
            generations.Generation.open(root).close()
            return time.perf_counter() - started

        with_checks, without = [], []
        for _ in range(repeats):  # interleaved, so load on the machine hits both alike
            generations._check_consistent = checks
            with_checks.append(timed())
            generations._check_consistent = lambda *a, **k: None
            without.append(timed())
        generations._check_consistent = checks
        return {"cases": count, "open_ms": round(statistics.median(without) * 1000, 1),
                "open_checked_ms": round(statistics.median(with_checks) * 1000, 1),
                "ratio": round(statistics.median(with_checks) / statistics.median(without), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rerun-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--compare-tree",
                        help="Also time an unchanged re-run with the casematch in this folder "
                             "(e.g. an unpacked older commit), side by side with this one.")
    parser.add_argument("--rerun-cases", type=int, default=20_000)
    parser.add_argument("--open-cases", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.rerun_child:
        rerun(int(args.rerun_child[0]), args.rerun_child[1], 3)
        return
    for size in args.sizes:
        done = subprocess.run([sys.executable, __file__, "--child", str(size)], check=True,
                              capture_output=True, text=True)
        print(done.stdout.strip().splitlines()[-1], flush=True)
    print(json.dumps(open_cost(args.open_cases, args.repeats)), flush=True)
    if args.compare_tree:
        for _ in range(2):  # alternated, so load on the machine hits both alike
            for tree in (args.compare_tree, str(ROOT)):
                done = subprocess.run([sys.executable, __file__, "--rerun-child",
                                       str(args.rerun_cases), tree], check=True,
                                      capture_output=True, text=True)
                print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
