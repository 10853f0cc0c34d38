from __future__ import annotations

from datetime import UTC, datetime

import pytest

from casematch.cases import Message
from casematch.resolution import (
    ThreadResolution,
    has_closing_phrase,
    is_substantive,
    resolve_thread,
    title_of,
)
from casematch.rules import DEFAULT_RULES, ResolutionRules

POSTER, HELPER, OTHER = "U1", "U2", "U3"
ANSWER = "Restart the sync worker with --reset-offsets and the lag goes away."
OTHER_ANSWER = "Also bump max_poll_records to 500 so it keeps up afterwards."


def at(minute: int) -> datetime:
    return datetime(2024, 3, 5, 10, minute, tzinfo=UTC)


def m(minute: int, text: str, who: str = HELPER, *reactions: str, bot: bool = False) -> Message:
    return Message(text=text, author=who.lower(), author_id=who, created_at=at(minute),
                   reactions=reactions, ts=f"1700000{minute:03d}.000100", is_bot=bot)


ROOT = m(0, "Kafka consumer lag keeps growing. It started after the upgrade.", POSTER)


def test_reaction_on_a_reply_picks_that_reply() -> None:
    thread = [ROOT, m(1, ANSWER, HELPER, "white_check_mark"), m(2, OTHER_ANSWER, OTHER),
              m(3, "thanks all", POSTER)]
    result = resolve_thread(thread)
    assert (result.resolved, result.problem, result.resolution, result.title) == (
        True, ROOT.text, ANSWER, "Kafka consumer lag keeps growing.")
    assert result.fix == (1,)
    # The check mark on the answer decides (over the asker's generic thanks) and dates it.
    assert result.resolved_at == at(1)


def test_several_reacted_replies_are_joined() -> None:
    thread = [ROOT, m(1, ANSWER, HELPER, "heavy_check_mark"), m(2, OTHER_ANSWER, OTHER, "resolved")]
    result = resolve_thread(thread)
    assert result.resolution == f"{ANSWER}\n\n{OTHER_ANSWER}"
    assert result.resolved_at == at(2)


def test_reaction_only_on_root_picks_the_answer_with_the_most_evidence() -> None:
    root = m(0, ROOT.text, POSTER, "white_check_mark")
    command = "Run `kafka-consumer-groups --reset-offsets --to-latest` and restart the worker."
    thread = [root, m(1, command, HELPER),
              m(2, "Maybe the network is slow on your side too", OTHER), m(3, "thanks!", HELPER)]
    result = resolve_thread(thread)
    assert result.resolved
    assert result.resolution == command
    assert result.resolved_at == at(1)


def test_reaction_only_on_root_between_equal_answers_takes_the_later() -> None:
    root = m(0, ROOT.text, POSTER, "white_check_mark")
    first = "Restart the sync worker and the lag goes away for a while."
    later = "Restart the sync worker and the lag goes away for a while!"
    result = resolve_thread([root, m(1, first, HELPER), m(2, later, OTHER)])
    assert result.fix == (2,)


def test_poster_closing_phrase_prefers_the_answer_just_before_it() -> None:
    thread = [ROOT, m(1, OTHER_ANSWER, OTHER), m(2, ANSWER, HELPER),
              m(3, "That fixed it, thanks!", POSTER),
              m(4, "Great to hear, have a nice day everyone", OTHER)]
    result = resolve_thread(thread)
    assert result.resolved
    assert result.resolution == ANSWER
    assert result.resolved_at == at(3)


def test_helper_closing_message_that_explains_is_the_resolution() -> None:
    closing = "Fixed in 2.3.1: upgrade the connector and re-run discovery."
    thread = [ROOT, m(1, "Can you share the logs please?", HELPER),
              m(2, "here they are", POSTER), m(3, closing, HELPER)]
    result = resolve_thread(thread)
    assert (result.resolved, result.resolution, result.resolved_at) == (True, closing, at(3))


def test_closing_phrase_outside_the_last_replies_does_not_count() -> None:
    thread = [ROOT, m(1, "Fixed in 2.3.1: upgrade the connector and re-run discovery.", HELPER),
              m(2, "will look tomorrow", POSTER), m(3, "hmm", HELPER),
              m(4, "any other idea?", POSTER)]
    assert not resolve_thread(thread).resolved
    assert resolve_thread(thread, ResolutionRules(last_replies=4)).resolved


def test_unresolved_thread_has_no_resolution() -> None:
    thread = [ROOT, m(1, ANSWER, HELPER, "eyes"), m(2, "still not solved, same lag", POSTER)]
    result = resolve_thread(thread)
    assert (result.resolved, result.resolution, result.resolved_at) == (False, "", None)
    assert result.problem == ROOT.text


def test_problem_is_root_plus_poster_follow_ups_before_the_first_answer() -> None:
    thread = [ROOT, m(1, "Version is 0.7.2, source is Postgres.", POSTER),
              m(2, "Thanks for your message! Someone will reply soon.", "B1", bot=True),
              m(3, "Logs attached too.", POSTER), m(4, ANSWER, HELPER),
              m(5, "That worked but now I see another error.", POSTER)]
    result = resolve_thread(thread)
    assert result.problem == (
        f"{ROOT.text}\n\nVersion is 0.7.2, source is Postgres.\n\nLogs attached too."
    )


def test_bot_reply_is_never_the_resolution() -> None:
    thread = [ROOT, m(1, ANSWER, HELPER),
              m(2, "Reminder: this thread will be archived in 7 days", "B1", bot=True),
              m(3, "solved, thank you", POSTER)]
    assert resolve_thread(thread).resolution == ANSWER


def test_custom_rules() -> None:
    rules = ResolutionRules(reactions=("done",), phrases=("works now",), last_replies=1)
    reacted = [ROOT, m(1, ANSWER, HELPER, "white_check_mark")]
    assert not resolve_thread(reacted, rules).resolved
    assert resolve_thread([ROOT, m(1, ANSWER, HELPER, "done")], rules).resolution == ANSWER
    assert resolve_thread([ROOT, m(1, ANSWER), m(2, "works now!", POSTER)], rules).resolved
    assert not resolve_thread([ROOT, m(1, ANSWER), m(2, "it is fixed", POSTER)], rules).resolved


def test_empty_thread_and_root_only() -> None:
    assert resolve_thread([]) == ThreadResolution(False, "", "", "", reason="empty thread")
    only = resolve_thread([ROOT])
    assert (only.resolved, only.problem, only.resolution) == (False, ROOT.text, "")


@pytest.mark.parametrize(
    ("text", "closes"),
    [
        ("Fixed, thanks!", True),
        ("resolved by restarting the pod", True),
        ("SOLVED", True),
        ("ok, closing this.", True),
        ("It was not fixed by that", False),
        ("still unresolved", False),
        ("still not solved", False),
        ("this isn't resolved yet", False),
        ("is it fixed?", False),
        ("has this been resolved now? we need it", False),
        ("it will be fixed in the next release", False),
        ("the fixed-width parser broke", False),
        ("prefixed columns are missing", False),
        ("Not fixed. But the other bug is fixed.", True),
    ],
)
def test_has_closing_phrase(text: str, closes: bool) -> None:
    assert has_closing_phrase(text, DEFAULT_RULES.phrases) is closes


@pytest.mark.parametrize(
    ("text", "substantive"),
    [
        ("thanks!", False),
        ("+1", False),
        ("", False),
        ("Thank you so much, that was quick!", False),
        ("ok will try", False),
        (ANSWER, True),
        ("Thanks - the real cause is the missing index on orders.customer_id; add it.", True),
    ],
)
def test_is_substantive(text: str, substantive: bool) -> None:
    assert is_substantive(text) is substantive


@pytest.mark.parametrize(
    ("problem", "title"),
    [
        ("Hi team,\nThe sync fails with OOM. Logs below.", "The sync fails with OOM."),
        ("Hey all!\n\n```panic: nil map```", "panic: nil map"),
        ("Hi, the sync fails. Why?", "Hi, the sync fails."),
        ("Hello", "Hello"),
    ],
)
def test_title_skips_greetings(problem: str, title: str) -> None:
    assert title_of(problem) == title


@pytest.mark.parametrize(
    ("problem", "title"),
    [
        ("*Customer:* Globex\n*Product:* API\n*Problem:* Bulk import throttled at 100 calls. "
         "Need more.", "Bulk import throttled at 100 calls."),
        ("*Customer:*\nInitech\n*Problem:*\nUsers get SAML_AUDIENCE_MISMATCH after the "
         "cert rotation", "Users get SAML_AUDIENCE_MISMATCH after the cert rotation"),
        ("Hi team,\nSync fails with ERR_SYNC_409. Started today.", "Sync fails with ERR_SYNC_409."),
    ],
)
def test_title_prefers_a_forms_problem_field(problem: str, title: str) -> None:
    assert title_of(problem) == title
