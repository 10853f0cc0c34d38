"""Recovering conversations from an unthreaded channel, one signal at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from casematch.cases import Message
from casematch.sources.conversations import (
    DEFAULT_OPTIONS,
    ConversationOptions,
    split_conversations,
)

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def msg(author: str, text: str, seconds: float | None, *, bot: bool = False,
        author_id: str = "") -> Message:
    when = None if seconds is None else T0 + timedelta(seconds=seconds)
    return Message(text=text, author=author, author_id=author_id or author, created_at=when,
                   is_bot=bot)


def busy(start: float) -> list[Message]:
    """Chatter from five other people, so the channel is not a quiet one-on-one."""
    return [msg(f"bystander{i}", f"unrelated remark number {i}", start + i) for i in range(5)]


def assert_partition(groups: list[list[int]], n: int) -> None:
    flat = [i for g in groups for i in g]
    assert sorted(flat) == list(range(n))
    assert all(g == sorted(g) for g in groups)
    assert [g[0] for g in groups] == sorted(g[0] for g in groups)


def group_of(groups: list[list[int]], index: int) -> list[int]:
    return next(g for g in groups if index in g)


def test_empty_and_single() -> None:
    assert split_conversations([]) == []
    assert split_conversations([msg("ana", "how do I rotate the api key?", 0)]) == [[0]]


def test_a_long_gap_splits_an_otherwise_continuous_channel() -> None:
    stream = [
        msg("ana", "how do I rotate the api key?", 0),
        msg("ben", "Settings > API > Rotate, then restart the workers", 60),
        msg("ana", "that did it, thanks", 120),
        msg("carl", "why does the export stop at 10k rows?", 9 * 3600),
        msg("ben", "the free plan caps exports at 10k", 9 * 3600 + 90),
    ]
    groups = split_conversations(stream)
    assert groups == [[0, 1, 2], [3, 4]]


def test_quiet_channel_answers_need_no_mention() -> None:
    # Two people, one exchange at a time: the unaddressed answer continues the question.
    stream = [msg("ana", "is the staging db down?", 0), msg("ben", "restarting it now", 45)]
    assert split_conversations(stream) == [[0, 1]]
    # The same answer in a busy channel, from someone not yet in the conversation and
    # addressing nobody, is not evidence of anything: it starts its own conversation.
    noisy = [*busy(0), msg("ana", "is the staging db down?", 10),
             msg("ben", "restarting it now", 55)]
    groups = split_conversations(noisy)
    assert group_of(groups, 6) == [6]
    # Without the quiet-channel signal the one-on-one splits too: the signal is what joins.
    alone = ConversationOptions(quiet_continuation=0.0)
    assert split_conversations(stream, alone) == [[0], [1]]


def test_mention_joins_an_older_conversation_across_an_interleaving_one() -> None:
    stream = [
        *busy(0),
        msg("ana", "how do I reset my password?", 10),                  # 5
        msg("ben", "anyone know why docker fails to start?", 20),       # 6
        msg("carl", "@ana go to Settings > Security > Reset", 30),      # 7: Slack style
        msg("dora", "ben: check journalctl -u docker", 40),             # 8: IRC style
        msg("ana", "@carl found it, thanks", 50),                       # 9
    ]
    groups = split_conversations(stream)
    assert_partition(groups, len(stream))
    assert group_of(groups, 5) == [5, 7, 9]
    assert group_of(groups, 6) == [6, 8]
    # The same stream with mentions ignored cannot recover either conversation.
    no_mentions = ConversationOptions(mention_latest=0.0, mention_member=0.0)
    assert group_of(split_conversations(stream, no_mentions), 5) != [5, 7, 9]


def test_slack_display_names_with_spaces_are_mentions() -> None:
    stream = [
        *busy(0),
        msg("Ana Lima", "how do I reset my password?", 10, author_id="U1"),
        msg("ben", "anyone know why docker fails to start?", 20),
        msg("carl", "@Ana Lima go to Settings > Security", 30),
    ]
    assert group_of(split_conversations(stream), 5) == [5, 7]


def test_the_asker_continues_without_addressing_anyone() -> None:
    stream = [
        *busy(0),
        msg("ana", "the build fails with exit code 137", 10),      # 5
        msg("ben", "ana: that is the OOM killer, raise the memory limit", 30),  # 6
        msg("eve", "what is the syntax for cron every 5 minutes?", 40),         # 7
        msg("ana", "raised it to 4g, same error", 60),              # 8: no mention
    ]
    groups = split_conversations(stream)
    assert group_of(groups, 5) == [5, 6, 8]
    assert group_of(groups, 7) == [7]
    no_continuity = ConversationOptions(author_latest=0.0, asker=0.0)
    assert group_of(split_conversations(stream, no_continuity), 8) == [8]


def test_a_quote_links_to_the_quoted_message() -> None:
    stream = [
        *busy(0),
        msg("ana", "how do I reset my password?", 10),
        msg("ben", "anyone know why docker fails to start?", 20),
        msg("carl", "> how do I reset my password?\nSettings > Security", 30),
    ]
    assert group_of(split_conversations(stream), 5) == [5, 7]


def test_bot_posts_are_separate_incidents_that_people_can_answer() -> None:
    stream = [
        msg("alerts", "CPU above 95% on web-1", 0, bot=True),
        msg("alerts", "Disk above 90% on db-2", 60, bot=True),
        msg("ana", "clearing old WAL files on db-2 now", 90),
    ]
    assert split_conversations(stream) == [[0], [1, 2]]


def test_identical_timestamps() -> None:
    stream = [
        *busy(0),
        msg("ana", "how do I reset my password?", 100),
        msg("ben", "anyone know why docker fails to start?", 100),
        msg("carl", "ana: Settings > Security", 100),
        msg("dora", "ben: check journalctl -u docker", 100),
    ]
    groups = split_conversations(stream)
    assert_partition(groups, len(stream))
    assert group_of(groups, 5) == [5, 7]
    assert group_of(groups, 6) == [6, 8]


def test_missing_times_borrow_their_neighbours() -> None:
    # No times at all: order and mentions still decide.
    untimed = [
        *(msg(f"bystander{i}", "noise", None) for i in range(5)),
        msg("ana", "how do I reset my password?", None),
        msg("ben", "anyone know why docker fails to start?", None),
        msg("carl", "ana: Settings > Security", None),
    ]
    groups = split_conversations(untimed)
    assert_partition(groups, len(untimed))
    assert group_of(groups, 5) == [5, 7]
    # A message with no time between two timed ones is not treated as infinitely far away.
    mixed = [msg("ana", "is the staging db down?", None),
             msg("ben", "restarting it now", 30), msg("ana", "thanks!", None)]
    assert split_conversations(mixed) == [[0, 1, 2]]


def test_out_of_order_times_count_as_no_gap() -> None:
    stream = [msg("ana", "is the staging db down?", 100), msg("ben", "restarting it", 40)]
    assert split_conversations(stream) == [[0, 1]]


def test_idle_conversations_cannot_be_joined_after_the_window() -> None:
    stream = [msg("ana", "is the staging db down?", 0),
              msg("ben", "ana: it is back", DEFAULT_OPTIONS.window + 60)]
    assert split_conversations(stream) == [[0], [1]]


def test_every_index_once_on_a_long_interleaved_stream() -> None:
    stream = []
    for k in range(300):
        asker, helper = f"user{k % 17}", f"helper{k % 5}"
        stream.append(msg(asker, f"question {k}: why does job {k} fail?", k * 20))
        stream.append(msg(helper, f"{asker}: look at the log of job {k}", k * 20 + 7))
    groups = split_conversations(stream)
    assert_partition(groups, len(stream))
    # Most answers land with their question (they address its asker right away).
    together = sum(group_of(groups, 2 * k) == group_of(groups, 2 * k + 1) for k in range(300))
    assert together >= 270
