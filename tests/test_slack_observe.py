"""What an operator sees: /metrics, structured logs, and no message text in the logs."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FakeEncoder
from fake_slack_web import FakeSlackWeb
from test_slack_responder import CASES, SWARM, Harness, root, settle, start

from casematch.index import CaseIndex
from casematch.slack.logs import JsonFormatter


@pytest.fixture
def slack(tmp_path: Path) -> Iterator[Harness]:
    CaseIndex.build(CASES, tmp_path / "index", encoder=FakeEncoder())
    fake = FakeSlackWeb()
    harness = start(tmp_path / "index", fake)
    yield harness
    harness.server.shutdown()
    fake.close()


def scrape(harness: Harness) -> dict[str, float]:
    url = harness.url.replace("/slack/events", "/metrics")
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def test_metrics_count_events_dedup_replies_and_searches(slack: Harness) -> None:
    event = root("800.1", "printer jams paper")
    slack.event(event, "EvM1")
    slack.fake.wait_for("chat.postMessage")
    slack.event(event, "EvM1", retry=1)
    edited = {"type": "message", "subtype": "message_changed", "channel": SWARM,
              "ts": "800.9", "message": root("800.1", "vpn disconnects every hour",
                                             edited={"ts": "800.5"}),
              "previous_message": event}
    slack.event(edited, "EvM2")
    slack.fake.wait_for("chat.update")
    slack.event({"type": "message", "subtype": "message_deleted", "channel": SWARM,
                 "ts": "800.10", "deleted_ts": "800.1"}, "EvM3")
    slack.fake.wait_for("chat.delete")
    settle(slack.fake)
    m = scrape(slack)
    assert m['casematch_slack_events_received_total{kind="message"}'] == 4
    assert m['casematch_slack_events_deduplicated_total{kind="message"}'] == 1
    for outcome, count in (("posted", 1), ("updated", 1), ("deleted", 1), ("failed", 0)):
        assert m[f'casematch_slack_replies_total{{outcome="{outcome}"}}'] == count, outcome
    assert m["casematch_slack_search_seconds_count"] == 2
    assert m["casematch_slack_queue_depth"] == 0
    assert m["casematch_index_generation"] >= 1
    assert 0 <= m["casematch_index_age_seconds"] < 3600


def test_no_message_text_in_logs_at_info(slack: Harness,
                                         caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        slack.event(root("801.1", "printer jams paper SECRETWORD"), "EvL1")
        slack.fake.wait_for("chat.postMessage")
        # An event type nobody listens to: Bolt would warn with the whole payload.
        slack.event({"type": "pin_added", "channel_id": SWARM,
                     "item": {"message": {"text": "SECRETWORD"}}}, "EvL2")
        settle(slack.fake)
    assert "SECRETWORD" not in caplog.text


def test_json_log_lines() -> None:
    record = logging.LogRecord("casematch.slack", logging.WARNING, __file__, 1,
                               "queue full for %d s", (10,), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "warning" and line["message"] == "queue full for 10 s"
    assert line["logger"] == "casematch.slack" and line["ts"].endswith("+00:00")


def test_readyz_says_not_ready_while_slack_does_not_answer(tmp_path: Path) -> None:
    from casematch.slack.app import web_client

    def readyz(url: str) -> int:
        probe = url.replace("/slack/events", "/readyz")
        try:
            with urllib.request.urlopen(probe, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    CaseIndex.build(CASES, tmp_path / "index", encoder=FakeEncoder())
    fake = FakeSlackWeb()
    harness = start(tmp_path / "index", fake)
    try:
        assert readyz(harness.url) == 200
        fake.server_errors["auth.test"] = [503] * 50  # Slack down, past every retry
        client = web_client(harness.built.slack)
        harness.built.watch_slack(client, every_s=0.05)
        deadline = time.monotonic() + 10
        while harness.built.slack_reachable and time.monotonic() < deadline:
            time.sleep(0.05)
        assert readyz(harness.url) == 503
        fake.server_errors["auth.test"] = []  # back
        deadline = time.monotonic() + 10
        while not harness.built.slack_reachable and time.monotonic() < deadline:
            time.sleep(0.05)
        assert readyz(harness.url) == 200
    finally:
        harness.built.stopped.set()
        harness.server.shutdown()
        fake.close()
