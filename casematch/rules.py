"""What marks a thread as resolved: the rules a team configures (`[resolution]` in
casematch.toml).

They live apart from the judge that applies them (`casematch.resolution`) because settings
and sources need the rules on every command, the judge only when threads are read: its ~45
patterns took ~35 ms to compile, paid by every cold `casematch query` that never reads a
thread.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_REACTIONS = ("white_check_mark", "heavy_check_mark", "resolved")
DEFAULT_PHRASES = ("resolved", "fixed", "solved", "closing this")


@dataclass(frozen=True, slots=True)
class ResolutionRules:
    """What marks a thread as resolved. Configurable per team."""

    reactions: tuple[str, ...] = DEFAULT_REACTIONS
    phrases: tuple[str, ...] = DEFAULT_PHRASES
    # How many of the last replies are searched for a closing phrase.
    last_replies: int = 3
    # Extra thanks/confirmation phrases ("vale, gracias", a team's "sorted!") on top of the
    # built-in ones in English, Spanish, Portuguese, French, German and Indonesian.
    gratitude: tuple[str, ...] = ()
    # Channels whose bot posts are cases (alerting bots, helpdesk bots); elsewhere a bot's
    # root is an announcement unless it is a form intake post (Workflow Builder).
    bot_case_channels: tuple[str, ...] = ()


DEFAULT_RULES = ResolutionRules()
