"""Configuration checked at start: channel names, Block Kit limits, model loaded first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FakeEncoder
from fake_slack_web import FakeSlackWeb
from slack_sdk.errors import SlackObjectFormationError
from test_slack_responder import CASES, PRIVATE, SWARM, root, slack_settings, start

from casematch.config import Settings
from casematch.errors import ConfigError
from casematch.index import CaseIndex
from casematch.slack.app import build_app, web_client
from casematch.slack.responder import checked_blocks
from casematch.slack.settings import MAX_RESULTS, SlackSettings


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    CaseIndex.build(CASES, tmp_path / "index", encoder=FakeEncoder())
    return tmp_path / "index"


@pytest.fixture
def fake() -> Iterator[FakeSlackWeb]:
    server = FakeSlackWeb()
    server.channels = {"CSWARM": {"id": SWARM, "name": "it-help", "is_private": False},
                       "CPRIV": {"id": PRIVATE, "name": "secret-ops", "is_private": True}}
    yield server
    server.close()


def test_channel_names_are_resolved_to_ids_at_start(index_dir: Path,
                                                    fake: FakeSlackWeb) -> None:
    harness = start(index_dir, fake, channels=("#it-help", "secret-ops"))
    try:
        assert harness.built.responder.slack.channels == (SWARM, PRIVATE)
        harness.event(root("700.1", "printer jams paper"), "EvName")
        [call] = fake.wait_for("chat.postMessage")
        assert call.params["channel"] == SWARM
    finally:
        harness.server.shutdown()


def test_unknown_channel_name_is_an_error_naming_it(index_dir: Path,
                                                   fake: FakeSlackWeb) -> None:
    slack = slack_settings(index_dir, fake, channels=("#it-help", "#no-such-room"))
    with pytest.raises(ConfigError, match="#no-such-room"):
        build_app(slack, encoder=FakeEncoder(), client=web_client(slack))


def test_max_results_is_limited_to_what_one_message_shows(tmp_path: Path) -> None:
    def load(n: int) -> SlackSettings:
        settings = Settings(index_path=tmp_path, sections={"slack": {"max_results": n}})
        return SlackSettings.from_settings(settings, {})

    assert MAX_RESULTS == 16 and load(16).max_results == 16
    with pytest.raises(ConfigError, match="max_results = 17"):
        load(17)


def test_blocks_are_checked_against_block_kit_limits() -> None:
    ok = [{"type": "section", "text": {"type": "mrkdwn", "text": "fine"}}]
    assert checked_blocks(ok) == ok
    with pytest.raises(SlackObjectFormationError, match="3000"):
        checked_blocks([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}])
    with pytest.raises(SlackObjectFormationError, match="50"):
        checked_blocks(ok * 51)


def test_model_is_loaded_before_the_app_reports_ready(index_dir: Path,
                                                      fake: FakeSlackWeb) -> None:
    encoder = FakeEncoder()
    slack = slack_settings(index_dir, fake)
    built = build_app(slack, encoder=encoder, client=web_client(slack))
    assert built.ready and encoder.encoded  # warmed before returning
