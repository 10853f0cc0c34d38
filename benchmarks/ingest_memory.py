"""Peak memory of `casematch index` on a generated Zendesk NDJSON export and a generated
Slack export, and what the consistency checks cost when an index opens.

Each size runs in its own process (peak RSS is per process): the tickets are generated into
a temporary NDJSON file (the Slack export into a temporary folder, by another process), then
indexed with a cheap deterministic encoder (64 dimensions, no model), so the figure is the
ingestion path itself: reading, cleaning, deduplicating, storing and the vector file. The
real model adds its own weights and 384-dimensional vectors.

    python benchmarks/ingest_memory.py                  # 50,000 and 200,000 tickets
    python benchmarks/ingest_memory.py --sizes 20000    # quicker
    python benchmarks/ingest_memory.py --sizes --slack-mb 250 1000 --open-cases 0
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


SENTENCES = [
    "Since this morning the {0} keeps failing with a {1} error for everyone on the third floor.",
    "I tried restarting the {0} twice and clearing the {1} cache, same result.",
    "Anyone else seeing {0} timeouts after the {1} update last night?",
    "Logs show `{0}_{1}_MISMATCH` right before the connection drops.",
    "Could you share the exact {0} version and whether {1} is enabled?",
    "Fixed it: the {0} certificate had expired, renewing it and restarting {1} did the trick.",
    "Thanks, that worked! :tada:",
    "We rolled back the {0} change and {1} is healthy again, see the runbook.",
    "Same here, started around 09:40 UTC, only on the {0} cluster behind {1}.",
]


def _encoder() -> object:
    """The tests' bag-of-words encoder, minus its record of every text it encoded (which
    would count the benchmark's own bookkeeping as the ingestion path's memory)."""
    from conftest import FakeEncoder

    class Encoder(FakeEncoder):
        def encode(self, texts, *, progress=False):
            out = super().encode(texts, progress=progress)
            self.encoded.clear()
            return out

    return Encoder()


def generate_slack(folder: Path, megabytes: float, *, channel_mb: float = 24.0,
                   seed: int = 7) -> dict[str, int]:
    """Write a Slack export of about `megabytes`: channels.json, users.json and one folder
    per channel of day files holding threads (a question, 2-9 replies with today's export
    fields: blocks, user_profile, reactions, reply metadata). A channel grows to about
    `channel_mb` before the next one starts, as a workspace grows by channels."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    users: list[dict[str, Any]] = [
        {"id": f"U{n:07d}", "name": f"user{n}", "real_name": f"User Number{n}",
         "team_id": "T0001",
         "profile": {"display_name": f"user{n}", "real_name": f"User Number{n}",
                     "title": "Support engineer" if n % 5 == 0 else "",
                     "image_72": f"https://avatars.example/{n}.png"}}
        for n in range(400)]
    (folder / "users.json").write_text(json.dumps(users))
    channels: list[dict[str, object]] = []
    total = threads = messages = 0
    target, clock = megabytes * 2**20, 1_600_000_000.0

    def text() -> str:
        return " ".join(rng.choice(SENTENCES).format(rng.choice(WORDS), rng.choice(WORDS))
                        for _ in range(rng.randint(1, 3)))

    def message(ts: float, user: int, body: str, **extra: object) -> dict[str, object]:
        profile = users[user]["profile"]
        return {"client_msg_id": f"{rng.getrandbits(64):016x}-{int(ts)}", "type": "message",
                "text": body, "user": users[user]["id"], "ts": f"{ts:.6f}", "team": "T0001",
                "user_team": "T0001", "source_team": "T0001",
                "user_profile": {"avatar_hash": f"{user:012x}", "image_72": profile["image_72"],
                                 "first_name": "User", "real_name": profile["real_name"],
                                 "display_name": profile["display_name"], "team": "T0001",
                                 "name": users[user]["name"], "is_restricted": False},
                "blocks": [{"type": "rich_text", "block_id": f"{rng.getrandbits(20):05x}",
                            "elements": [{"type": "rich_text_section",
                                          "elements": [{"type": "text", "text": body}]}]}],
                **extra}

    while total < target:
        name = f"support-{len(channels):03d}"
        channels.append({"id": f"C{len(channels):08d}", "name": name, "created": int(clock),
                         "creator": users[0]["id"], "is_archived": False, "is_general": False,
                         "members": [u["id"] for u in users[:50]],
                         "topic": {"value": "Ask here", "creator": "", "last_set": 0},
                         "purpose": {"value": "Support swarm", "creator": "", "last_set": 0}})
        (folder / name).mkdir()
        written = 0
        while written < channel_mb * 2**20 and total + written < target:
            day = time.strftime("%Y-%m-%d", time.gmtime(clock))
            entries: list[dict[str, object]] = []
            for _ in range(rng.randint(15, 40)):
                start, asker = clock + rng.uniform(0, 80_000), rng.randrange(400)
                count = rng.randint(2, 9)
                replies = [(start + 60 * (k + 1) + rng.uniform(0, 50), rng.randrange(400))
                           for k in range(count)]
                root_ts = f"{start:.6f}"
                entries.append(message(
                    start, asker, text(), thread_ts=root_ts, reply_count=count,
                    reply_users_count=len({u for _, u in replies}),
                    latest_reply=f"{replies[-1][0]:.6f}",
                    reply_users=sorted({users[u]["id"] for _, u in replies}),
                    replies=[{"user": users[u]["id"], "ts": f"{t:.6f}"} for t, u in replies],
                    is_locked=False, subscribed=False))
                for n, (ts, user) in enumerate(replies):
                    extra: dict[str, object] = {"thread_ts": root_ts,
                                                "parent_user_id": users[asker]["id"]}
                    if n == count - 1 and rng.random() < 0.7:
                        extra["reactions"] = [{"name": "white_check_mark", "count": 1,
                                               "users": [users[asker]["id"]]}]
                    entries.append(message(ts, user, text(), **extra))
                threads += 1
                messages += 1 + count
            entries.sort(key=lambda m: float(str(m["ts"])))
            data = json.dumps(entries, indent=4)
            (folder / name / f"{day}.json").write_text(data)
            written += len(data)
            clock += 86_400
        total += written
    (folder / "channels.json").write_text(json.dumps(channels))
    return {"bytes": total, "channels": len(channels), "threads": threads,
            "messages": messages}


def child(count: int) -> None:
    """Generate, index and report (one JSON line) in this process."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    from casematch.config import Settings
    from casematch.sync.build import build_index

    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "tickets.ndjson"
        size = generate(source, count)
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        settings = Settings.load(env={}, index_path=Path(scratch) / "idx")
        reading = _peak_before_commit()
        started = time.perf_counter()
        built = build_index([source], settings, encoder=_encoder())  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"tickets": count, "file_mb": round(size / 2**20, 1),
                          "cases": built.update.added, "seconds": round(seconds, 1),
                          "baseline_mb": round(baseline / 1024), "peak_mb": round(peak / 1024),
                          "read_peak_mb": round(reading["kib"] / 1024),
                          "vectors_mb": _vector_mb(built), **_vector_index_mb(built)}))


def _peak_before_commit() -> dict[str, int]:
    """Records the peak RSS (KiB) reached before the writer commits: reading, cleaning,
    deduplicating and storing, without the vector index's conversion and file."""
    from casematch.storage.writer import IndexWriter

    seen = {"kib": 0}
    commit = IndexWriter.commit

    def recorded(self: IndexWriter, **kwargs: object) -> object:
        seen["kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return commit(self, **kwargs)  # type: ignore[arg-type]

    IndexWriter.commit = recorded  # type: ignore[assignment,method-assign]
    return seen


def _vector_mb(built: object) -> float:
    """The size of the vector file the build wrote: FAISS holds it whole in memory while
    it is written (and twice while an exact index becomes an IVF one past 200,000)."""
    from casematch.storage import generations

    folder = Path(built.path) / built.update.generation  # type: ignore[attr-defined]
    return round((folder / generations.VECTORS).stat().st_size / 2**20, 1)


def _vector_index_mb(built: object) -> dict[str, object]:
    """What the written vector index takes in memory (codes, ids and id maps), the part of
    the peak that is inherent: FAISS holds an index in memory while it is built."""
    from casematch.storage import generations, vectors

    folder = Path(built.path) / built.update.generation  # type: ignore[attr-defined]
    index = vectors.read(folder / generations.VECTORS)
    return {"vector_index": vectors.describe(index),
            "vector_index_mb": round(vectors.memory_bytes(index) / 2**20, 1)}


def slack_child(export: str) -> None:
    """Index a generated Slack export and report (one JSON line) in this process."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    from casematch.config import Settings
    from casematch.sync.build import build_index

    with tempfile.TemporaryDirectory() as scratch:
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        settings = Settings.load(env={}, index_path=Path(scratch) / "idx")
        reading = _peak_before_commit()
        started = time.perf_counter()
        built = build_index([export], settings, encoder=_encoder(),  # type: ignore[arg-type]
                            include_unresolved=True)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        size = sum(p.stat().st_size for p in Path(export).rglob("*.json"))
        print(json.dumps({"slack_mb": round(size / 2**20), "cases": built.update.added,
                          "seconds": round(seconds, 1), "baseline_mb": round(baseline / 1024),
                          "peak_mb": round(peak / 1024),
                          "read_peak_mb": round(reading["kib"] / 1024),
                          "vectors_mb": _vector_mb(built), **_vector_index_mb(built)}))


def rerun(count: int, tree: str, repeats: int) -> None:
    """Seconds of an unchanged re-run of `casematch index`, with the casematch in `tree`."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, tree)
    from conftest import FakeEncoder

    import casematch.index
    from casematch.config import Settings
    from casematch.sync.build import build_index

    # Trees from before build_index took an encoder load it through casematch.index.
    casematch.index.load_encoder = lambda *a, **k: FakeEncoder()
    kwargs: dict[str, Any] = {}
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
    parser.add_argument("--sizes", type=int, nargs="*", default=[50_000, 200_000])
    parser.add_argument("--slack-mb", type=float, nargs="*", default=[],
                        help="Also index a generated Slack export of each size (MB).")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--slack-child", help=argparse.SUPPRESS)
    parser.add_argument("--rerun-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--compare-tree",
                        help="Also time an unchanged re-run with the casematch in this folder "
                             "(e.g. an unpacked older commit), side by side with this one.")
    parser.add_argument("--rerun-cases", type=int, default=20_000)
    parser.add_argument("--open-cases", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2,
                        help="Alternated rounds of the side-by-side re-run (each the median "
                             "of 3 runs in a fresh process).")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.slack_child:
        slack_child(args.slack_child)
        return
    if args.rerun_child:
        rerun(int(args.rerun_child[0]), args.rerun_child[1], 3)
        return
    for size in args.sizes:
        done = subprocess.run([sys.executable, __file__, "--child", str(size)], check=True,
                              capture_output=True, text=True)
        print(done.stdout.strip().splitlines()[-1], flush=True)
    for megabytes in args.slack_mb:
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            made = generate_slack(Path(scratch) / "export", megabytes)
            print(json.dumps({"generated_mb": round(made["bytes"] / 2**20), **made,
                              "seconds": round(time.perf_counter() - started, 1)}), flush=True)
            done = subprocess.run([sys.executable, __file__, "--slack-child",
                                   str(Path(scratch) / "export")], check=True,
                                  capture_output=True, text=True)
            print(done.stdout.strip().splitlines()[-1], flush=True)
    if args.open_cases:
        print(json.dumps(open_cost(args.open_cases, args.repeats)), flush=True)
    if args.compare_tree:
        for _ in range(args.rounds):  # alternated, so load on the machine hits both alike
            for tree in (args.compare_tree, str(ROOT)):
                done = subprocess.run([sys.executable, __file__, "--rerun-child",
                                       str(args.rerun_cases), tree], check=True,
                                      capture_output=True, text=True)
                print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
