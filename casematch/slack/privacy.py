"""Which cases may be shown where.

The rule (also in the README): a case from a private channel is shown only in that same
channel, where everyone who can read the suggestion could already read the case; with
`private_cases = "never"` it is not shown at all. Public cases are shown anywhere. Ticket
internal notes never reach a suggestion: they live in `hidden_text`, which the renderers
never display, whatever the channel.
"""

from __future__ import annotations

from casematch.cases import Case, Match


def case_channel_id(case: Case) -> str:
    """The Slack channel id a case came from ("slack:<channel>:<ts>"), or ""."""
    if case.source == "slack" and case.id.startswith("slack:"):
        return case.id.split(":", 2)[1]
    return ""


def may_show(case: Case, channel: str, rule: str = "own-channel") -> bool:
    if not case.visibility.private:
        return True
    if rule == "never":
        return False
    # A private helpdesk case has no channel of its own: it is never shown in Slack.
    return bool(case_channel_id(case)) and case_channel_id(case) == channel


def visible_matches(matches: list[Match], channel: str, rule: str = "own-channel") -> list[Match]:
    return [m for m in matches if may_show(m.case, channel, rule)]
