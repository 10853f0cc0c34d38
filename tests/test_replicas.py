"""Two responder processes sharing one PostgreSQL state (`[slack] state_url`).

Signed events go alternately to both, each also redelivered to the other one as a Slack
retry or a twin delivery would be: every root gets exactly one reply. Then one replica is
killed with work acked but unfinished, and the other takes that work over after the
grace period. Skipped, saying why, where psycopg or the PostgreSQL binaries are absent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FakeEncoder, make_case
from fake_slack_web import FakeSlackWeb, event_body, post, signed_headers

from casematch.index import CaseIndex
from casematch.slack.state import open_state
from tests.postgres import fresh_database, postgres_server

__all__ = ["postgres_server"]  # a fixture, used through pytest

REPO = Path(__file__).resolve().parents[1]
SECRET = "test-signing-secret"
SWARM = "CSWARM"
GRACE_S = 1.5

# One responder process: serves over HTTP until killed; writes its URL to argv[4].
# argv[5] > 0 makes every search that slow, so that work is still queued when it dies.
REPLICA = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from conftest import FakeEncoder
    from casematch.slack.app import build_app, web_client
    from casematch.slack.http import HttpServer
    from casematch.slack.settings import SlackSettings

    tests, index, state_url, api, url_file, slow = sys.argv[1:7]
    slack = SlackSettings(index_path=Path(index), channels=("CSWARM",), api_base_url=api,
                          min_score=0.0, bot_token="xoxb-test",
                          signing_secret="test-signing-secret", state_url=state_url)
    built = build_app(slack, encoder=FakeEncoder(), client=web_client(slack), workers=2,
                      takeover_s=float(sys.argv[7]))
    if float(slow) > 0:
        suggest = built.responder.suggester.suggest

        def slow_suggest(*args, **kwargs):
            time.sleep(float(slow))
            return suggest(*args, **kwargs)

        built.responder.suggester.suggest = slow_suggest
    server = HttpServer(built.gate()).start()
    Path(url_file).with_suffix(".tmp").write_text(server.url)
    Path(url_file).with_suffix(".tmp").rename(url_file)
    while True:
        time.sleep(1)
""")


@pytest.fixture
def fake() -> Iterator[FakeSlackWeb]:
    server = FakeSlackWeb()
    yield server
    server.close()


@pytest.fixture
def database(postgres_server: str) -> str:
    url = fresh_database(postgres_server)
    open_state(url)  # the schema exists before either replica starts
    return url


def start_replica(tmp_path: Path, name: str, database: str, fake: FakeSlackWeb,
                  slow_s: float = 0.0) -> tuple[subprocess.Popen[str], str]:
    url_file = tmp_path / f"{name}.url"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with open(tmp_path / f"{name}.log", "w") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, "-c", REPLICA, str(REPO / "tests"), str(tmp_path / "index"),
             database, fake.url, str(url_file), str(slow_s), str(GRACE_S)],
            env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    deadline = time.monotonic() + 60
    while not url_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"replica {name} did not start: "
                                 + (tmp_path / f"{name}.log").read_text()[-3000:])
        time.sleep(0.05)
    return proc, url_file.read_text()


def send(url: str, ts: str, event_id: str) -> int:
    event = {"type": "message", "channel": SWARM, "user": "U1", "ts": ts,
             "channel_type": "channel", "text": f"vpn disconnects every hour, case {ts}"}
    body = event_body(event, event_id)
    status, _, _ = post(url, body, signed_headers(SECRET, body))
    return status


def replies_per_root(fake: FakeSlackWeb) -> Counter[str]:
    return Counter(str(c.params["thread_ts"]) for c in fake.of("chat.postMessage"))


def wait_for_replies(fake: FakeSlackWeb, roots: list[str], timeout: float) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counted = replies_per_root(fake)
        if all(counted[ts] for ts in roots):
            time.sleep(0.5)  # a second reply, if there were one, would come now
            return replies_per_root(fake)
        time.sleep(0.05)
    return replies_per_root(fake)


def test_two_replicas_reply_once_and_one_takes_over_the_work_of_a_dead_one(
        tmp_path: Path, database: str, fake: FakeSlackWeb) -> None:
    CaseIndex.build([make_case("slack:CSWARM:1.1", "vpn disconnects every hour on macos",
                               "reinstall the vpn client profile", source="slack",
                               channel="swarm")], tmp_path / "index", encoder=FakeEncoder())
    survivor, survivor_url = start_replica(tmp_path, "a", database, fake)
    victim, victim_url = start_replica(tmp_path, "b", database, fake, slow_s=0.3)
    try:
        # Phase 1: 500 signed events, alternately to each replica: 250 roots, each one
        # redelivered to the other (a Slack retry landing on the twin): one reply per root.
        urls = [survivor_url, victim_url]
        roots = [f"{2000 + n}.000100" for n in range(250)]
        for n, ts in enumerate(roots):
            assert send(urls[n % 2], ts, f"Ev{n}") == 200
            assert send(urls[(n + 1) % 2], ts, f"Ev{n}") == 200
        counted = wait_for_replies(fake, roots, timeout=180)
        assert {ts: counted[ts] for ts in roots} == dict.fromkeys(roots, 1)

        # Phase 2: the slow replica acks 12 events (recorded as pending) and is killed
        # before it can answer most of them; the survivor answers them all, once.
        later = [f"{3000 + n}.000100" for n in range(12)]
        for n, ts in enumerate(later):
            assert send(victim_url, ts, f"Late{n}") == 200
        time.sleep(0.4)  # mid-run: a reply or two out, the rest queued
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        answered_before = sum(replies_per_root(fake)[ts] for ts in later)
        assert answered_before < len(later), "the replica finished before it was killed"
        counted = wait_for_replies(fake, later, timeout=30 + GRACE_S)
        assert {ts: counted[ts] for ts in later} == dict.fromkeys(later, 1)
        assert open_state(database).pending_work(600) == []  # all done, none left over
    finally:
        for proc in (survivor, victim):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
