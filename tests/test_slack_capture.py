"""Live capture: a ✅ reaction puts its thread in the index; the next case can find it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_case
from fake_slack_web import FakeSlackWeb, event_body, post, signed_headers
from filelock import FileLock

from casematch.index import CaseIndex
from casematch.slack.app import build_app, web_client
from casematch.slack.http import HttpServer
from casematch.slack.settings import SlackSettings

SECRET = "capture-secret"
SWARM = "CSWARM"

CASES = [
    make_case("slack:CSWARM:100.1", "VPN drops every hour on my MacBook",
              "Reinstall the VPN client profile from self service.", source="slack"),
    make_case("slack:CSWARM:100.2", "The printer on floor three keeps jamming",
              "Replace the fuser unit.", source="slack"),
]
THREAD = [
    {"type": "message", "user": "U1", "ts": "300.1", "thread_ts": "300.1", "reply_count": 2,
     "text": "Outlook crashes every time I open a calendar invite attachment"},
    {"type": "message", "user": "U2", "ts": "300.2", "thread_ts": "300.1",
     "parent_user_id": "U1",
     "text": "Disable the Teams meeting add-in in Outlook, then restart Outlook.",
     "reactions": [{"name": "white_check_mark", "users": ["U1"], "count": 1}]},
    {"type": "message", "user": "U1", "ts": "300.3", "thread_ts": "300.1",
     "parent_user_id": "U1", "text": "that fixed it, thanks!"},
]


def wait_until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.02
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


@pytest.fixture
def fake() -> Iterator[FakeSlackWeb]:
    server = FakeSlackWeb()
    yield server
    server.close()


def send(url: str, event: dict[str, Any], event_id: str) -> int:
    body = event_body(event, event_id)
    return post(url, body, signed_headers(SECRET, body))[0]


def reaction(ts: str, channel: str = SWARM) -> dict[str, Any]:
    return {"type": "reaction_added", "user": "U1", "reaction": "white_check_mark",
            "item": {"type": "message", "channel": channel, "ts": ts}, "item_user": "U2",
            "event_ts": "400.1"}


@pytest.mark.model
def test_reaction_makes_thread_findable_by_next_case(
    tmp_path: Path, fake: FakeSlackWeb, real_encoder: Any
) -> None:
    root = tmp_path / "index"
    CaseIndex.build(CASES, root, encoder=real_encoder)
    slack = SlackSettings(index_path=root, channels=(SWARM,), api_base_url=fake.url,
                          min_score=0.5, capture_reactions=("white_check_mark",),
                          bot_token="xoxb-test", signing_secret=SECRET)
    built = build_app(slack, encoder=real_encoder, client=web_client(slack))
    server = HttpServer(built.gate()).start()
    url = server.url
    fake.threads[(SWARM, "300.1")] = THREAD
    before = built.index.get().generation
    # A nightly reindex holds the writer lock: the capture must wait, then succeed.
    lock = FileLock(root / ".lock")
    lock.acquire()
    try:
        assert send(url, reaction("300.2"), "EvR1") == 200  # reacted on a reply
        fake.wait_for("conversations.replies", 2)  # the reply, then its whole thread
        time.sleep(0.3)  # the capture is now retrying against the held lock
        assert built.index.get().generation == before
    finally:
        lock.release()
    wait_until(lambda: built.index.get().generation != before)
    captured = built.index.get().get("slack:CSWARM:300.1")
    assert captured is not None and captured.resolved
    assert "Teams meeting add-in" in captured.resolution

    new_case = {"type": "message", "channel": SWARM, "user": "U5", "ts": "500.1",
                "text": "Outlook crashes whenever I open a meeting invite"}
    assert send(url, new_case, "EvR2") == 200
    [call] = fake.wait_for("chat.postMessage")
    assert call.params["thread_ts"] == "500.1"
    first = next(b for b in call.params["blocks"] if b.get("block_id") == "match-1")
    assert "Teams meeting add-in" in first["text"]["text"]
    values = [json.loads(e["value"]) for b in call.params["blocks"] if b["type"] == "actions"
              for e in b["elements"]]
    assert values[0]["c"] == "slack:CSWARM:300.1"
    server.shutdown()


def test_capture_of_private_channel_keeps_members(tmp_path: Path, fake: FakeSlackWeb) -> None:
    from conftest import FakeEncoder

    root = tmp_path / "index"
    CaseIndex.build(CASES, root, encoder=FakeEncoder())
    slack = SlackSettings(index_path=root, channels=("CPRIV",), api_base_url=fake.url,
                          capture_reactions=("white_check_mark",), bot_token="xoxb-test",
                          signing_secret=SECRET)
    built = build_app(slack, encoder=FakeEncoder(), client=web_client(slack))
    fake.channels["CPRIV"] = {"id": "CPRIV", "name": "secret-ops", "is_private": True}
    fake.members["CPRIV"] = ["U1", "U2"]
    fake.threads[("CPRIV", "300.1")] = THREAD
    case = built.responder.capturer.capture(built.app.client, "CPRIV", "300.1")
    assert case is not None and case.visibility.private
    assert case.visibility.members == ("U1", "U2") and case.channel == "secret-ops"
    stored = built.index.get().get("slack:CPRIV:300.1")
    assert stored is not None and stored.visibility.private
