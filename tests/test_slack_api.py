"""The Slack Web API source against a local fake of the Web API (nothing remote)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FakeEncoder
from fake_slack_web import FakeSlackWeb as FakeSlack

from casematch.config import Settings
from casematch.index import CaseIndex
from casematch.sync.reindex import reindex

TOKEN = "xoxb-1234-secret-token-value"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(token=TOKEN, page_size=2)
    fake.add_user("U1", "alice")
    fake.add_user("U2", "bob")
    fake.add_channel("C1", "support")
    fake.add_channel("C2", "secret", private=True, member=False)
    fake.add_channel("C3", "team", private=True, members=("U1", "U2"))
    # Resolved: a reply marked with a check mark holds the fix.
    fake.post("C1", "1700000000.000100", "Okta SAML login loops back to sign-in")
    fake.post("C1", "1700000001.000100", "Fix the Audience URI in Okta", "U2",
              thread_ts="1700000000.000100", reactions=("white_check_mark",))
    # Unresolved so far.
    fake.post("C1", "1700000100.000100", "Android push notifications stopped")
    fake.post("C1", "1700000101.000100",
              "Clear the app cache, then sign out and in again to renew the push token", "U2",
              thread_ts="1700000100.000100")
    # A question nobody answered: no case.
    fake.post("C1", "1700000200.000100", "anyone around?")
    for n in range(3):  # enough threads that history needs several pages
        ts = f"17000003{n:02d}.000100"
        fake.post("C1", ts, f"Invoice {n} shows the wrong VAT rate")
        fake.post("C1", f"17000003{n:02d}.000200", "Set the VAT id in billing settings",
                  "U2", thread_ts=ts, reactions=("white_check_mark",))
    fake.post("C3", "1700000400.000100", "Private: SSO for the admin console")
    fake.post("C3", "1700000401.000100", "Enable SCIM first, then SSO", "U2",
              thread_ts="1700000400.000100", reactions=("white_check_mark",))
    yield fake
    fake.close()


def settings_for(tmp_path: Path, slack: FakeSlack, token: str = TOKEN,
                 extra: str = "") -> Settings:
    config = tmp_path / "casematch.toml"
    config.write_text(
        '[index]\npath = "idx"\n[slack]\ndomain = "acme"\nlookback_days = 7\n'
        '[[sources]]\ntype = "slack-api"\nchannels = ["support", "#secret", "C3", "gone"]\n'
        + extra,
        encoding="utf-8",
    )
    return Settings.load(config, env={"SLACK_BOT_TOKEN": token,
                                      "CASEMATCH_SLACK_API_URL": slack.url})


def test_first_run_reads_channels_threads_and_names(tmp_path: Path, slack: FakeSlack) -> None:
    encoder = FakeEncoder()
    result = reindex(settings_for(tmp_path, slack), encoder=encoder)
    assert result.status == "indexed", result.to_dict()
    assert (result.update.added, result.update.skipped_unresolved) == (5, 1)
    problems = result.sources[0].problems
    assert any("#secret is private" in p for p in problems)
    assert any("'gone' not found" in p for p in problems)
    assert len(slack.params("conversations.history")) >= 3  # paginated with next_cursor
    assert any(c.get("cursor") for c in slack.params("conversations.history"))
    with CaseIndex.open(tmp_path / "idx", encoder=encoder) as index:
        case = index.get("slack:C1:1700000000.000100")
        assert case is not None and case.resolved
        assert case.url == "https://acme.slack.com/archives/C1/p1700000000000100"
        assert [m.author for m in case.messages] == ["alice", "bob"]
        private = index.get("slack:C3:1700000400.000100")
        assert private is not None and private.visibility.members == ("U1", "U2")
    assert not slack.params("conversations.history.C2")


def test_second_run_fetches_and_embeds_only_what_changed(tmp_path: Path,
                                                         slack: FakeSlack) -> None:
    settings = settings_for(tmp_path, slack)
    reindex(settings, encoder=FakeEncoder())
    replies_before = len(slack.params("conversations.replies"))

    again = reindex(settings, encoder=FakeEncoder())
    assert again.status == "nothing-to-do" and again.update.embedded == 0
    # Only the unresolved thread is read again (a reply may have gained a check mark).
    assert {c["ts"] for c in slack.params("conversations.replies")[replies_before:]} == {
        "1700000100.000100"}
    replies_before = len(slack.params("conversations.replies"))

    # The unresolved thread gains the fix; a resolved thread is deleted entirely.
    slack.post("C1", "1700000102.000100", "Update to 5.12.2, it re-registers the token",
               "U2", thread_ts="1700000100.000100", reactions=("white_check_mark",))
    for ts in ("1700000301.000200", "1700000301.000100"):
        slack.delete("C1", ts)
    encoder = FakeEncoder()
    third = reindex(settings, encoder=encoder)
    assert (third.update.added, third.update.deleted, third.update.embedded) == (1, 1, 1)
    assert "5.12.2" in encoder.encoded[0]
    refetched = {c["ts"] for c in slack.params("conversations.replies")[replies_before:]}
    assert refetched == {"1700000100.000100"}  # two pages of one thread, nothing else
    with CaseIndex.open(tmp_path / "idx", encoder=encoder) as index:
        assert index.get("slack:C1:1700000301.000100") is None
        assert index.get("slack:C1:1700000100.000100") is not None


def test_deleted_root_with_replies_keeps_the_case_from_its_replies(
        tmp_path: Path, slack: FakeSlack) -> None:
    settings = settings_for(tmp_path, slack)
    reindex(settings, encoder=FakeEncoder())
    slack.delete("C1", "1700000000.000100")  # root has a reply: it becomes a tombstone
    result = reindex(settings, encoder=FakeEncoder())
    # The poster's question is gone, so the thread no longer has a problem text.
    assert result.update.deleted == 1


def test_rate_limit_is_retried_after_retry_after(tmp_path: Path, slack: FakeSlack) -> None:
    slack.rate_limited["conversations.history"] = 1
    result = reindex(settings_for(tmp_path, slack), encoder=FakeEncoder())
    assert result.status == "indexed" and result.update.added == 5
    [limited] = slack.params("conversations.history:429")
    assert limited == slack.params("conversations.history")[0]  # the same request, again


def test_bad_token_fails_without_showing_it(tmp_path: Path, slack: FakeSlack) -> None:
    wrong = "xoxb-9999-wrong-token-value"
    result = reindex(settings_for(tmp_path, slack, token=wrong), encoder=FakeEncoder())
    assert result.status == "failed" and result.exit_code == 1
    error = result.sources[0].error
    assert "invalid_auth" in error and "SLACK_BOT_TOKEN" in error
    assert wrong not in str(result.to_dict()) and wrong not in repr(settings_for(
        tmp_path, slack, token=wrong))


def test_missing_token_names_the_variable(tmp_path: Path, slack: FakeSlack) -> None:
    result = reindex(settings_for(tmp_path, slack, token=""), encoder=FakeEncoder())
    assert "set SLACK_BOT_TOKEN" in result.sources[0].error
    assert not slack.calls


def test_a_check_mark_added_to_a_reply_later_resolves_the_thread(
        tmp_path: Path, slack: FakeSlack) -> None:
    settings = settings_for(tmp_path, slack)
    reindex(settings, encoder=FakeEncoder())
    # The root of the thread does not change: only re-reading the unresolved thread sees it.
    slack.react("C1", "1700000101.000100", "white_check_mark")
    encoder = FakeEncoder()
    result = reindex(settings, encoder=encoder)
    assert (result.update.added, result.update.embedded) == (1, 1)
    assert "renew the push token" in encoder.encoded[0]


def test_without_recheck_a_reaction_on_a_reply_waits_for_a_full_run(
        tmp_path: Path, slack: FakeSlack) -> None:
    settings = settings_for(tmp_path, slack, extra="recheck_unresolved = false\n")
    reindex(settings, encoder=FakeEncoder())
    slack.react("C1", "1700000101.000100", "white_check_mark")
    assert reindex(settings, encoder=FakeEncoder()).status == "nothing-to-do"
    assert reindex(settings, encoder=FakeEncoder(), full=True).update.added == 6


def test_threads_older_than_the_lookback_window_are_not_read_again(
        tmp_path: Path, slack: FakeSlack) -> None:
    settings = settings_for(tmp_path, slack)  # [slack] lookback_days = 7
    assert settings.sources[0].options["lookback_days"] == 7
    reindex(settings, encoder=FakeEncoder())
    ten_days_later = "1700864000.000100"
    slack.post("C1", ten_days_later, "Printer queue stuck")
    slack.post("C1", "1700864001.000100", "Restart the spooler", "U2",
               thread_ts=ten_days_later, reactions=("white_check_mark",))
    assert reindex(settings, encoder=FakeEncoder()).update.added == 1
    # The old unresolved thread is resolved now, but its root left the 7-day window.
    slack.post("C1", "1700864100.000100", "Update to 5.12.2", "U2",
               thread_ts="1700000100.000100", reactions=("white_check_mark",))
    assert reindex(settings, encoder=FakeEncoder()).status == "nothing-to-do"
    oldest = [c["oldest"] for c in slack.params("conversations.history") if c["channel"] == "C1"]
    assert oldest[-1] == "1700259201.000100"  # the newest ts seen, less 7 days
