"""Rules that keep non-cases out and point thanks at the answer: a thread written for each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from casematch.cases import Message
from casematch.resolution import Candidate, resolve_thread

ASKER, ALICE, BOB = "U_ASK", "U_ALICE", "U_BOB"
NAMES = {ASKER: "Dana", ALICE: "Alice", BOB: "Bob"}
START = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def thread(*turns: tuple[str, str]) -> list[Message]:
    return [Message(text=text, author=NAMES[who], author_id=who,
                    created_at=START + timedelta(minutes=n), ts=f"17830000{n:02d}.000100")
            for n, (who, text) in enumerate(turns)]


def rejected(candidates: tuple[Candidate, ...], index: int) -> str | None:
    return next(c.rejected for c in candidates if c.index == index)


def test_yes_to_the_helpers_own_question_confirms_no_fix() -> None:
    # The helper asked the asker something; "yes" answers that, it accepts nothing.
    result = resolve_thread(thread(
        (ASKER, "The nightly export job stops at 2 GB"),
        (ALICE, "Are you on the hosted plan? Is the bucket in eu-west-1?"),
        (ALICE, "We had a few reports from that region last week."),
        (ASKER, "yes"),
    ))
    assert not result.is_case


def test_yes_to_a_check_in_question_still_confirms_the_fix() -> None:
    fix = "Raise `max_part_size` to 5GB in the exporter config and rerun it."
    result = resolve_thread(thread(
        (ASKER, "The nightly export job stops at 2 GB"),
        (ALICE, fix),
        (ALICE, "Does that fix it?"),
        (ASKER, "yes"),
    ))
    assert (result.is_case, result.resolution) == (True, fix)


def test_thanks_that_turns_back_to_the_question_keeps_it_open() -> None:
    result = resolve_thread(thread(
        (ASKER, "Where are the retention settings for audit logs documented?"),
        (ALICE, "Audit logs are kept for 90 days; set `audit.retention_days` to change it."),
        (ASKER, "Thanks for the help. To be clear though, I'm wondering if that is documented."),
    ))
    assert not result.is_case


def test_thanks_with_a_follow_up_request_still_confirms() -> None:
    fix = "Set `audit.retention_days` in casematch.toml; the default is 90."
    result = resolve_thread(thread(
        (ASKER, "How do I keep audit logs longer than 90 days?"),
        (ALICE, fix),
        (ASKER, "great, thanks. Could you also add it to the docs?"),
    ))
    assert (result.is_case, result.resolution) == (True, fix)


def test_a_reply_that_asks_everyone_its_own_question_is_no_fix() -> None:
    result = resolve_thread(thread(
        (ASKER, "Can the webhook retry failed deliveries on its own?"),
        (BOB, "I just published the `webhook-relay` package: <https://example.com/relay>. "
              "Does anyone have a better name for it?"),
        (ASKER, "ok, I'll try turning retries on myself"),
    ))
    assert rejected(result.candidates, 1) == "asks everyone a question of its own"
    assert not result.is_case


def test_plus_one_for_someone_elses_command_is_no_fix() -> None:
    command = "Clear the cache with `casematch index --rebuild` and the stale results go."
    result = resolve_thread(thread(
        (ASKER, "Search keeps returning a case I deleted yesterday"),
        (ALICE, command),
        (BOB, "+1 for `casematch index --rebuild`"),
        (ASKER, "Got it"),
    ))
    assert rejected(result.candidates, 2) == "+1 / same here / joined"
    assert (result.is_case, result.resolution) == (True, command)


def test_thanks_after_the_helpers_remarks_points_at_their_answer() -> None:
    answer = "maybe <https://github.com/example/ns-graph> does it?"
    result = resolve_thread(thread(
        (ASKER, "Is there a tool that draws a graph of my namespaces?"),
        (ALICE, answer),
        (ALICE, "I'm good at googling"),
        (ALICE, "I think I used it a while back"),
        (ASKER, "Awesome! Thanks."),
    ))
    assert (result.is_case, result.fix, result.resolution) == (True, (1,), answer)


def test_a_short_command_after_a_diagnosis_stays_the_target() -> None:
    # Remarks are skipped only when they hold nothing of a fix: "restart it" is one.
    result = resolve_thread(thread(
        (ASKER, "The worker pod keeps restarting after the upgrade"),
        (ALICE, "The new image reads its limits from `WORKER_MEMORY`, which your chart lacks."),
        (ALICE, "restart it after setting that"),
        (ASKER, "thanks, that worked"),
    ))
    assert result.is_case
    assert result.fix[-1] == 2


def test_found_a_solution_then_the_pasted_code_is_the_askers_fix() -> None:
    code = "```\n(def ^{:arglists '(^double [])} f (fn ^double [] 1.0))\n```"
    result = resolve_thread(thread(
        (ASKER, "is there any way to add a return type hint to a function made with `fn`?"),
        (ALICE, "Did you know you can put a pre/post map in meta? `(fn ^{:pre [x]} [i] i)`"),
        (ASKER, "ok... found a solution"),
        (ASKER, code),
    ))
    assert (result.is_case, result.fix) == (True, (2, 3))


def test_a_maintainer_saying_they_pushed_a_repair_is_the_fix() -> None:
    result = resolve_thread(thread(
        (ASKER, "The nightly build crashes with `invalid memory reference` in the test suite"),
        (ALICE, "Thanks for the report! I've pushed a repair."),
        (ASKER, "Thanks for the very quick fix!"),
    ))
    assert (result.is_case, result.fix) == (True, (1,))


def test_asking_to_check_the_logs_is_no_fix_even_when_it_led_to_one() -> None:
    result = resolve_thread(thread(
        (ASKER, "After enabling the virtual host every page gives 403 Forbidden"),
        (ALICE, "Did you restart apache after the changes?"),
        (ASKER, "yes I restarted, still 403"),
        (BOB, "check /var/log/apache2 for logs. If nothing stands out, pastebin your config"),
        (ASKER, "cool thanks for being helpful"),
        (ASKER, "sweet I got it working now"),
    ))
    assert rejected(result.candidates, 1) == "a suggestion the asker had already tried"
    assert rejected(result.candidates, 3) == "asks for information"
    assert not result.is_case


def test_a_suggestion_asked_as_a_question_is_the_fix_when_the_asker_had_not_tried_it() -> None:
    result = resolve_thread(thread(
        (ASKER, "After enabling the virtual host every page gives 403 Forbidden"),
        (ALICE, "Did you restart apache after the changes?"),
        (ASKER, "oh no, restarting it fixed it, thanks!"),
    ))
    assert (result.is_case, result.fix) == (True, (1,))


def test_a_reply_addressed_by_a_leading_name_answers_that_person() -> None:
    # IRC and plain chat address people as "name: ..."; an answer to someone else is no fix.
    result = resolve_thread(thread(
        (ASKER, "the fonts in my gnome apps look gross since I switched to fluxbox"),
        (ALICE, "fluxbox is in ubuntu?"),
        (BOB, "Alice: it is in universe, of course, use `apt install fluxbox`"),
        (ALICE, "that makes more sense, I thought universe was unsupported"),
        (ASKER, "woo fluxbox is working perfect"),
    ))
    assert rejected(result.candidates, 2) == "addressed to someone other than the asker"
    # Alice answers Bob's remark to her; the asker's joy explains nothing in the thread.
    assert rejected(result.candidates, 3) == "answers someone else's remark to them, not the asker"
    assert not result.is_case


def test_the_asker_agreeing_to_try_a_question_suggestion_keeps_it() -> None:
    retry = "@Dana can you retry one more time?"
    result = resolve_thread(thread(
        (ASKER, "Applying the table maintenance fails with `terminal session does not exist`"),
        (ALICE, retry),
        (ASKER, "Yes sure"),
        (ASKER, "After a few retries it was able to apply the changes, thanks"),
    ))
    assert rejected(result.candidates, 1) is None
