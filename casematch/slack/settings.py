"""`[slack]` settings and tokens, resolved once at the CLI edge.

This is the one module of the responder that looks at environment variables, and only
through the mapping it is given: library code receives a `SlackSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casematch.config import Settings, slack_api
from casematch.errors import ConfigError

# Above this cosine a suggestion is worth an agent's time; `casematch eval` calibrates it.
DEFAULT_MIN_SCORE = 0.55
PRIVATE_RULES = ("own-channel", "never")
# A Slack message holds at most 50 blocks; a reply is a heading plus 3 blocks a match
# (the case, where/when, the feedback buttons): 16 matches fit.
MAX_BLOCKS = 50
MAX_RESULTS = (MAX_BLOCKS - 1) // 3


@dataclass(frozen=True)
class SlackSettings:
    """Everything the responder needs. Tokens are kept out of `repr` (and so out of logs)."""

    index_path: Path
    channels: tuple[str, ...] = ()
    api_base_url: str | None = None
    min_score: float = DEFAULT_MIN_SCORE
    max_results: int = 3
    # Post a short "no close match" note instead of staying silent below the threshold.
    no_match_note: bool = False
    # Posts by other bots (Workflow Builder, helpdesk bots): False, True, or bot ids.
    answer_bots: bool | tuple[str, ...] = False
    # Channels where posts by any bot (Slackbot's reminders included) are answered.
    bot_channels: tuple[str, ...] = ()
    capture_reactions: tuple[str, ...] = ()
    # Where a case from a private channel may be shown (see README, "Privacy").
    private_cases: str = "own-channel"
    slash_command: str = "/casematch"
    # Where claims, replies and votes live: "" for slack.sqlite at the index, or a
    # postgresql:// URL that several responder processes share (password via PGPASSWORD).
    state_url: str = field(default="", repr=False)
    # Days query text is kept (for feedback votes) before it is blanked.
    retention_days: float = 30.0
    settings: Settings = field(default_factory=Settings)
    bot_token: str = field(default="", repr=False)
    bot_token_env: str = "SLACK_BOT_TOKEN"
    app_token: str = field(default="", repr=False)
    signing_secret: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str]) -> SlackSettings:
        """Read `[slack]` from `settings` and the tokens from `env` (os.environ at the edge)."""
        table: Mapping[str, Any] = settings.sections.get("slack", {})
        credentials, api_url = slack_api(table, env)
        try:
            bots = table.get("answer_bots", False)
            answer_bots: bool | tuple[str, ...] = (
                bool(bots) if isinstance(bots, bool) else tuple(str(b) for b in bots)
            )
            max_results = int(table.get("max_results", 3))
            if not 1 <= max_results <= MAX_RESULTS:
                raise ValueError(
                    f"max_results = {max_results}: a Slack message shows 1 to {MAX_RESULTS} "
                    f"matches (Block Kit allows {MAX_BLOCKS} blocks, 3 a match)")
            private = str(table.get("private_cases", "own-channel"))
            if private not in PRIVATE_RULES:
                raise ValueError(f"private_cases must be one of {', '.join(PRIVATE_RULES)}")
            return cls(
                index_path=settings.index_path,
                channels=tuple(str(c) for c in table.get("channels", ())),
                api_base_url=api_url or None,
                min_score=float(table.get("min_score", DEFAULT_MIN_SCORE)),
                max_results=max_results,
                no_match_note=bool(table.get("no_match_note", False)),
                answer_bots=answer_bots,
                bot_channels=tuple(str(c) for c in table.get("bot_channels", ())),
                capture_reactions=tuple(str(r) for r in table.get(
                    "capture_reactions", settings.reactions)),
                private_cases=private,
                slash_command=str(table.get("slash_command", "/casematch")),
                state_url=str(table.get("state_url", "")),
                retention_days=_positive(table.get("retention_days", 30.0), "retention_days"),
                settings=settings,
                bot_token=credentials.token,
                bot_token_env=credentials.token_env,
                app_token=env.get("SLACK_APP_TOKEN", ""),
                signing_secret=env.get("SLACK_SIGNING_SECRET", ""),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[slack]: {exc}") from exc

    def require(self, *, socket_mode: bool) -> None:
        """Fail early, naming the variable to set (never its value)."""
        if not self.bot_token:
            raise ConfigError(f"set {self.bot_token_env} to the app's bot token (xoxb-...)")
        if socket_mode and not self.app_token:
            raise ConfigError("Socket Mode needs SLACK_APP_TOKEN, an app-level token (xapp-...) "
                              "with the connections:write scope")
        if not socket_mode and not self.signing_secret:
            raise ConfigError("HTTP mode needs SLACK_SIGNING_SECRET (Basic Information page)")
        if not self.channels:
            raise ConfigError("[slack] channels is empty: list the swarm channels "
                              "(ids like C0123ABCD, or names like #it-help)")

    def answers_bot(self, bot_id: str, channel: str = "") -> bool:
        """Whether a post by bot `bot_id` ("USLACKBOT" for Slackbot) in `channel` is a case."""
        if channel and channel in self.bot_channels:
            return True
        if isinstance(self.answer_bots, bool):
            return self.answer_bots
        return bot_id in self.answer_bots


def _positive(value: Any, name: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(f"{name} must be a positive number of days, not {value!r}")
    return number
