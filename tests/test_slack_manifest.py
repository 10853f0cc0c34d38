"""The app manifest asks for exactly the scopes and events the responder uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import casematch.slack
from casematch.slack.http import EVENTS_PATH
from casematch.slack.settings import SlackSettings

yaml = pytest.importorskip("yaml")

SLACK_DIR = Path(casematch.slack.__file__).parent
# Web API method -> the bot scopes it needs, public and private channels alike.
METHOD_SCOPES = {
    "auth_test": set(),
    "chat_postMessage": {"chat:write"},
    "chat_update": {"chat:write"},
    "chat_delete": {"chat:write"},
    "chat_postEphemeral": {"chat:write"},
    "conversations_replies": {"channels:history", "groups:history"},
    "conversations_info": {"channels:read", "groups:read"},
    "conversations_members": {"channels:read", "groups:read"},
}
# Bolt listener -> the event subscriptions and scopes it needs.
EVENT_SUBSCRIPTIONS = {
    "message": ({"message.channels", "message.groups"}, {"channels:history", "groups:history"}),
    "reaction_added": ({"reaction_added"}, {"reactions:read"}),
    "app_mention": ({"app_mention"}, {"app_mentions:read"}),
}


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((SLACK_DIR / "manifest.yaml").read_text())
    return data


def source() -> str:
    return "\n".join(p.read_text() for p in sorted(SLACK_DIR.glob("*.py")))


def test_scopes_are_exactly_those_of_the_calls_and_events_in_the_code() -> None:
    called = set(re.findall(r"\.((?:chat|conversations|auth|users|reactions|team|views)_\w+)\(",
                            source()))
    assert called, "no Web API calls found: has the code moved?"
    unknown = called - METHOD_SCOPES.keys()
    assert not unknown, f"add the scopes of {unknown} to METHOD_SCOPES and the manifest"
    listened = set(re.findall(r'@app\.event\("(\w+)"\)', source()))
    assert listened == EVENT_SUBSCRIPTIONS.keys()

    needed = {"commands"}  # the slash command
    needed |= {scope for method in called for scope in METHOD_SCOPES[method]}
    needed |= {scope for event in listened for scope in EVENT_SUBSCRIPTIONS[event][1]}
    data = manifest()
    assert set(data["oauth_config"]["scopes"]["bot"]) == needed
    events = {e for event in listened for e in EVENT_SUBSCRIPTIONS[event][0]}
    assert set(data["settings"]["event_subscriptions"]["bot_events"]) == events


def test_every_request_goes_to_the_one_endpoint_and_the_command_matches() -> None:
    data = manifest()
    settings = data["settings"]
    [command] = data["features"]["slash_commands"]
    assert command["command"] == SlackSettings(index_path=Path(".")).slash_command
    urls = [settings["event_subscriptions"]["request_url"],
            settings["interactivity"]["request_url"], command["url"]]
    assert all(url.endswith(EVENTS_PATH) for url in urls)
    assert settings["interactivity"]["is_enabled"] is True  # the feedback buttons
    assert settings["socket_mode_enabled"] is True
