"""Which reply is the fix, and which threads are cases: each rule on a thread written for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from casematch.cases import Message
from casematch.resolution import (
    ANNOUNCEMENT,
    BOT,
    POLL,
    REVIEW,
    SUPPORT,
    WELCOME,
    Candidate,
    is_acknowledgement,
    resolve_thread,
    says_thanks,
)
from casematch.rules import ResolutionRules

ASKER, ALICE, BOB = "U_ASK", "U_ALICE", "U_BOB"
NAMES = {ASKER: "Shiv Kumar", ALICE: "Alice Smith", BOB: "Bob"}
START = datetime(2026, 6, 24, 9, 0, tzinfo=UTC)


def thread(*turns: tuple[str, str] | tuple[str, str, tuple[str, ...]],
           bot_root: str = "") -> list[Message]:
    """Messages from (who, text[, reactions]) turns; the first is the root."""
    out = []
    for number, turn in enumerate(turns):
        who, text = turn[0], turn[1]
        reactions = turn[2] if len(turn) > 2 else ()
        bot = number == 0 and bool(bot_root)
        out.append(Message(text=text, author=bot_root if bot else NAMES.get(who, who),
                           author_id=who, created_at=START + timedelta(minutes=number),
                           reactions=tuple(reactions), ts=f"17822822{number:02d}.000100",
                           is_bot=bot))
    return out


def rejected(result_candidates: tuple[Candidate, ...], index: int) -> str | None:
    return next(c.rejected for c in result_candidates if c.index == index)


HELM = ("Hi team, `helm upgrade --install olake` fails with: error calling index: reflect: "
        "slice index out of range")
HELM_FIX = ("Hi @Shiv Kumar, we have fixed this issue in helm chart version 0.0.22. Instead of "
            "upgrading to 0.0.21, you can directly upgrade to 0.0.22 and that will fix it.")


def test_the_fix_is_the_upgrade_reply_not_the_checked_thank_you() -> None:
    messages = thread(
        (ASKER, HELM),
        ("U_SHUBHAM", "@Alice Smith cc."),
        (ALICE, HELM_FIX),
        (ASKER, "Ohh my bad, it's working with latest version, thank you.", ("white_check_mark",)),
    )
    result = resolve_thread(messages)
    assert result.is_case and result.resolved
    assert result.fix == (2,)
    assert result.resolution == HELM_FIX
    assert rejected(result.candidates, 3) == "thanks or acknowledgement"
    assert rejected(result.candidates, 1) == "addressed to someone other than the asker"
    assert result.resolved_at == messages[3].created_at
    assert any("reply 3" in s and "reply 2" in s for s in result.signals)


def test_a_check_mark_on_the_askers_thanks_points_at_the_answer_it_acknowledges() -> None:
    answer = ("Full refresh drops the Iceberg table first, so it is unavailable for a short "
              "while; use an append-only job and dedup in the query engine instead.")
    result = resolve_thread(thread(
        (ASKER, "Upsert mode breaks our Snowflake Glue integration, any idea?"),
        (ALICE, "Could you share the error you get in Snowflake?"),
        (ASKER, "It keeps the same table UUID, right?"),
        (ALICE, answer),
        (ASKER, "Thanks a lot for your support.", ("white_check_mark",)),
    ))
    assert (result.is_case, result.fix, result.resolution) == (True, (3,), answer)
    assert rejected(result.candidates, 1) == "asks for information"


def test_a_meeting_link_is_never_the_fix_even_when_checked() -> None:
    result = resolve_thread(thread(
        (ASKER, "The job fails with this error after I set up the source in the UI. How to fix?"),
        (ALICE, "@Shiv Kumar could you please download the logs and share them here?"),
        (ASKER, "here it is [file: logs.tar.gz]"),
        (ALICE, "We are looking into it, will get back shortly."),
        (ALICE, "Can we get on a quick call to debug this issue?"),
        (ASKER, "yes, I'm free now"),
        (ALICE, "Please join here:\nhttps://meet.google.com/fwo-fugn-cyc", ("white_check_mark",)),
    ))
    assert not result.is_case
    assert result.fix == () and result.resolution == ""
    assert result.reason.startswith("no substantive answer")
    reasons = {c.index: c.rejected for c in result.candidates}
    assert reasons[1] == "asks for information"
    assert reasons[3] == "a promise to look into it, not an answer"
    assert reasons[4] == "meeting or call arrangement"
    assert reasons[6] == "meeting or call arrangement"


def test_a_meeting_link_after_the_fix_leaves_the_fix_chosen() -> None:
    fix = "Set `client_max_body_size 64m;` in the nginx config and reload nginx."
    result = resolve_thread(thread(
        (ASKER, "Creating a job fails with 413 Request Entity Too Large"),
        (ALICE, fix),
        (BOB, "Join here if you want to pair: https://zoom.us/j/123"),
        (ASKER, "after I set it to 100mb, it worked!"),
    ))
    assert result.fix == (1,)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("thanks!", "thanks or acknowledgement"),
        ("Perfect, fixed, ty!", "thanks or acknowledgement"),
        (":tada: :raised_hands:", "emoji or mention only"),
        ("+1", "+1 / same here / joined"),
        ("same here", "+1 / same here / joined"),
        ("Joining..", "+1 / same here / joined"),
        ("Is it the same on the staging cluster as well?", "a question"),
        ("Which version of the connector are you running?", "asks for information"),
        ("Can you please share the full logs from the UI download button?",
         "asks for information"),
        ("We'll check this and get back to you soon.", "a promise to look into it, not an answer"),
        ("https://meet.google.com/abc-defg-hij", "meeting or call arrangement"),
        ("@Bob have a look at the retention settings in the admin page",
         "addressed to someone other than the asker"),
        ("hmm, odd", "too short to hold a fix"),
    ],
)
def test_replies_that_are_never_the_fix(reply: str, reason: str) -> None:
    result = resolve_thread(thread((ASKER, "Sync stuck at 0 rows since yesterday, any idea?"),
                                   (ALICE, reply), (ASKER, "thanks!")))
    assert rejected(result.candidates, 1) == reason
    assert not result.is_case


def test_a_suggestion_phrased_as_a_question_can_be_the_fix() -> None:
    result = resolve_thread(thread(
        (ASKER, "Maintenance fails: terminal session does not exist, create session first"),
        (ALICE, "@Shiv Kumar can you retry once more, after restarting the optimizer?"),
        (ASKER, "Sorry, after a few retries it indeed was able to apply the changes"),
    ))
    assert (result.is_case, result.fix) == (True, (1,))


def test_a_short_instruction_is_a_fix_but_a_short_remark_is_not() -> None:
    fixed = resolve_thread(thread((ASKER, "Printer queue stuck"),
                                  (ALICE, "Restart the spooler", ("white_check_mark",))))
    assert (fixed.is_case, fixed.fix) == (True, (1,))
    remark = resolve_thread(thread((ASKER, "Printer queue stuck"),
                                   (ALICE, "weird, hmm", ("white_check_mark",))))
    assert not remark.is_case


def test_diagnosis_then_command_are_both_the_fix_in_order() -> None:
    diagnosis = ("The footer is 106 MB because the `media_url` column stores a base64 video, and "
                 "its min/max statistics land in the Parquet footer.")
    workaround = "or as a workaround raise the thrift limit of your downstream reader"
    result = resolve_thread(thread(
        (ASKER, "Is the parquet file corrupt? Databricks fails to read it"),
        (ALICE, diagnosis),
        (ALICE, workaround),
        (ASKER, "thanks for catching it, good day"),
    ))
    assert result.fix == (1, 2)
    assert result.resolution == f"{diagnosis}\n\n{workaround}"


def test_thanks_naming_a_helper_points_at_that_helpers_reply() -> None:
    bob_fix = "Use the `->*` type constructor for optional arguments (guide section 4.3)."
    result = resolve_thread(thread(
        (ASKER, "How do I declare optional arguments in Typed Racket?"),
        (BOB, bob_fix),
        (ALICE, "In Haskell I'd use Maybe, there is an Option type that looks equivalent."),
        (ASKER, "thank you @Bob!"),
    ))
    assert result.fix == (1,)
    assert any("@-names" in e for e in result.candidates[0].evidence)


def test_thanks_quoting_a_reply_points_at_it() -> None:
    concat = "I use `(concat [:item-1] (when condition? [:item-3]) [:item-5])`"
    result = resolve_thread(thread(
        (ASKER, "Is there a way to splice optional items into a vector literal?"),
        (ALICE, concat),
        (BOB, "`cond->` with conj works too: `(cond-> [:a] c? (conj :b))`"),
        (ASKER, "thanks"),
        (ASKER, "going to give the concat a go for now"),
    ))
    assert result.fix == (1,)


def test_thanks_taken_back_by_still_failing_does_not_resolve() -> None:
    result = resolve_thread(thread(
        (ASKER, "Deletes from Mongo are not applied in Iceberg"),
        (ALICE, "The record is deleted from the main table; with soft delete a row with op "
                "type d also appears, so filter on `_op_type`."),
        (ASKER, "i see thank you!"),
        (ASKER, "Hello, just tested and the record is still there when I delete"),
    ))
    assert not result.is_case
    assert "again" in result.reason
    assert result.candidates[0].evidence[-1].startswith("superseded")


def test_a_later_fix_after_still_failing_is_chosen() -> None:
    later = ("Fixed in v0.7.6: enable REPLICA IDENTITY FULL on the table and upgrade the "
             "source version.")
    result = resolve_thread(thread(
        (ASKER, "LOB columns come through as null during CDC"),
        (ALICE, "As a workaround use append-only mode and dedup on the query side."),
        (ASKER, "thank you so much"),
        (ASKER, "it's still null for that column"),
        (ALICE, later),
        (ASKER, "perfect, that worked"),
    ))
    assert result.fix == (4,)


def test_thanks_ahead_for_help_still_to_come_is_no_sign() -> None:
    result = resolve_thread(thread(
        (ASKER, "The job fails with 413"),
        (ALICE, "Increase `client_max_body_size` in the nginx config to 64mb."),
        (ASKER, "I got another error now, how can I fix it? thanks so much"),
    ))
    assert not result.is_case


def test_did_not_help_is_no_confirmation() -> None:
    result = resolve_thread(thread(
        (ASKER, "The job fails with 413"),
        (ALICE, "Increase `client_max_body_size` in the nginx config to 64mb."),
        (ASKER, "ok, did not help"),
    ))
    assert not result.is_case


def test_the_askers_own_solution_is_the_fix() -> None:
    found = "Nevermind, found it: the logs do show up, but in the default java.log"
    result = resolve_thread(thread(
        (ASKER, "Logging to Stackdriver with tools.logging does nothing, any idea?"),
        (ASKER, found),
        (ASKER, "Thanks!"),
    ))
    assert (result.is_case, result.fix, result.resolution) == (True, (1,), found)


def test_thanks_for_nothing_in_the_thread_is_no_sign() -> None:
    result = resolve_thread(thread(
        (ASKER, "Can anyone point me to an HTTP client for Racket?"),
        (ASKER, "thx"),
    ))
    assert not result.is_case


@pytest.mark.parametrize(
    "thanks",
    [
        "thanks, that worked",  # English
        "ty!",
        "¡Muchas gracias, funcionó!",  # Spanish
        "Valeu, deu certo!",  # Portuguese
        "Merci beaucoup, ça marche",  # French
        "Danke, hat geklappt",  # German
        "Terima kasih, sudah bisa",  # Indonesian
    ],
)
def test_gratitude_in_several_languages(thanks: str) -> None:
    fix = "Set `binlog_row_metadata = FULL` on the MySQL server and restart the sync."
    result = resolve_thread(thread(
        (ASKER, "CDC option is greyed out for my MySQL source"), (ALICE, fix), (ASKER, thanks)))
    assert (result.is_case, result.fix) == (True, (1,))
    assert says_thanks(thanks)
    assert is_acknowledgement(thanks)


def test_extra_gratitude_phrases_come_from_the_rules() -> None:
    messages = thread((ASKER, "CDC option is greyed out for my MySQL source"),
                      (ALICE, "Set `binlog_row_metadata = FULL` and restart the sync."),
                      (ASKER, "sankyu"))
    assert not resolve_thread(messages).is_case
    assert resolve_thread(messages, ResolutionRules(gratitude=("sankyu",))).fix == (1,)


def test_custom_resolution_reaction_marks_the_fix() -> None:
    messages = thread((ASKER, "Workers crash on start"),
                      (ALICE, "Downgrade the worker image to 0.3.5 until the patch is out.",
                       ("solved",)))
    assert not resolve_thread(messages).is_case
    result = resolve_thread(messages, ResolutionRules(reactions=("solved",)))
    assert (result.is_case, result.fix) == (True, (1,))


# ---- which threads are cases ------------------------------------------------------------


def test_a_release_announcement_is_not_a_case_even_with_a_check_mark() -> None:
    result = resolve_thread(thread(
        (ALICE, "OLake Workers v0.3.6 Released\nRelease: https://github.com/x/y/releases/v0.3.6"
                "\n*What's New*\n• fix: drop duplicate label key", ("white_check_mark",)),
        (BOB, "thank you for the merge so quick and the bump"),
    ))
    assert (result.is_case, result.kind) == (False, ANNOUNCEMENT)
    assert "announcement" in result.reason


def test_a_poll_is_not_a_case_even_with_a_checked_opinion() -> None:
    result = resolve_thread(thread(
        ("B_POLL", "When your analytics span multiple query engines, how should your replication "
                   "tool handle delete formats?"),
        (ALICE, "the tool should infer the right format based on the configured engines, with "
                "an override for advanced use cases.", ("white_check_mark",)),
        bot_root="Simple Poll",
    ))
    assert (result.is_case, result.kind) == (False, POLL)


def test_a_welcome_post_is_not_a_case() -> None:
    result = resolve_thread(thread(
        (ALICE, "Welcome @Bob to the community! Tell us what you are building."),
        (BOB, "Thanks! We replicate Postgres into Iceberg with a custom loader today.",
         ("white_check_mark",)),
    ))
    assert (result.is_case, result.kind) == (False, WELCOME)


def test_a_request_to_review_a_pull_request_is_not_a_case() -> None:
    result = resolve_thread(thread(
        (ASKER, "I've opened a PR for issue #912: https://github.com/x/y/pull/1039\nCould "
                "someone take a look when you get a chance?"),
        (ALICE, "1. Please test it end to end first.\n2. Attach a recording of a real sync."),
        (ASKER, "Thanks for the feedback, I will take care of this"),
    ))
    assert (result.is_case, result.kind) == (False, REVIEW)


def test_a_bot_post_is_a_case_when_it_reports_a_problem_or_in_configured_channels() -> None:
    digest = thread(
        ("B_GH", "Weekly digest: 12 commits merged into main, 3 new contributors"),
        (ALICE, "The `sync --resume` change in there breaks our nightly job; pin 2.3.0 for now."),
        (BOB, "thanks, pinned and fixed", ("white_check_mark",)),
        bot_root="GitHub",
    )
    plain = resolve_thread(digest)
    assert (plain.is_case, plain.kind) == (False, BOT)
    configured = resolve_thread(digest, ResolutionRules(bot_case_channels=("eng-feed",)),
                                channel="eng-feed")
    assert (configured.is_case, configured.kind, configured.fix) == (True, SUPPORT, (1,))

    alert = resolve_thread(thread(
        ("B_ALERT", "CPU above 95% on db-1 for 10 minutes"),
        (ALICE, "Killed the runaway `VACUUM FULL`; CPU is back to 20%. Resolved."),
        bot_root="Datadog",
    ))
    assert (alert.is_case, alert.kind, alert.fix) == (True, SUPPORT, (1,))

    intake = thread(
        ("B_WF", "*Customer:* Globex\n*Product:* API\n*Problem:* Bulk import throttled at 100 "
                 "calls per minute"),
        (ALICE, "Raise their plan limit in the admin console: Limits > Bulk > 1000/min.",
         ("white_check_mark",)),
        bot_root="Workflow Builder",
    )
    result = resolve_thread(intake)
    assert (result.is_case, result.kind, result.fix) == (True, SUPPORT, (1,))
    assert result.title == "Bulk import throttled at 100 calls per minute"


def test_a_bot_post_answered_only_by_congratulations_is_not_a_case() -> None:
    result = resolve_thread(thread(
        ("B_WF", "*Request:* New hire onboarding\n*Problem:* none, welcome Bob!"),
        (ALICE, ":tada: congrats!"),
        (BOB, "thank you all!", ("white_check_mark",)),
        bot_root="Workflow Builder",
    ))
    assert not result.is_case


def test_unresolved_thread_says_why() -> None:
    result = resolve_thread(thread(
        (ASKER, "Kafka job has been running for 4 days and does nothing"),
        (ALICE, "Can you share the full logs of the Kafka sync and the worker logs?"),
        (BOB, "Hi, just checking in, are you still facing this issue?"),
    ))
    assert not result.is_case
    assert result.reason.startswith("no sign it was resolved")
    assert [c.index for c in result.candidates] == [1, 2]
    assert all(c.score == 0.0 and c.rejected for c in result.candidates)
