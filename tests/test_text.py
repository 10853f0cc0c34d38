from __future__ import annotations

from typing import Any

import pytest

from casematch.text import (
    attachments_to_text,
    blocks_to_text,
    html_to_text,
    slack_to_text,
    strip_email_noise,
)

USERS = {"U1": "Ann", "U2": "Bob"}
CHANNELS = {"C9": "support"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ping <@U1>", "ping @Ann"),
        ("ping <@U7>", "ping @U7"),
        ("ping <@U7|zoe>", "ping @zoe"),
        ("see <#C1|general>", "see #general"),
        ("see <#C9>", "see #support"),
        ("<!here> and <!channel>", "@here and @channel"),
        ("<!subteam^S1|@oncall> please", "@oncall please"),
        ("<https://x.io/a|the docs>", "the docs (https://x.io/a)"),
        ("<https://x.io/a>", "https://x.io/a"),
        ("<https://x.io/a|x.io/a>", "https://x.io/a"),
        ("<https://x.io/a/long/path|x.io/a/lo…>", "https://x.io/a/long/path"),
        ("mail <mailto:a@b.io|a@b.io>", "mail a@b.io"),
        ("a &amp; b &lt;tag&gt;", "a & b <tag>"),
        ("&lt;@U1&gt; is text", "<@U1> is text"),
        ("it works :tada: :+1::skin-tone-2:", "it works"),
        ("Released:rotating_light: v2", "Released v2"),
        ("at 10:30:00 and a:b:c", "at 10:30:00 and a:b:c"),
        ("run `kubectl get <@U1> :smile:` now", "run `kubectl get <@U1> :smile:` now"),
        ("```\nif a &lt; b:\n    x = :smile:\n```", "```\nif a < b:\n    x = :smile:\n```"),
        ("too    many   spaces\n\n\n\nnext  line", "too many spaces\n\nnext line"),
        ("  line one \n line two  ", "line one\nline two"),
        ("<!date^1392734382^{date}|Feb 18, 2014>", "Feb 18, 2014"),
    ],
)
def test_slack_to_text(raw: str, expected: str) -> None:
    assert slack_to_text(raw, USERS, CHANNELS) == expected


def test_slack_to_text_without_maps() -> None:
    assert slack_to_text("<@U1> in <#C9>") == "@U1 in #C9"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<p>Hello &amp; welcome</p><p>Second</p>", "Hello & welcome\n\nSecond"),
        ("one<br>two<br/>three", "one\ntwo\nthree"),
        ("<ul><li>first</li><li>second</li></ul>", "- first\n- second"),
        ('<a href="https://x.io">docs</a>', "docs (https://x.io)"),
        ('<a href="https://x.io">https://x.io</a>', "https://x.io"),
        ('<a href="mailto:a@b.io">a@b.io</a>', "a@b.io"),
        ("<pre>def f():\n    return 1</pre>", "def f():\n    return 1"),
        ("run <code>a  &lt;  b</code> now", "run a  <  b now"),
        ("<script>alert(1)</script><style>p{}</style>text", "text"),
        ("<h2>Title</h2>body", "Title\n\nbody"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"),
        ("<div>one</div><div>two</div>", "one\ntwo"),
        ("<p>a</p><p></p><p></p><p>b</p>", "a\n\nb"),
        ("plain &lt;text&gt;", "plain <text>"),
    ],
)
def test_html_to_text(raw: str, expected: str) -> None:
    assert html_to_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Restart the agent.\n\nOn Tue, Mar 5, 2024 at 10:00 AM Bob <b@x.io> wrote:\n> old",
         "Restart the agent."),
        ("Restart it.\nOn Tue, Mar 5, 2024 at 10:00 AM Bob\n<b@x.io> wrote:\nold",
         "Restart it."),
        ("See below\n> quoted line\nmy answer", "See below\nmy answer"),
        ("Done.\n-----Original Message-----\nFrom: x", "Done."),
        ("Done.\n\nFrom: Bob Smith\nSent: Monday, March 4\nTo: me\nSubject: hi\n\nold",
         "Done."),
        ("Use v2.\n-- \nJane Doe\nACME", "Use v2."),
        ("Use v2.\n--\nJane", "Use v2."),
        ("Use v2.\n\nSent from my iPhone", "Use v2."),
        ("Upgrade to 2.1 and clear the cache.\n\nThanks,\nJane Doe\nSupport Engineer",
         "Upgrade to 2.1 and clear the cache."),
        ("Upgrade to 2.1.\n\nBest regards,\nJane", "Upgrade to 2.1."),
        # Conservative: "thanks" with a long line after it is content, not a sign-off.
        ("Thanks,\nthe upgrade to 2.1 fixed the crash on startup for all of our users today",
         "Thanks,\nthe upgrade to 2.1 fixed the crash on startup for all of our users today"),
        ("Thanks!", "Thanks!"),
        ("From the logs it looks fine.", "From the logs it looks fine."),
    ],
)
def test_strip_email_noise(raw: str, expected: str) -> None:
    assert strip_email_noise(raw) == expected


RICH: list[Any] = [
    {
        "type": "rich_text",
        "elements": [
            {"type": "rich_text_section", "elements": [
                {"type": "text", "text": "Hi "},
                {"type": "user", "user_id": "U1"},
                {"type": "text", "text": " see "},
                {"type": "link", "url": "https://x.io", "text": "docs"},
                {"type": "emoji", "name": "smile"},
                {"type": "text", "text": " in "},
                {"type": "channel", "channel_id": "C9"},
                {"type": "text", "text": " a<b", "style": {"bold": True}},
                {"type": "broadcast", "range": "here"},
                {"type": "usergroup", "usergroup_id": "S1"},
            ]},
            {"type": "rich_text_list", "style": "bullet", "elements": [
                {"type": "rich_text_section", "elements": [{"type": "text", "text": "one"}]},
                {"type": "rich_text_section", "elements": [
                    {"type": "text", "text": "x=1", "style": {"code": True}}]},
            ]},
            {"type": "rich_text_preformatted", "elements": [
                {"type": "text", "text": "a :smile: <@U1>"}]},
            {"type": "rich_text_quote", "elements": [{"type": "text", "text": "quoted"}]},
        ],
    }
]


def test_blocks_rich_text_round_trips_through_slack_to_text() -> None:
    mrkdwn = blocks_to_text(RICH)
    assert mrkdwn.splitlines()[0] == (
        "Hi <@U1> see <https://x.io|docs> in <#C9> a&lt;b<!here><!subteam^S1>"
    )
    assert slack_to_text(mrkdwn, USERS, CHANNELS) == (
        "Hi @Ann see docs (https://x.io) in #support a<b@here@S1\n"
        "- one\n- `x=1`\n```a :smile: <@U1>```\n> quoted"
    )


def test_blocks_section_header_context_markdown() -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "New request"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Issue*: login fails"},
         "fields": [{"type": "mrkdwn", "text": "*Priority*\nHigh"},
                    {"type": "plain_text", "text": "Team: A&B"}]},
        {"type": "divider"},
        {"type": "context", "elements": [{"type": "image", "image_url": "x"},
                                         {"type": "mrkdwn", "text": "from <@U2>"}]},
        {"type": "markdown", "text": "**bold** text"},
        "not a block",
    ]
    assert blocks_to_text(blocks) == (
        "New request\n*Issue*: login fails\n*Priority*\nHigh\nTeam: A&amp;B\nfrom <@U2>\n"
        "**bold** text"
    )


def test_attachments_to_text() -> None:
    attachments = [
        {"pretext": "New alert", "title": "CPU high", "text": "host web-1",
         "fields": [{"title": "Severity", "value": "P2"}, {"title": "", "value": "lonely"}],
         "fallback": "ignored"},
        {"fallback": "only the fallback"},
        {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "from blocks"}}]},
    ]
    assert attachments_to_text(attachments) == (
        "New alert\nCPU high\nhost web-1\nSeverity: P2\nlonely\n\nonly the fallback\n\n"
        "from blocks"
    )
