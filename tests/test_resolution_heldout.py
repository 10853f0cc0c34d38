"""Rules added for what the third held-out set showed: a thread written for each."""

from __future__ import annotations

from test_resolution_precision import ALICE, ASKER, BOB, thread

from casematch.resolution import resolve_thread


def test_thanks_but_still_cannot_is_not_resolved() -> None:
    result = resolve_thread(thread(
        (ASKER, "Which channel does the billing team answer in?"),
        (ALICE, "Search for it with `/channels billing` in the sidebar."),
        (ASKER, "Well thanks for your help, but I still can't find it"),
    ))
    assert not result.is_case


def test_thanks_that_still_works_is_resolved() -> None:
    # "still" alone is no failure: the thanks stands.
    fix = "Search for it with `/channels billing` in the sidebar."
    result = resolve_thread(thread(
        (ASKER, "Which channel does the billing team answer in?"),
        (ALICE, fix),
        (ASKER, "thanks, found it, still a bit hidden"),
    ))
    assert (result.is_case, result.resolution) == (True, fix)


def test_the_asker_posting_the_problem_again_takes_the_thanks_back() -> None:
    problem = "The screen resolution only offers 800x600 and 640x480 on my laptop; how do I fix it?"
    result = resolve_thread(thread(
        (ASKER, problem),
        (ALICE, "See the resolution guide: https://example.com/wiki/resolution"),
        (ASKER, "thanks, I'll have a go at that"),
        (ASKER, problem),
    ))
    assert not result.is_case


def test_anyone_after_the_thanks_takes_it_back() -> None:
    result = resolve_thread(thread(
        (ASKER, "The screen resolution only offers 800x600 on my laptop"),
        (ALICE, "See the resolution guide: https://example.com/wiki/resolution"),
        (ASKER, "thanks"),
        (ASKER, "anyone?"),
    ))
    assert not result.is_case


def test_gotcha_confirms_the_answer() -> None:
    fix = "There are a couple of exceptions; packages that lived elsewhere stay where they were."
    result = resolve_thread(thread(
        (ASKER, "Are all the bundled plugins hosted under the main organisation?"),
        (ALICE, fix),
        (ASKER, "gotcha"),
    ))
    assert (result.is_case, result.resolution) == (True, fix)


def test_yes_and_what_the_asker_will_do_accepts_the_answer() -> None:
    explanation = "The provider blocks that address range; it is not something we can change."
    workaround = "If you have access to a VPN, that is the easiest way round it."
    result = resolve_thread(thread(
        (ASKER, "The package site times out, so install fails"),
        (ALICE, "Are you in one of the blocked regions?"),
        (ASKER, "yep"),
        (BOB, explanation),
        (BOB, workaround),
        (ASKER, "yeah, looks like a VPN is the option to go"),
    ))
    assert result.is_case
    assert result.resolution == f"{explanation}\n\n{workaround}"


def test_yes_with_a_reservation_accepts_nothing() -> None:
    result = resolve_thread(thread(
        (ASKER, "The package site times out, so install fails"),
        (BOB, "If you have access to a VPN, that is the easiest way round it."),
        (ASKER, "yeah, a VPN would do it but the office blocks those"),
    ))
    assert not result.is_case


def test_ok_steps_over_a_helpers_thanks_to_another_helper() -> None:
    fix = "No install is running, so run the same command again with sudo."
    result = resolve_thread(thread(
        (ASKER, "E: Sub-process /usr/bin/dpkg returned an error code (1) on install"),
        (ALICE, fix),
        (BOB, "Alice: cheers"),
        (ASKER, "ok i'll try"),
    ))
    assert (result.is_case, result.resolution) == (True, fix)


def test_the_asker_discovering_the_trick_is_their_own_fix() -> None:
    fix = ("Ok I've discovered that the trick is to click the lock icon (or press F2) to keep "
           "the popup open; then clicking identifiers updates it")
    result = resolve_thread(thread(
        (ASKER, "Clicking identifiers doesn't change the documentation popup for me"),
        (ASKER, fix),
        (ALICE, "oh! yes, that is what I did too"),
    ))
    assert (result.is_case, result.resolution) == (True, fix)


def test_thanks_and_a_negation_that_is_no_failure_still_confirms() -> None:
    # "still haven't touched it" says nothing about the answer failing.
    fix = "A DSL is a library whose forms read like the problem's own vocabulary."
    result = resolve_thread(thread(
        (ASKER, "How is a DSL different from a set of well-named functions?"),
        (ALICE, fix),
        (ASKER, "thanks a lot! I still haven't touched a Lisp, so I'll understand it by using one"),
    ))
    assert (result.is_case, result.resolution) == (True, fix)


def test_a_yes_followed_by_chat_accepts_nothing() -> None:
    # A yes that goes on about something else, with nothing the asker will do, is chat.
    result = resolve_thread(thread(
        (ASKER, "Has anyone set up the terminal client for this workspace?"),
        (ALICE, "No, I keep it in a browser tab; the desktop client eats memory."),
        (ASKER, "yeah. the desktop client is certainly the problem here"),
    ))
    assert not result.is_case


def test_someone_who_opens_by_thanking_is_in_another_conversation() -> None:
    # Chat split into conversations by machine: Bob thanks someone for help of his own and
    # goes on about it; the asker's "thx" does not make that an answer to the question.
    result = resolve_thread(thread(
        (ASKER, "can somebody recommend a library for typescript that does json decoding?"),
        (BOB, "Thanks. If lists were supported, I could probably do it with a uniform array:\n"
              "```\nuniform vec2 offsets[20];\n```"),
        (BOB, "It doesn't get around looping over the array for each vertex, but it's less "
              "copy pasting"),
        (ASKER, "thx"),
    ))
    assert not result.is_case
    assert next(c.rejected for c in result.candidates if c.index == 1) == (
        "its author opened by thanking for help of their own: another conversation")


def test_a_helper_who_thanks_for_the_report_still_answers() -> None:
    # "Thanks for the report" is a helper's courtesy, not thanks for help of their own.
    fix = "Thanks for the report! I've pushed a repair; update to 2.4.1 and it is gone."
    result = resolve_thread(thread(
        (ASKER, "The exporter crashes on empty channels"),
        (ALICE, fix),
        (ASKER, "works now, thanks"),
    ))
    assert (result.is_case, result.resolution) == (True, fix)
