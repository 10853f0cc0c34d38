"""Scenario tests: signed HTTP requests in, Web API calls out (recorded by a local fake)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import FakeEncoder, make_case
from fake_slack_web import BOT_ID, FakeSlackWeb, event_body, post, signed_headers

from casematch.cases import Visibility
from casematch.index import CaseIndex
from casematch.slack import feedback_queries
from casematch.slack.app import Responders, build_app, web_client
from casematch.slack.http import HttpServer
from casematch.slack.settings import SlackSettings

SECRET = "test-signing-secret"
SWARM, PRIVATE, OTHER = "CSWARM", "CPRIV", "COTHER"

CASES = [
    make_case("slack:CSWARM:100.1", "vpn disconnects every hour on macos laptop",
              "reinstall the vpn client profile", source="slack", channel="swarm"),
    make_case("slack:CSWARM:100.2", "printer on floor three jams paper",
              "replace the fuser unit", source="slack", channel="swarm"),
    make_case("slack:CPRIV:100.3", "windows laptop: vpn disconnects every hour, cert error",
              "rotate the vpn certificate", source="slack", channel="secret-ops",
              visibility=Visibility(private=True, members=("U1",))),
]


@dataclass
class Harness:
    fake: FakeSlackWeb
    built: Responders
    url: str
    server: Any

    def event(self, event: dict[str, Any], event_id: str, *, retry: int | None = None,
              url: str | None = None) -> tuple[int, str, float]:
        body = event_body(event, event_id)
        return post(url or self.url, body, signed_headers(SECRET, body, retry=retry))

    def form(self, fields: dict[str, str]) -> tuple[int, str, float]:
        body = urlencode(fields)
        return post(self.url, body, signed_headers(
            SECRET, body, content_type="application/x-www-form-urlencoded"))


def slack_settings(index: Path, fake: FakeSlackWeb, **overrides: Any) -> SlackSettings:
    base = SlackSettings(index_path=index, channels=(SWARM, PRIVATE), api_base_url=fake.url,
                         min_score=0.5, capture_reactions=("white_check_mark",),
                         bot_token="xoxb-test", signing_secret=SECRET)
    return replace(base, **overrides)


def start(index: Path, fake: FakeSlackWeb, **overrides: Any) -> Harness:
    slack = slack_settings(index, fake, **overrides)
    built = build_app(slack, encoder=FakeEncoder(), client=web_client(slack))
    server = HttpServer(built.gate()).start()
    return Harness(fake, built, server.url, server)


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    CaseIndex.build(CASES, tmp_path / "index", encoder=FakeEncoder())
    return tmp_path / "index"


@pytest.fixture
def fake() -> Iterator[FakeSlackWeb]:
    server = FakeSlackWeb()
    yield server
    server.close()


@pytest.fixture
def slack(index_dir: Path, fake: FakeSlackWeb) -> Iterator[Harness]:
    harness = start(index_dir, fake)
    yield harness
    harness.server.shutdown()


def root(ts: str, text: str, channel: str = SWARM, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "channel": channel, "user": "U1", "text": text, "ts": ts,
            "channel_type": "channel", **extra}


def settle(fake: FakeSlackWeb, seconds: float = 0.3) -> None:
    """For asserting that nothing happens: let in-flight listeners finish, boundedly."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)


# ---- answering ----------------------------------------------------------------------------


def test_new_case_gets_one_threaded_reply_with_blocks(slack: Harness) -> None:
    status, _, seconds = slack.event(root("200.1", "my vpn disconnects every hour"), "Ev1")
    assert status == 200 and seconds < 3
    [call] = slack.fake.wait_for("chat.postMessage")
    assert call.params["channel"] == SWARM and call.params["thread_ts"] == "200.1"
    blocks = call.params["blocks"]
    sections = [b["text"]["text"] for b in blocks if b.get("block_id", "").startswith("match-")]
    assert "reinstall the vpn client profile" in sections[0]
    assert len(sections) <= 3
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert {b["action_id"] for b in buttons} == {"casematch_helpful", "casematch_not_relevant"}
    assert call.params["text"].startswith("Similar resolved cases")


def test_silent_below_threshold_and_optional_note(index_dir: Path, fake: FakeSlackWeb) -> None:
    quiet = start(index_dir, fake)
    quiet.event(root("201.1", "lunch menu for friday"), "Ev2")
    settle(fake)
    assert fake.of("chat.postMessage") == []
    quiet.server.shutdown()
    noted = start(index_dir, fake, no_match_note=True)
    noted.event(root("201.2", "lunch menu for saturday"), "Ev3")
    [call] = fake.wait_for("chat.postMessage")
    assert "No close match" in json.dumps(call.params["blocks"])
    noted.server.shutdown()


def test_retry_and_twin_replica_post_once(slack: Harness, index_dir: Path) -> None:
    twin = start(index_dir, slack.fake)
    event = root("202.1", "vpn disconnects every hour again")
    assert slack.event(event, "Ev4")[0] == 200
    assert slack.event(event, "Ev4", retry=1)[0] == 200
    assert twin.event(event, "Ev4", url=twin.url)[0] == 200
    # A replica that saw another delivery id for the same message: (channel, ts) dedupe.
    assert twin.event(event, "Ev4-other", url=twin.url)[0] == 200
    slack.fake.wait_for("chat.postMessage")
    settle(slack.fake)
    assert len(slack.fake.of("chat.postMessage")) == 1
    twin.server.shutdown()


def test_never_answers_itself_threads_or_unconfigured_bots(slack: Harness) -> None:
    slack.event(root("203.1", "vpn disconnects", user="UBOT", bot_id=BOT_ID), "Ev5")
    slack.event(root("203.2", "vpn disconnects", thread_ts="200.1"), "Ev6")
    slack.event(root("203.3", "vpn disconnects", bot_id="BHELP", subtype="bot_message"), "Ev7")
    slack.event(root("203.4", "vpn disconnects every hour", channel=OTHER), "Ev8")
    settle(slack.fake)
    assert slack.fake.of("chat.postMessage") == []


def test_workflow_post_with_text_in_blocks_is_answered_when_bots_allowed(
    index_dir: Path, fake: FakeSlackWeb
) -> None:
    harness = start(index_dir, fake, answer_bots=("BWORKFLOW",))
    blocks = [{"type": "section", "text": {"type": "mrkdwn",
                                           "text": "*Issue:* vpn disconnects every hour"}}]
    harness.event(root("204.1", "", bot_id="BWORKFLOW", subtype="bot_message",
                       blocks=blocks), "Ev9")
    [call] = fake.wait_for("chat.postMessage")
    assert call.params["thread_ts"] == "204.1"
    harness.server.shutdown()


def test_private_case_only_in_its_own_channel(slack: Harness) -> None:
    text = "windows laptop vpn disconnects every hour with a cert error"
    slack.event(root("205.1", text), "Ev10")
    slack.event(root("205.2", text, channel=PRIVATE), "Ev11")
    slack.fake.wait_for("chat.postMessage")
    settle(slack.fake)
    calls = slack.fake.of("chat.postMessage")
    shown = {c.params["channel"]: json.dumps(c.params["blocks"]) for c in calls}
    assert "rotate the vpn certificate" in shown[PRIVATE]
    # In the public channel: silent, or only public cases.
    assert "rotate the vpn certificate" not in shown.get(SWARM, "")


# ---- edits and deletions ------------------------------------------------------------------


def test_edited_root_updates_and_deleted_root_deletes_the_reply(slack: Harness) -> None:
    slack.event(root("206.1", "printer jams"), "Ev12")
    [posted] = slack.fake.wait_for("chat.postMessage")
    reply_ts = posted.response["ts"]
    edited = {"type": "message", "subtype": "message_changed", "channel": SWARM,
              "ts": "206.9", "message": root("206.1", "vpn disconnects every hour"),
              "previous_message": root("206.1", "printer jams")}
    slack.event(edited, "Ev13")
    [update] = slack.fake.wait_for("chat.update")
    assert update.params["ts"] == reply_ts
    assert "reinstall the vpn client profile" in json.dumps(update.params["blocks"])
    deleted = {"type": "message", "subtype": "message_deleted", "channel": SWARM,
               "ts": "206.10", "deleted_ts": "206.1", "hidden": True}
    slack.event(deleted, "Ev14")
    [delete] = slack.fake.wait_for("chat.delete")
    assert (delete.params["channel"], delete.params["ts"]) == (SWARM, reply_ts)


def test_edit_that_keeps_the_text_leaves_the_reply_alone(slack: Harness) -> None:
    slack.event(root("212.1", "printer jams"), "Ev20")
    slack.fake.wait_for("chat.postMessage")
    # What Slack sends when a link in the root unfurls: same text, new attachments.
    unfurled = {"type": "message", "subtype": "message_changed", "channel": SWARM,
                "ts": "212.9", "hidden": True,
                "message": root("212.1", "printer jams",
                                attachments=[{"title": "Fuser FAQ", "text": "vpn"}]),
                "previous_message": root("212.1", "printer jams")}
    slack.event(unfurled, "Ev21")
    settle(slack.fake)
    assert slack.fake.of("chat.update") == []


def test_private_duplicate_is_neither_counted_nor_dated(tmp_path: Path) -> None:
    from casematch.slack.suggest import LiveIndex, Suggester

    members = Visibility(private=True, members=("U1",))
    problem = "badge reader at the north door rejects every badge"
    cases = [
        make_case("slack:CPRIV:300.1", problem, "re-enrol the badge in the door controller",
                  source="slack", visibility=members,
                  created_at=datetime(2026, 1, 5, tzinfo=UTC)),
        # Another private channel with the same members: folded into the match above, but
        # by the default rule not for CPRIV's eyes, and its date must not show either.
        make_case("slack:CPRIV2:300.2", problem, "", resolved=True, source="slack",
                  visibility=members, created_at=datetime(2026, 3, 9, tzinfo=UTC)),
    ]
    CaseIndex.build(cases, tmp_path / "idx", encoder=FakeEncoder())
    index = LiveIndex(tmp_path / "idx", encoder=FakeEncoder())
    found = index.get().search(problem, k=3)
    assert found[0].duplicates == ("slack:CPRIV2:300.2",)  # what search alone returns
    slack = SlackSettings(index_path=tmp_path / "idx", channels=(PRIVATE,), min_score=0.1)
    [match] = Suggester(index, slack).suggest(problem, PRIVATE).matches
    assert (match.case.id, match.duplicates, match.seen) == ("slack:CPRIV:300.1", (), 1)
    assert match.last_seen is None


# ---- verification -------------------------------------------------------------------------


def test_forged_signature_and_stale_timestamp_are_rejected(slack: Harness) -> None:
    body = event_body(root("207.1", "vpn disconnects every hour"), "Ev15")
    assert post(slack.url, body, signed_headers("wrong-secret", body))[0] == 401
    stale = int(time.time()) - 6 * 60
    assert post(slack.url, body, signed_headers(SECRET, body, timestamp=stale))[0] == 401
    settle(slack.fake)
    assert slack.fake.of("chat.postMessage") == []


def test_url_verification(slack: Harness) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "x"})
    status, text, _ = post(slack.url, body, signed_headers(SECRET, body))
    assert status == 200 and "abc123" in text


# ---- ephemeral answers, feedback ----------------------------------------------------------


def test_slash_command_answers_ephemerally(slack: Harness) -> None:
    status, _, seconds = slack.form({
        "command": "/casematch", "text": "printer jams paper", "user_id": "U7",
        "channel_id": SWARM, "team_id": "T1", "response_url": slack.fake.url + "respond",
        "trigger_id": "1", "token": "x"})
    assert status == 200 and seconds < 3
    [call] = slack.fake.wait_for("respond")
    assert call.params["response_type"] == "ephemeral"
    assert "replace the fuser unit" in json.dumps(call.params["blocks"])
    settle(slack.fake)
    assert slack.fake.of("chat.postEphemeral") == []


def test_slash_command_falls_back_to_post_ephemeral_when_response_url_fails(
    slack: Harness
) -> None:
    slack.fake.server_errors["respond"] = [500]
    slack.form({
        "command": "/casematch", "text": "printer jams paper", "user_id": "U7",
        "channel_id": SWARM, "team_id": "T1", "response_url": slack.fake.url + "respond",
        "trigger_id": "2", "token": "x"})
    [call] = slack.fake.wait_for("chat.postEphemeral")
    assert call.params["user"] == "U7"
    assert "replace the fuser unit" in json.dumps(call.params["blocks"])


def test_fallback_text_escapes_mrkdwn(tmp_path: Path, fake: FakeSlackWeb) -> None:
    cases = [make_case("slack:CSWARM:100.9", "<!channel> vpn down & <@U1> asks",
                       "restart the vpn gateway", source="slack", channel="swarm")]
    CaseIndex.build(cases, tmp_path / "esc", encoder=FakeEncoder())
    harness = start(tmp_path / "esc", fake, min_score=0.0)
    harness.form({
        "command": "/casematch", "text": "vpn down", "user_id": "U7", "channel_id": SWARM,
        "team_id": "T1", "response_url": fake.url + "respond", "trigger_id": "3",
        "token": "x"})
    [call] = fake.wait_for("respond")
    assert "<!channel>" not in call.params["text"] and "<@U1>" not in call.params["text"]
    assert "&lt;!channel&gt;" in call.params["text"] and "&amp;" in call.params["text"]
    harness.server.shutdown()


def test_mention_in_thread_answers_about_the_root(slack: Harness) -> None:
    slack.fake.threads[(SWARM, "208.1")] = [root("208.1", "printer jams paper on floor 3")]
    mention = {"type": "app_mention", "channel": SWARM, "user": "U8", "ts": "208.5",
               "thread_ts": "208.1", "text": "<@UBOT>"}
    slack.event(mention, "Ev16")
    [call] = slack.fake.wait_for("chat.postEphemeral")
    assert call.params["user"] == "U8" and call.params["thread_ts"] == "208.1"
    assert "replace the fuser unit" in json.dumps(call.params["blocks"])
    # A vote on the ephemeral answer labels a query that leaves its own thread out.
    helpful = next(e for b in call.params["blocks"] if b["type"] == "actions"
                   for e in b["elements"] if e["action_id"] == "casematch_helpful")
    payload = {"type": "block_actions", "user": {"id": "U8"}, "team": {"id": "T1"},
               "channel": {"id": SWARM}, "container": {"type": "message", "is_ephemeral": True},
               "trigger_id": "1", "api_app_id": "A1", "token": "x",
               "actions": [{**helpful, "block_id": "feedback-1", "type": "button"}]}
    assert slack.form({"payload": json.dumps(payload)})[0] == 200
    deadline = time.monotonic() + 10
    while not slack.built.state.feedback_rows() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert feedback_queries(slack.built.state.path) == [{
        "query": "printer jams paper on floor 3", "relevant": ["slack:CSWARM:100.2"],
        "exclude": ["slack:CSWARM:208.1"]}]


def test_feedback_is_stored_and_becomes_eval_queries(slack: Harness, index_dir: Path) -> None:
    slack.event(root("209.1", "vpn disconnects every hour"), "Ev17")
    [call] = slack.fake.wait_for("chat.postMessage")
    buttons = [e for b in call.params["blocks"] if b["type"] == "actions" for e in b["elements"]]
    votes = ((buttons[0], "U1"), (buttons[1], "U2"), (buttons[0], "U3"))  # 2 helpful, 1 not
    for button, user in votes:
        payload = {"type": "block_actions", "user": {"id": user}, "team": {"id": "T1"},
                   "channel": {"id": SWARM}, "container": {"type": "message"},
                   "message": {"ts": "1", "thread_ts": "209.1"}, "trigger_id": "1",
                   "api_app_id": "A1", "token": "x",
                   "actions": [{**button, "block_id": "feedback-1", "type": "button"}]}
        assert slack.form({"payload": json.dumps(payload)})[0] == 200
    slack.fake.wait_for("chat.postEphemeral", 3)
    rows = slack.built.state.feedback_rows()
    assert sorted((r[2], r[3], r[4]) for r in rows) == [
        ("slack:CSWARM:100.1", "helpful", "U1"), ("slack:CSWARM:100.1", "helpful", "U3"),
        ("slack:CSWARM:100.1", "not_relevant", "U2")]
    assert {r[1] for r in rows} == {"vpn disconnects every hour"}
    queries = feedback_queries(index_dir)
    assert queries == [{"query": "vpn disconnects every hour",
                        "relevant": ["slack:CSWARM:100.1"],
                        "exclude": ["slack:CSWARM:209.1"]}]


def test_socket_mode_envelope_is_acked_and_answered(slack: Harness) -> None:
    from slack_sdk.socket_mode.request import SocketModeRequest

    from casematch.slack.app import socket_mode_handler

    handler = socket_mode_handler(slack.built.app, "xapp-test")
    sent: list[Any] = []

    class Client:
        logger = handler.client.logger

        def send_socket_mode_response(self, response: Any) -> None:
            sent.append(response)

    payload = json.loads(event_body(root("210.1", "printer jams paper"), "Ev18"))
    handler.handle(Client(), SocketModeRequest(type="events_api", envelope_id="env1",
                                               payload=payload))
    assert sent[0].envelope_id == "env1"
    [call] = slack.fake.wait_for("chat.postMessage")
    assert call.params["thread_ts"] == "210.1"


def test_rate_limited_call_is_retried_after_retry_after(slack: Harness) -> None:
    slack.fake.rate_limited["chat.postMessage"] = 1
    slack.event(root("211.1", "printer jams paper"), "Ev19")
    [call] = slack.fake.wait_for("chat.postMessage", timeout=10)
    assert call.params["thread_ts"] == "211.1"
    assert len(slack.fake.of("chat.postMessage:429")) == 1
