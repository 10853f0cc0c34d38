"""Load and fault run of the Slack responder's HTTP mode, all on loopback.

The responder runs as `casematch slack serve --http` in its own process (the real model,
an index of real chat text: DISCO swarm conversations, /work/shared/data), against the
fake Web API of tests/fake_slack_web.py in this process. Two runs:

clean:  N signed `message` events at R/s, plus, halfway, a burst of B simultaneous
        connections mixing new events, slash commands and button clicks.
faults: the same, with the responder sent SIGTERM once and SIGKILL once mid-run and
        restarted each time (as a supervisor would).

This process plays Slack: an event whose delivery failed (connection refused or reset,
or a non-200 answer such as 503 from a full queue) is redelivered with X-Slack-Retry-Num
after 1, 2, 4 ... s (at most 5 s apart), as Slack does. Slash commands and clicks are
not redelivered (Slack does not), so a failed one counts as lost.

Checks: 0 connection errors in the clean run, every event exactly one reply
(chat.postMessage in its thread), every slash command answered (its response_url
called). Reports ack latency (client side, successful deliveries) and reply latency
(first delivery sent -> chat.postMessage recorded by the fake).

    python benchmarks/slack_load.py [--events 1000] [--rate 50] [--burst 200] [--cases 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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


class Responder:
    """`casematch slack serve --http` as a child process, restartable."""

    def __init__(self, index: Path, api: str, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/slack/events"
        self.config = workdir / "casematch.toml"
        self.config.write_text(
            f'[index]\npath = "{index}"\n\n[slack]\nchannels = ["{CHANNEL}"]\n'
            f'api_base_url = "{api}"\nmin_score = 0.0\n', encoding="utf-8")
        self.log = open(workdir / "responder.log", "ab")  # noqa: SIM115 - lives with self
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start and wait for /readyz; returns seconds to ready."""
        started = time.monotonic()
        env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": SECRET,
               "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from casematch.cli import main; main()", "slack", "serve",
             "--config", str(self.config), "--http", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-json"],
            env=env, stdout=self.log, stderr=self.log)
        while not _get(self.url.replace("/slack/events", "/readyz")):
            if self.proc.poll() is not None:
                raise SystemExit(f"the responder exited ({self.proc.returncode}); "
                                 f"see {self.log.name}")
            time.sleep(0.1)
        return time.monotonic() - started

    def stop(self, sig: int) -> float:
        """Send `sig` and wait for the exit; returns seconds to exit."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(120)
        return time.monotonic() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def send(url: str, body: str, headers: dict[str, str], timeout: float = 10.0
         ) -> tuple[int | str, float]:
    """One raw HTTP/1.1 POST on its own connection: (status or error name, seconds)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    data = body.encode()
    host, port = url.split("//")[1].split("/")[0].split(":")
    request = (f"POST /slack/events HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(data)}"
               f"\r\nConnection: close\r\n{head}\r\n").encode() + data
    started = time.perf_counter()
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(request)
            answer = sock.recv(64)
        if not answer:
            return "closed", time.perf_counter() - started
        return int(answer.split(b" ", 2)[1]), time.perf_counter() - started
    except OSError as exc:
        return type(exc).__name__, time.perf_counter() - started


class Slack:
    """The load generator: plays Slack's deliveries and redeliveries."""

    def __init__(self, responder: Responder, fake: Any, queries: list[str], run: str) -> None:
        from fake_slack_web import event_body, signed_headers

        self.responder, self.fake, self.queries, self.run = responder, fake, queries, run
        self._event_body, self._signed = event_body, signed_headers
        self.rng = random.Random(5)
        self.lock = threading.Lock()
        self.first_sent: dict[str, float] = {}
        self.acks: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.commands: list[str] = []
        self.lost_commands = 0
        self.redeliveries = 0

    def event(self, n: int) -> None:
        ts = f"{1800000000 + n}.{self.run}"
        event = {"type": "message", "channel": CHANNEL, "user": "U1", "ts": ts,
                 "text": self.rng.choice(self.queries)}
        body = self._event_body(event, f"Ev{self.run}-{n}")
        with self.lock:
            self.first_sent[ts] = time.monotonic()
        delay, attempt = 1.0, 0
        while True:
            headers = self._signed(SECRET, body, retry=attempt or None)
            status, seconds = send(self.responder.url, body, headers)
            self._record(status, seconds)
            if status == 200:
                return
            attempt += 1
            with self.lock:
                self.redeliveries += 1
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            body = self._event_body(event, f"Ev{self.run}-{n}")  # a fresh signature time

    def command(self, n: int) -> None:
        name = f"respond-{self.run}-{n}"
        fields = {"command": "/casematch", "text": self.rng.choice(self.queries)[:200],
                  "user_id": "U7", "channel_id": CHANNEL, "team_id": "T1",
                  "response_url": self.fake.url + name, "trigger_id": f"{self.run}.{n}",
                  "token": "x"}
        body = urlencode(fields)
        status, seconds = send(self.responder.url, body, self._signed(
            SECRET, body, content_type="application/x-www-form-urlencoded"))
        self._record(status, seconds)
        with self.lock:
            if status == 200:
                self.commands.append(name)
            else:
                self.lost_commands += 1

    def click(self, n: int) -> None:
        payload = {"type": "block_actions", "user": {"id": f"U{n}"}, "team": {"id": "T1"},
                   "channel": {"id": CHANNEL}, "container": {"type": "message"},
                   "message": {"ts": "1", "thread_ts": "1"}, "trigger_id": "1",
                   "api_app_id": "A1", "token": "x",
                   "actions": [{"action_id": "casematch_helpful", "block_id": "feedback-1",
                                "type": "button", "value": json.dumps(
                                    {"q": f"{CHANNEL}:1800000000.{self.run}",
                                     "c": "disco:0:0"})}]}
        body = urlencode({"payload": json.dumps(payload)})
        status, seconds = send(self.responder.url, body, self._signed(
            SECRET, body, content_type="application/x-www-form-urlencoded"))
        self._record(status, seconds)

    def _record(self, status: int | str, seconds: float) -> None:
        with self.lock:
            self.statuses[str(status)] += 1
            if status == 200:
                self.acks.append(seconds)

    def burst(self, first_event: int, size: int) -> list[threading.Thread]:
        """`size` connections at once: half new events, a quarter commands, a quarter clicks."""
        jobs: list[Any] = []
        for i in range(size):
            kind = i % 4
            if kind in (0, 1):
                jobs.append((self.event, first_event + i))
            elif kind == 2:
                jobs.append((self.command, i))
            else:
                jobs.append((self.click, i))
        gate = threading.Barrier(size)

        def run(job: Any) -> None:
            gate.wait()
            job[0](job[1])

        threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
        for thread in threads:
            thread.start()
        return threads


def one_run(args: argparse.Namespace, index: Path, queries: list[str], run: str,
            faults: bool, workdir: Path) -> dict[str, Any]:
    from fake_slack_web import FakeSlackWeb

    state = index / "slack.sqlite"
    for leftover in (state, state.with_suffix(".sqlite-wal"), state.with_suffix(".sqlite-shm")):
        leftover.unlink(missing_ok=True)
    fake = FakeSlackWeb()
    responder = Responder(index, fake.url, workdir)
    ready_s = [round(responder.start(), 1)]
    slack = Slack(responder, fake, queries, run)
    stops: list[dict[str, Any]] = []
    burst_events = (args.burst + 1) // 2
    try:
        started = time.monotonic()
        burst_threads: list[threading.Thread] = []
        faulter = threading.Thread(target=lambda: None)
        if faults:
            def fault_run() -> None:
                # One fault at a time: SIGTERM at 30% of the sending time, then, once the
                # restarted responder has served for 2 s, SIGKILL; restarted both times.
                time.sleep(0.3 * args.events / args.rate)
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    down = responder.stop(sig)
                    up = responder.start()
                    stops.append({"signal": signal.Signals(sig).name,
                                  "exit_s": round(down, 1), "restart_ready_s": round(up, 1)})
                    time.sleep(2.0)

            faulter = threading.Thread(target=fault_run)
            faulter.start()
        with ThreadPoolExecutor(max_workers=64) as pool:
            for n in range(args.events):
                # Open-loop pacing: event n leaves at n / rate, whatever the responses do.
                time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
                pool.submit(slack.event, n)
                if n == args.events // 2 and args.burst:
                    burst_threads = slack.burst(args.events, args.burst)
            for thread in burst_threads:
                thread.join()
        if faults:
            faulter.join()
        sending = time.monotonic() - started
        want = args.events + burst_events
        try:
            fake.wait_for("chat.postMessage", want, timeout=args.drain)
        except AssertionError as exc:
            print(f"warning: {exc}".split("; calls")[0], file=sys.stderr)
        deadline = time.monotonic() + 30
        while (sum(1 for c in fake.calls if c.method.startswith("respond-")) <
               len(slack.commands) and time.monotonic() < deadline):
            time.sleep(0.2)
        time.sleep(2.0)  # bounded: would a duplicate reply still arrive?
        posts = fake.of("chat.postMessage")
        replies = Counter(c.params["thread_ts"] for c in posts)
        latency = [c.at - slack.first_sent[c.params["thread_ts"]] for c in posts
                   if c.params["thread_ts"] in slack.first_sent]
        answered = {c.method for c in fake.calls if c.method.startswith("respond-")}
        errors = {k: v for k, v in slack.statuses.items() if not k.isdigit()}
        ms = 1000.0
        return {
            "run": "faults (SIGTERM once, SIGKILL once, restarted)" if faults else "clean",
            "events": len(slack.first_sent), "rate_per_s": args.rate, "burst": args.burst,
            "send_seconds": round(sending, 1), "responder_ready_s": ready_s, "stops": stops,
            "http_status": {k: v for k, v in slack.statuses.items() if k.isdigit()},
            "connection_errors": errors, "redeliveries": slack.redeliveries,
            "ack_p50_ms": round(common.percentile(slack.acks, 50) * ms, 1),
            "ack_p99_ms": round(common.percentile(slack.acks, 99) * ms, 1),
            "ack_max_ms": round(max(slack.acks) * ms, 1),
            "reply_p50_ms": round(common.percentile(latency, 50) * ms) if latency else None,
            "reply_p99_ms": round(common.percentile(latency, 99) * ms) if latency else None,
            "events_with_exactly_one_reply": sum(1 for ts in slack.first_sent
                                                 if replies[ts] == 1),
            "events_with_more_than_one": sum(1 for ts in slack.first_sent if replies[ts] > 1),
            "events_with_none": sum(1 for ts in slack.first_sent if replies[ts] == 0),
            "slash_commands_acked": len(slack.commands),
            "slash_commands_answered": len(answered & set(slack.commands)),
            "slash_commands_lost_at_ack": slack.lost_commands,
        }
    finally:
        if responder.proc is not None and responder.proc.poll() is None:
            responder.stop(signal.SIGTERM)
        fake.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--burst", type=int, default=200,
                        help="simultaneous connections fired halfway through")
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--drain", type=float, default=300.0,
                        help="seconds to wait for the replies after the last event")
    parser.add_argument("--runs", choices=("clean", "faults", "both"), default="both")
    parser.add_argument("--index", type=Path, default=Path("/tmp/casematch-slack-load-index"))
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is missing (the DISCO swarm chats); nothing was measured")
        return 0
    from fake_slack_web import FakeSlackWeb  # noqa: F401 - fail early if tests/ is absent

    from casematch.index import CaseIndex

    cases, queries = corpus(args.cases)
    if not (args.index / "CURRENT").exists() or len(CaseIndex.open(args.index)) != len(cases):
        print(f"building an index of {len(cases)} cases in {args.index} ...", flush=True)
        started = time.perf_counter()
        CaseIndex.build(cases, args.index)
        print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    workdir = args.index.parent / (args.index.name + "-run")
    workdir.mkdir(exist_ok=True)
    reports = []
    for run in (("clean", "faults") if args.runs == "both" else (args.runs,)):
        report = one_run(args, args.index, queries, "1" if run == "clean" else "2",
                         run == "faults", workdir)
        print(json.dumps(report, indent=2), flush=True)
        reports.append(report)
    ok = all(r["events_with_exactly_one_reply"] == r["events"]
             and r["slash_commands_answered"] == r["slash_commands_acked"] for r in reports)
    ok = ok and all(not r["connection_errors"] and not r["slash_commands_lost_at_ack"]
                    for r in reports if r["run"] == "clean")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
