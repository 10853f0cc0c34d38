"""Edits of a root applied in order, whatever order they arrive or finish in."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEncoder
from fake_slack_web import FakeSlackWeb
from test_slack_responder import CASES, SWARM, Harness, root, settle, start

from casematch.index import CaseIndex
from casematch.slack.state import root_id

VPN_FIX, PRINTER_FIX = "reinstall the vpn client profile", "replace the fuser unit"


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    CaseIndex.build(CASES, tmp_path / "index", encoder=FakeEncoder())
    return tmp_path / "index"


@pytest.fixture
def slack(index_dir: Path) -> Iterator[Harness]:
    fake = FakeSlackWeb()
    harness = start(index_dir, fake)
    yield harness
    harness.server.shutdown()
    fake.close()


def edit(ts: str, text: str, edited: str, event_ts: str) -> dict[str, Any]:
    return {"type": "message", "subtype": "message_changed", "channel": SWARM,
            "ts": event_ts, "event_ts": event_ts, "hidden": True,
            "message": root(ts, text, edited={"user": "U1", "ts": edited}),
            "previous_message": root(ts, "lunch")}


def posted_root(slack: Harness, ts: str) -> None:
    slack.event(root(ts, "lunch menu and a printer that jams"), f"Ev{ts}")
    slack.fake.wait_for("chat.postMessage")


def test_older_edit_arriving_last_is_ignored(slack: Harness) -> None:
    posted_root(slack, "500.1")
    slack.event(edit("500.1", "printer jams paper", "500.3", "500.30"), "EvE2")
    slack.fake.wait_for("chat.update")
    slack.event(edit("500.1", "vpn disconnects every hour", "500.2", "500.20"), "EvE1")
    settle(slack.fake, 0.5)
    [update] = slack.fake.of("chat.update")
    assert PRINTER_FIX in json.dumps(update.params["blocks"])
    assert slack.built.state.query(root_id(SWARM, "500.1")).text == "printer jams paper"


def test_slow_older_edit_does_not_overwrite_a_newer_one(slack: Harness) -> None:
    posted_root(slack, "501.1")
    suggest = slack.built.responder.suggester.suggest

    def slow_for_vpn(text: str, channel: str, **kw: Any) -> Any:
        if "vpn" in text:
            time.sleep(0.6)  # the older edit's search finishes last
        return suggest(text, channel, **kw)

    slack.built.responder.suggester.suggest = slow_for_vpn  # type: ignore[method-assign]
    slack.event(edit("501.1", "vpn disconnects every hour", "501.2", "501.20"), "EvS1")
    time.sleep(0.05)
    slack.event(edit("501.1", "printer jams paper", "501.3", "501.30"), "EvS2")
    updates = slack.fake.wait_for("chat.update")
    settle(slack.fake, 1.0)
    updates = slack.fake.of("chat.update")
    assert PRINTER_FIX in json.dumps(updates[-1].params["blocks"])
    assert slack.built.state.query(root_id(SWARM, "501.1")).text == "printer jams paper"


# ---- bots ----------------------------------------------------------------------------------


def test_slackbot_and_bots_are_ignored_unless_the_channel_answers_bots(
    index_dir: Path
) -> None:
    from test_slack_responder import PRIVATE

    fake = FakeSlackWeb()
    harness = start(index_dir, fake, bot_channels=(PRIVATE,))
    try:
        reminder = "Reminder: vpn disconnects every hour"
        harness.event(root("510.1", reminder, user="USLACKBOT"), "EvBot1")
        harness.event(root("510.2", "vpn disconnects", bot_id="BHELP",
                           subtype="bot_message"), "EvBot2")
        settle(fake)
        assert fake.of("chat.postMessage") == []
        harness.event(root("510.3", reminder, channel=PRIVATE, user="USLACKBOT"), "EvBot3")
        harness.event(root("510.4", "vpn disconnects every hour", channel=PRIVATE,
                           bot_id="BHELP", subtype="bot_message"), "EvBot4")
        calls = fake.wait_for("chat.postMessage", 2)
        assert sorted(c.params["thread_ts"] for c in calls) == ["510.3", "510.4"]
    finally:
        harness.server.shutdown()
        fake.close()
