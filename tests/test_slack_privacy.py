"""What the responder keeps: no message text past its use, none after a deletion."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FakeEncoder
from fake_slack_web import FakeSlackWeb
from test_slack_responder import CASES, PRIVATE, SWARM, Harness, root, settle, start

from casematch.config import Settings
from casematch.errors import ConfigError
from casematch.index import CaseIndex
from casematch.slack.settings import SlackSettings
from casematch.slack.state import SlackState, root_id

SECRET_TEXT = "vpn disconnects every hour, password hunter2-TESTSECRET"


@pytest.fixture
def slack(tmp_path: Path) -> Iterator[Harness]:
    CaseIndex.build(CASES, tmp_path / "index", encoder=FakeEncoder())
    fake = FakeSlackWeb()
    harness = start(tmp_path / "index", fake)
    yield harness
    harness.server.shutdown()
    fake.close()


def state_bytes(state: SlackState) -> bytes:
    return b"".join(p.read_bytes() for p in state.path.parent.glob(state.path.name + "*"))


def test_deleted_message_leaves_no_text_in_the_state_files(slack: Harness) -> None:
    slack.event(root("600.1", SECRET_TEXT, channel=PRIVATE), "EvSecret")
    [call] = slack.fake.wait_for("chat.postMessage")
    button = next(e for b in call.params["blocks"] if b["type"] == "actions"
                  for e in b["elements"])
    payload = {"type": "block_actions", "user": {"id": "U1"}, "team": {"id": "T1"},
               "channel": {"id": PRIVATE}, "container": {"type": "message"},
               "message": {"ts": "1", "thread_ts": "600.1"}, "trigger_id": "1",
               "api_app_id": "A1", "token": "x", "actions": [{**button, "type": "button"}]}
    slack.form({"payload": json.dumps(payload)})
    deadline = time.monotonic() + 10
    while not slack.built.state.feedback_rows() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b"TESTSECRET" in state_bytes(slack.built.state)  # kept while the message lives
    deleted = {"type": "message", "subtype": "message_deleted", "channel": PRIVATE,
               "ts": "600.9", "deleted_ts": "600.1", "hidden": True}
    slack.event(deleted, "EvSecretGone")
    slack.fake.wait_for("chat.delete")
    settle(slack.fake)
    assert b"TESTSECRET" not in state_bytes(slack.built.state)
    assert [r[1] for r in slack.built.state.feedback_rows()] == [""]


def test_query_text_is_blanked_after_the_retention_period(slack: Harness) -> None:
    state = slack.built.state
    slack.event(root("601.1", "printer jams paper"), "EvOldText")
    slack.fake.wait_for("chat.postMessage")
    deadline = time.monotonic() + 10
    while state.query(root_id(SWARM, "601.1")).reply_ts is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    state.prune(time.time() + 29 * 86400)
    assert state.query(root_id(SWARM, "601.1")).text == "printer jams paper"
    state.prune(time.time() + 31 * 86400)
    kept = state.query(root_id(SWARM, "601.1"))
    assert kept.text == "" and kept.text_hash and kept.reply_ts
    assert b"printer jams paper" not in state_bytes(state)
    # An unfurl (same text) later still leaves the reply alone: the hash remembers it.
    unfurled = {"type": "message", "subtype": "message_changed", "channel": SWARM,
                "ts": "601.9", "hidden": True,
                "message": root("601.1", "printer jams paper", attachments=[{"title": "x"}]),
                "previous_message": root("601.1", "printer jams paper")}
    slack.event(unfurled, "EvUnfurl")
    settle(slack.fake)
    assert slack.fake.of("chat.update") == []


def test_retention_days_is_read_and_checked(tmp_path: Path) -> None:
    def load(value: object) -> SlackSettings:
        settings = Settings(index_path=tmp_path, sections={"slack": {"retention_days": value}})
        return SlackSettings.from_settings(settings, {})

    assert load(7).retention_days == 7
    assert SlackSettings(index_path=tmp_path).retention_days == 30
    with pytest.raises(ConfigError, match="retention_days"):
        load(0)
