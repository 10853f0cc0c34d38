"""[slack] and the tokens: read once at the edge; secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from casematch.config import Settings
from casematch.errors import ConfigError
from casematch.slack.settings import SlackSettings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "casematch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_from_settings_reads_table_and_env(tmp_path: Path) -> None:
    config = write(tmp_path, '[slack]\nchannels = ["C1", "C2"]\nmin_score = 0.62\n'
                             'api_base_url = "http://proxy.local/api/"\nanswer_bots = ["B9"]\n')
    env = {"SLACK_BOT_TOKEN": "xoxb-secret-1", "SLACK_SIGNING_SECRET": "sig-secret-2"}
    slack = SlackSettings.from_settings(Settings.load(config, env={}), env)
    assert slack.channels == ("C1", "C2") and slack.min_score == 0.62
    assert slack.api_base_url == "http://proxy.local/api/"
    assert slack.answers_bot("B9") and not slack.answers_bot("B8")
    assert "secret" not in repr(slack)
    slack.require(socket_mode=False)
    override = SlackSettings.from_settings(Settings.load(config, env={}),
                                           {**env, "CASEMATCH_SLACK_API_URL": "http://x/"})
    assert override.api_base_url == "http://x/"


def test_missing_tokens_name_the_variable_not_a_value(tmp_path: Path) -> None:
    config = write(tmp_path, '[slack]\nchannels = ["C1"]\n')
    slack = SlackSettings.from_settings(Settings.load(config, env={}),
                                        {"SLACK_BOT_TOKEN": "xoxb-secret"})
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN") as info:
        slack.require(socket_mode=True)
    assert "xoxb-secret" not in str(info.value)
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        slack.require(socket_mode=False)


def test_bad_private_rule_is_a_config_error(tmp_path: Path) -> None:
    config = write(tmp_path, '[slack]\nchannels = ["C1"]\nprivate_cases = "everywhere"\n')
    with pytest.raises(ConfigError, match="private_cases"):
        SlackSettings.from_settings(Settings.load(config, env={}), {})
