"""Load run of the Slack responder's HTTP mode, all on loopback.

1,000 signed `message` events at 50 per second against `POST /slack/events`, served from an
index of 10,000 cases of real chat text (DISCO swarm conversations, /work/shared/data).
Reports ack latency (client side) and time to reply (request sent -> `chat.postMessage`
recorded by the fake Web API), and checks every event got exactly one reply.

    python benchmarks/slack_load.py [--events 1000] [--rate 50] [--cases 10000]

The responder runs in its own process (as in production), the fake Web API and the load
generator in this one. The index is built once under /tmp and reused on later runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import re
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import common  # noqa: E402 - benchmarks/ is on sys.path when run as a script

DATA = common.DATA / "swarms" / "disco"
SECRET = "bench-secret"
CHANNEL = "CBENCH"


def corpus(count: int) -> tuple[list[Any], list[str]]:
    """`count` cases and a pool of query texts. Conversations give ~5,900 cases; long ones
    are also cut into later windows (a new question inside the same swarm) to reach count."""
    from casematch.cases import Case

    convs = common.disco_conversations()
    cases: list[Case] = []
    queries: list[str] = []
    windows = [(n, 0) for n in range(len(convs))]
    windows += [(n, start) for n, texts in enumerate(convs)
                for start in range(4, len(texts) - 1, 4)]
    for n, start in windows[:count]:
        texts = convs[n][start:start + 6]
        cases.append(Case(id=f"disco:{n}:{start}", problem=texts[0], resolution=texts[-1],
                          resolved=True, source="slack", channel="general"))
        queries.append(" ".join(re.sub(r"\s+", " ", t) for t in texts[:2])[:400])
    return cases, queries


def serve(index: str, api: str, port_queue: Any, workers: int) -> None:
    """The responder process: HTTP mode on an ephemeral loopback port."""
    import logging

    from casematch.slack.app import build_app
    from casematch.slack.http import start_http
    from casematch.slack.settings import SlackSettings

    logging.basicConfig(level=logging.WARNING)
    slack = SlackSettings(index_path=Path(index), channels=(CHANNEL,), api_base_url=api,
                          min_score=0.0, bot_token="xoxb-bench", signing_secret=SECRET)
    built = build_app(slack, workers=workers)
    built.index.get().search("warm up the model")
    server = start_http(built.app)
    port_queue.put(server.server_address[1])
    while True:
        time.sleep(3600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4, help="responder search threads")
    parser.add_argument("--drain", type=float, default=300.0,
                        help="seconds to wait for the replies after the last event")
    parser.add_argument("--index", type=Path, default=Path("/tmp/casematch-slack-load-index"))
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is missing (the DISCO swarm chats); nothing was measured")
        return 0
    from fake_slack_web import FakeSlackWeb, event_body, post, signed_headers

    from casematch.index import CaseIndex

    cases, queries = corpus(args.cases)
    state = args.index / "slack.sqlite"
    if not (args.index / "CURRENT").exists() or len(CaseIndex.open(args.index)) != len(cases):
        print(f"building an index of {len(cases)} cases in {args.index} ...", flush=True)
        started = time.perf_counter()
        # In steps of 2,000: each step is a committed generation whose vectors the next
        # reuses, so an interrupted build resumes where it stopped.
        for end in range(2000, len(cases) + 2000, 2000):
            CaseIndex.build(cases[:end], args.index)
            print(f"  {min(end, len(cases))} cases embedded", flush=True)
        print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    for leftover in (state, state.with_suffix(".sqlite-wal"), state.with_suffix(".sqlite-shm")):
        leftover.unlink(missing_ok=True)  # a fresh dedupe table: event ids repeat across runs

    fake = FakeSlackWeb()
    ports: Any = multiprocessing.get_context("spawn").Queue()
    child = multiprocessing.get_context("spawn").Process(
        target=serve, args=(str(args.index), fake.url, ports, args.workers), daemon=True)
    child.start()
    try:
        port = ports.get(timeout=300)
        url = f"http://127.0.0.1:{port}/slack/events"
        rng = random.Random(5)
        sent: dict[str, float] = {}
        acks: list[float] = []
        statuses: Counter[int] = Counter()

        def fire(n: int) -> None:
            ts = f"{1800000000 + n}.000001"
            event = {"type": "message", "channel": CHANNEL, "user": "U1", "ts": ts,
                     "text": rng.choice(queries)}
            body = event_body(event, f"EvLoad{n}")
            sent[ts] = time.monotonic()
            status, _, seconds = post(url, body, signed_headers(SECRET, body))
            statuses[status] += 1
            acks.append(seconds)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=32) as pool:
            for n in range(args.events):
                # Open-loop pacing: event n leaves at n / rate, whatever the responses do.
                time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
                pool.submit(fire, n)
        sending = time.monotonic() - started
        try:
            fake.wait_for("chat.postMessage", args.events, timeout=args.drain)
        except AssertionError as exc:
            print(f"warning: {exc}".split("; calls")[0])
        time.sleep(1.0)  # bounded: would a duplicate reply still arrive?
        replies = Counter(c.params["thread_ts"] for c in fake.of("chat.postMessage"))
        latency = [c.at - sent[c.params["thread_ts"]] for c in fake.of("chat.postMessage")]
        report = {
            "events": args.events, "rate_per_s": args.rate, "cases": len(cases),
            "http_status": dict(statuses),
            "ack_p50_ms": round(common.percentile(acks, 50) * 1000, 1),
            "ack_p99_ms": round(common.percentile(acks, 99) * 1000, 1),
            "reply_p50_ms": round(common.percentile(latency, 50) * 1000, 1) if latency else None,
            "reply_p99_ms": round(common.percentile(latency, 99) * 1000, 1) if latency else None,
            "events_with_exactly_one_reply": sum(1 for ts in sent if replies[ts] == 1),
            "events_with_more_than_one": sum(1 for ts in sent if replies[ts] > 1),
            "events_with_none": sum(1 for ts in sent if replies[ts] == 0),
        }
        report["send_seconds"] = round(sending, 1)
        print(json.dumps(report, indent=2))
        return 0 if report["events_with_exactly_one_reply"] == args.events else 1
    finally:
        child.terminate()
        child.join(10)
        fake.close()


if __name__ == "__main__":
    sys.exit(main())
