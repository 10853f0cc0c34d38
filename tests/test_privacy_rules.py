"""Which cases may be shown in which channel (casematch.slack.privacy), rule by rule."""

from __future__ import annotations

import pytest
from conftest import make_case

from casematch.cases import Match, Visibility
from casematch.slack.privacy import case_channel_id, may_show, visible_matches

PUBLIC = make_case("slack:CPUB:1.0", "VPN drops", "Raise the lifetime", source="slack")
PRIVATE = make_case("slack:CSEC:2.0", "Admin SSO", "Enable SCIM first", source="slack",
                    visibility=Visibility(private=True, members=("U1", "U2")))
PRIVATE_TICKET = make_case("zendesk:acme:7", "Refund for ACME", "Refunded", source="zendesk",
                           visibility=Visibility(private=True))


def test_case_channel_id_is_read_from_slack_ids_only() -> None:
    assert case_channel_id(PRIVATE) == "CSEC"
    assert case_channel_id(PRIVATE_TICKET) == ""


@pytest.mark.parametrize(("case", "channel", "rule", "shown"), [
    (PUBLIC, "CANY", "own-channel", True),
    (PUBLIC, "CANY", "never", True),
    (PRIVATE, "CSEC", "own-channel", True),   # everyone reading it could read the case
    (PRIVATE, "CPUB", "own-channel", False),
    (PRIVATE, "CSEC", "never", False),
    (PRIVATE_TICKET, "CSEC", "own-channel", False),  # no channel of its own: never in Slack
])
def test_may_show(case: object, channel: str, rule: str, shown: bool) -> None:
    assert may_show(case, channel, rule) is shown  # type: ignore[arg-type]


def test_visible_matches_keeps_order_and_drops_what_the_channel_may_not_see() -> None:
    matches = [Match(case=c, score=0.9 - n / 10, rank=n + 1)
               for n, c in enumerate((PRIVATE, PUBLIC, PRIVATE_TICKET))]
    assert [m.case.id for m in visible_matches(matches, "CPUB")] == ["slack:CPUB:1.0"]
    assert [m.case.id for m in visible_matches(matches, "CSEC")] == [
        "slack:CSEC:2.0", "slack:CPUB:1.0"]
