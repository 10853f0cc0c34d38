"""At-least-once work, exactly-once replies: crashes, restarts, shutdown, back-pressure."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEncoder
from fake_slack_web import BOT_ID, BOT_USER_ID, FakeSlackWeb, event_body, post, signed_headers
from test_slack_responder import CASES, SECRET, SWARM, root, settle, slack_settings, start

from casematch.index import CaseIndex
from casematch.slack.app import Responders, build_app, web_client
from casematch.slack.state import root_id


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    CaseIndex.build(CASES, tmp_path / "index", encoder=FakeEncoder())
    return tmp_path / "index"


@pytest.fixture
def fake() -> Iterator[FakeSlackWeb]:
    server = FakeSlackWeb()
    yield server
    server.close()


def freeze_searches(built: Responders, *, die: bool = True) -> threading.Event:
    """Searches block (as in a process that stops mid-work) until the event is set; with
    `die`, for good, as a killed process's work never completes. (Raising instead, once
    the test is over, would surface in whichever test runs then.)"""
    release = threading.Event()
    suggester = built.responder.suggester
    suggest = suggester.suggest

    def frozen(text: str, channel: str, **kw: Any) -> Any:
        if die:
            threading.Event().wait()
        release.wait(30)
        return suggest(text, channel, **kw)

    suggester.suggest = frozen  # type: ignore[method-assign]
    return release


def wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_work_claimed_then_crashed_is_redone_once_at_next_start(
    index_dir: Path, fake: FakeSlackWeb
) -> None:
    dying = start(index_dir, fake)
    freeze_searches(dying.built)
    assert dying.event(root("400.1", "vpn disconnects every hour"), "EvCrash")[0] == 200
    # Acked, claimed, root claimed, no reply: the state of a process killed right now.
    wait(lambda: dying.built.state.query(root_id(SWARM, "400.1")) is not None)
    dying.server.shutdown()
    # A retry of the event, to the restarted process, is deduplicated: resume must do it.
    restarted = start(index_dir, fake)
    assert restarted.event(root("400.1", "vpn disconnects every hour"), "EvCrash",
                           retry=1)[0] == 200
    [call] = fake.wait_for("chat.postMessage")
    assert call.params["thread_ts"] == "400.1"
    settle(fake)
    assert len(fake.of("chat.postMessage")) == 1
    wait(lambda: restarted.built.state.pending_work(600) == [])
    assert restarted.built.state.query(root_id(SWARM, "400.1")).reply_ts == call.response["ts"]
    restarted.server.shutdown()


def test_resume_finds_the_reply_already_posted_and_does_not_post_again(
    index_dir: Path, fake: FakeSlackWeb
) -> None:
    slack = slack_settings(index_dir, fake)
    first = build_app(slack, encoder=FakeEncoder(), client=web_client(slack))
    body = json.loads(event_body(root("401.1", "printer jams paper"), "EvPosted"))
    # Died after chat.postMessage returned and before the reply was recorded.
    assert first.state.claim_event("EvPosted", "message", json.dumps(body))
    assert first.state.claim_root(SWARM, "401.1", "printer jams paper")
    fake.replies[(SWARM, "401.1")] = [{"ts": "401.5", "thread_ts": "401.1",
                                       "user": BOT_USER_ID, "bot_id": BOT_ID}]
    again = build_app(slack, encoder=FakeEncoder(), client=web_client(slack))
    wait(lambda: again.state.pending_work(600) == [])
    assert fake.of("chat.postMessage") == []
    assert len(fake.of("conversations.replies")) == 1
    assert again.state.query(root_id(SWARM, "401.1")).reply_ts == "401.5"


def test_old_pending_work_is_dropped_not_answered(index_dir: Path, fake: FakeSlackWeb) -> None:
    slack = slack_settings(index_dir, fake)
    first = build_app(slack, encoder=FakeEncoder(), client=web_client(slack))
    body = json.loads(event_body(root("402.1", "printer jams paper"), "EvOld"))
    first.state.claim_event("EvOld", "message", json.dumps(body))
    assert first.state.pending_work(-1) == []  # older than "-1 s ago": dropped
    build_app(slack, encoder=FakeEncoder(), client=web_client(slack))
    settle(fake)
    assert fake.of("chat.postMessage") == []


def test_sigterm_stops_accepting_and_finishes_inflight_work(
    index_dir: Path, fake: FakeSlackWeb
) -> None:
    slack = slack_settings(index_dir, fake)
    built = build_app(slack, encoder=FakeEncoder(), client=web_client(slack))
    suggest = built.responder.suggester.suggest

    def slow(text: str, channel: str, **kw: Any) -> Any:
        time.sleep(0.8)
        return suggest(text, channel, **kw)

    built.responder.suggester.suggest = slow  # type: ignore[method-assign]
    stop = threading.Event()
    import socket

    with socket.socket() as probe:  # a free port for the server to bind
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serving = threading.Thread(target=built.serve_http, args=("127.0.0.1", port),
                               kwargs={"drain_s": 10, "stop": stop})
    serving.start()
    url = f"http://127.0.0.1:{port}/slack/events"
    wait(lambda: _answers(url))
    body = event_body(root("403.1", "vpn disconnects every hour"), "EvDrain")
    assert post(url, body, signed_headers(SECRET, body))[0] == 200
    wait(lambda: built.work.depth() > 0)
    stop.set()  # what the SIGTERM handler does
    serving.join(15)
    assert not serving.is_alive()
    assert len(fake.of("chat.postMessage")) == 1  # finished before exiting
    assert built.state.pending_work(600) == []
    assert not _answers(url)  # and no longer accepting


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url.replace("/slack/events", "/healthz"), timeout=1):
            return True
    except OSError:
        return False


def test_full_queue_answers_events_503_for_slack_to_redeliver(
    index_dir: Path, fake: FakeSlackWeb
) -> None:
    from casematch.slack.http import HttpServer

    slack = slack_settings(index_dir, fake)
    built = build_app(slack, encoder=FakeEncoder(), client=web_client(slack), workers=1,
                      queue_size=2)
    release = freeze_searches(built, die=False)
    server = HttpServer(built.gate()).start()
    try:
        statuses = []
        for n in range(3):
            body = event_body(root(f"404.{n + 1}", "vpn disconnects"), f"EvFull{n}")
            statuses.append(post(server.url, body, signed_headers(SECRET, body))[0])
            wait(lambda n=n: built.work.depth() == n + 1)
        assert statuses == [200, 200, 200] and built.work.full()
        body = event_body(root("404.9", "vpn disconnects"), "EvFull9")
        assert post(server.url, body, signed_headers(SECRET, body))[0] == 503
        # Refused before the claim: Slack's redelivery will be taken as new.
        assert built.state.claim_event("EvFull9")
    finally:
        release.set()
        server.shutdown()


def test_server_errors_from_post_message_are_retried(index_dir: Path,
                                                     fake: FakeSlackWeb) -> None:
    harness = start(index_dir, fake)
    fake.server_errors["chat.postMessage"] = [500, 503]
    harness.event(root("405.1", "printer jams paper"), "Ev500")
    [call] = fake.wait_for("chat.postMessage", timeout=15)
    assert call.params["thread_ts"] == "405.1"
    assert len(fake.of("chat.postMessage:500")) == 1
    assert len(fake.of("chat.postMessage:503")) == 1
    harness.server.shutdown()


def test_a_resumed_backlog_larger_than_the_queue_is_fed_in_whole() -> None:
    from casematch.slack.work import WorkQueue

    work = WorkQueue(workers=1, maxsize=2)
    gate, done = threading.Event(), []
    work.submit(lambda: gate.wait(10))
    fed = [work.submit_when_room(lambda n=n: done.append(n)) for n in range(2)]

    feeder = threading.Thread(target=lambda: fed.extend(
        work.submit_when_room(lambda n=n: done.append(n)) for n in range(2, 10)))
    feeder.start()
    time.sleep(0.2)
    assert work.depth() <= 3  # waits for room instead of overflowing
    gate.set()
    feeder.join(10)
    wait(lambda: len(done) == 10)
    assert all(fed) and sorted(done) == list(range(10))


def test_an_acked_event_is_already_recorded_as_pending(index_dir: Path,
                                                       fake: FakeSlackWeb) -> None:
    """A crash right after the ack must find the work on disk: the claim and the pending
    row are written before Bolt answers, not on a listener thread after it."""
    harness = start(index_dir, fake)
    release = freeze_searches(harness.built, die=False)
    try:
        for n in range(20):
            assert harness.event(root(f"406.{n + 1}", "printer jams"), f"EvAck{n}")[0] == 200
            # No waiting: at the moment of the 200, the event is claimed and pending.
            assert not harness.built.state.claim_event(f"EvAck{n}")
            assert f"EvAck{n}" in {key for key, _, _ in harness.built.state.pending_work(600)}
    finally:
        release.set()
        # Let the queued replies finish while the fake Web API is still up.
        wait(lambda: harness.built.state.pending_work(600) == [], timeout=30)
        harness.server.shutdown()
