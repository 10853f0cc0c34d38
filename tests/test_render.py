"""Matches as terminal text, JSON and Block Kit: what each shows, and what it never shows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from conftest import make_case

from casematch import render
from casematch.cases import Match

WHEN = datetime(2026, 4, 8, 9, 30, tzinfo=UTC)


def _match(rank: int = 1, score: float = 0.83, **case: object) -> Match:
    fields: dict[str, object] = {"source": "slack", "channel": "support-swarm",
                                 "url": "https://acme.slack.com/archives/C1/p1",
                                 "resolved_at": WHEN, "title": "SSO <loop> & retry"}
    fields.update(case)
    base = make_case("slack:C1:1.0", "Okta SSO keeps sending users back to login",
                     "Clear the *stale* session cookie", **fields)
    return Match(case=base, score=score, rank=rank, snippet=base.resolution,
                 duplicates=("slack:C1:2.0",), last_seen=WHEN)


def test_closeness_words_follow_the_score() -> None:
    assert [render.closeness(s) for s in (0.9, 0.7, 0.55, 0.2)] == [
        "very close", "close", "related", "loosely related"]


def test_terminal_text_shows_where_when_fix_and_link() -> None:
    text = render.to_text([_match()], query="sso loop")
    assert text.startswith("Closest past cases for: sso loop")
    assert "1. SSO <loop> & retry" in text
    assert "#support-swarm · 2026-04-08 · seen 2 times, last on 2026-04-08" in text
    assert "very close (0.83)" in text
    assert "Resolution: Clear the *stale* session cookie" in text
    assert "https://acme.slack.com/archives/C1/p1" in text
    assert render.to_text([]) == "No similar resolved cases found."


def test_json_holds_public_content_only() -> None:
    secret = _match(hidden_text="internal: customer is on the legacy plan")
    payload = json.loads(render.to_json([secret], query="q"))
    assert payload["query"] == "q"
    [row] = payload["matches"]
    assert (row["rank"], row["id"], row["seen"]) == (1, "slack:C1:1.0", 2)
    assert "legacy plan" not in json.dumps(payload)


def test_blocks_escape_mrkdwn_and_carry_feedback_buttons() -> None:
    blocks = render.to_blocks_with_feedback([_match(), _match(rank=2, score=0.6)],
                                            ["v1", "v2"], heading="*Similar*")
    assert blocks[0]["text"]["text"] == "*Similar*"
    section = blocks[1]["text"]["text"]
    assert section.startswith("<https://acme.slack.com/archives/C1/p1|SSO &lt;loop&gt; &amp;")
    actions = [b for b in blocks if b["type"] == "actions"]
    assert len(actions) == 2
    assert [e["action_id"] for e in actions[0]["elements"]] == [
        render.HELPFUL_ACTION, render.NOT_RELEVANT_ACTION]
    assert [e["value"] for e in actions[1]["elements"]] == ["v2", "v2"]


def test_report_lines_for_the_command_line() -> None:
    assert render.problems([f"p{i}" for i in range(12)], limit=10)[-1] == "... and 2 more problems"
    stats = {"path": "idx", "generation": "g000002", "built_at": "2026-04-08", "model": "m",
             "dimension": 384, "cases": 3, "resolved": 2, "chunks": 4,
             "by_source": {"slack": 3}, "by_channel": {"a": 1, "b": 2}}
    lines = render.stats_text(stats).splitlines()
    assert lines[2] == "Cases: 3 (2 resolved), 4 vectors"
    assert lines[-2:] == ["  b: 2", "  a: 1"]  # busiest channel first
