"""casematch.toml: [index], [[sources]], and secrets read from named environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from casematch.config import Settings
from casematch.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "examples" / "casematch.toml"


def test_example_config_loads() -> None:
    settings = Settings.load(EXAMPLE, env={})
    assert [s.type for s in settings.sources] == ["slack-export", "zendesk-export"]
    assert settings.sources[0].path == str(EXAMPLE.parent / "slack-export")
    assert settings.sources[0].label == "slack-export:slack-export"
    assert settings.slack_domain == "acme-support"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "casematch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_api_sources_take_secrets_and_urls_from_the_environment(tmp_path: Path) -> None:
    config = write(tmp_path, """
[slack]
token_env = "MY_SLACK"
api_base_url = "http://from-toml/api/"
[[sources]]
type = "slack-api"
channels = ["#support", "C1"]
lookback_days = 3
[[sources]]
type = "zendesk-api"
subdomain = "acme"
name = "helpdesk"
""")
    env = {"MY_SLACK": "xoxb-secret", "CASEMATCH_SLACK_API_URL": "http://from-env/api/",
           "ZENDESK_EMAIL": "a@b.c", "ZENDESK_API_TOKEN": "zd-secret"}
    slack, zendesk = Settings.load(config, env=env).sources
    assert slack.channels == ("support", "C1") and slack.options["lookback_days"] == 3
    assert slack.api_url == "http://from-env/api/"  # env > toml
    assert slack.credentials.token == "xoxb-secret" and slack.credentials.token_env == "MY_SLACK"
    assert zendesk.api_url == "https://acme.zendesk.com" and zendesk.label == "helpdesk"
    assert (zendesk.credentials.user, zendesk.credentials.token) == ("a@b.c", "zd-secret")
    shown = repr(Settings.load(config, env=env))
    assert "xoxb-secret" not in shown and "zd-secret" not in shown

    without_env = Settings.load(config, env={}).sources[0]
    assert without_env.api_url == "http://from-toml/api/" and not without_env.credentials.token


@pytest.mark.parametrize(("table", "message"), [
    ('type = "ftp"', "unknown type"),
    ('type = "slack-api"', "needs 'channels'"),
    ('type = "zendesk-api"', "needs 'subdomain'"),
    ('type = "jsonl"', "needs 'path'"),
    ('path = "x"', "has no 'type'"),
])
def test_bad_sources_say_what_to_fix(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load(write(tmp_path, f"[[sources]]\n{table}\n"), env={})


def test_index_table(tmp_path: Path) -> None:
    settings = Settings.load(write(tmp_path, '[index]\npath = "i"\ninclude_unresolved = true\n'),
                             env={})
    assert settings.index_path == tmp_path / "i" and settings.include_unresolved


def test_slack_and_zendesk_tables_set_every_api_source_of_their_kind(tmp_path: Path) -> None:
    config = write(tmp_path, """
[slack]
lookback_days = 5
recheck_unresolved = false
swarm_channels = ["support"]
[zendesk]
start_time = 1700000000
[[sources]]
type = "slack-api"
channels = ["support"]
[[sources]]
type = "slack-api"
channels = ["billing"]
lookback_days = 60
[[sources]]
type = "zendesk-api"
subdomain = "acme"
""")
    first, second, zendesk = Settings.load(config, env={}).sources
    assert (first.options["lookback_days"], first.options["recheck_unresolved"]) == (5, False)
    assert second.options["lookback_days"] == 60  # the source's own table wins
    assert "swarm_channels" not in first.options  # the responder's keys stay in [slack]
    assert zendesk.options["start_time"] == 1700000000
