"""The responder's state on SQLite and on PostgreSQL: one set of tests for both stores.

The PostgreSQL cases start a throwaway server (tests/postgres.py) and are skipped, saying
why, where psycopg or the server binaries are absent.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casematch.config import Settings
from casematch.errors import ConfigError
from casematch.slack.settings import SlackSettings
from casematch.slack.state import SlackState, edit_key, open_state, root_id
from tests.postgres import fresh_database, postgres_server

__all__ = ["postgres_server"]  # a fixture, used through pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgres"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """What `open_state` is given: an index folder, or the URL of a fresh database."""
    if request.param == "sqlite":
        yield str(tmp_path / "index")
    else:
        yield fresh_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def state(where: str) -> SlackState:
    return open_state(where)


def test_an_event_is_claimed_once(state: SlackState) -> None:
    assert state.claim_event("Ev1") is True
    assert state.claim_event("Ev1") is False
    assert state.claim_event("Ev2") is True
    assert state.claim_event("") is True  # no id (some test payloads): never deduplicated
    assert state.claim_event("") is True


def test_roots_replies_and_edits(state: SlackState) -> None:
    assert state.claim_root("C1", "100.1", "vpn drops") is True
    assert state.claim_root("C1", "100.1", "vpn drops") is False
    found = state.query(root_id("C1", "100.1"))
    assert found is not None and (found.channel, found.ts, found.text) == ("C1", "100.1",
                                                                          "vpn drops")
    assert found.reply_ts is None
    assert state.settled(found.id, timeout=0.05) == found  # undecided: returned as is
    assert state.apply_edit("C1", "100.1", "vpn drops every minute", "150.0") is True
    state.set_reply("C1", "100.1", "200.2")
    settled = state.settled(found.id)
    assert settled is not None and (settled.text, settled.reply_ts) == (
        "vpn drops every minute", "200.2")
    state.set_reply("C1", "100.1", "")  # silence chosen is a decision too
    assert state.query(found.id).reply_ts == ""  # type: ignore[union-attr]
    assert state.query("C1:999") is None


def test_settled_waits_for_a_reply_posted_meanwhile(state: SlackState) -> None:
    state.claim_root("C1", "1.0", "printer jam")
    timer = threading.Timer(0.2, state.set_reply, ("C1", "1.0", "2.0"))
    timer.start()
    try:
        found = state.settled(root_id("C1", "1.0"), timeout=5)
    finally:
        timer.join()
    assert found is not None and found.reply_ts == "2.0"


def test_an_ephemeral_query_is_replaced_whole(state: SlackState) -> None:
    state.add_query("q1", "C2", "first text", thread_ts="5.5")
    state.add_query("q1", "C3", "second text")
    found = state.query("q1")
    assert found is not None and (found.channel, found.ts, found.text, found.reply_ts) == (
        "C3", "", "second text", None)


def test_feedback_votes_replace_and_unknown_queries_are_refused(state: SlackState) -> None:
    assert state.add_feedback("nope", "case-1", "helpful", "U1") is False
    state.add_query("q1", "C1", "disk full on build agent")
    assert state.add_feedback("q1", "case-1", "helpful", "U1") is True
    assert state.add_feedback("q1", "case-2", "helpful", "U1") is True
    time.sleep(0.01)
    assert state.add_feedback("q1", "case-1", "not_relevant", "U1") is True  # changed mind
    assert state.add_feedback("q1", "case-1", "helpful", "U2") is True
    rows = state.feedback_rows()
    assert sorted((r[0], r[1], r[2], r[3], r[4]) for r in rows) == [
        ("q1", "disk full on build agent", "case-1", "helpful", "U2"),
        ("q1", "disk full on build agent", "case-1", "not_relevant", "U1"),
        ("q1", "disk full on build agent", "case-2", "helpful", "U1"),
    ]
    assert [r[5] for r in rows] == sorted(r[5] for r in rows)  # oldest vote first
    with pytest.raises(Exception, match=r"(?i)check"):
        state.add_feedback("q1", "case-3", "meh", "U1")


def test_pending_work_is_kept_until_done_and_dropped_when_too_old(state: SlackState) -> None:
    assert state.claim_event("Ev1", "message", '{"n": 1}') is True
    assert state.claim_event("Ev1", "message", '{"n": 1}') is False  # a retry adds nothing
    time.sleep(0.02)
    assert state.claim_event("Ev2", "command", '{"n": 2}') is True
    assert state.claim_event("Ev3") is True  # no kind: nothing to redo
    assert state.pending_work(600) == [("Ev1", "message", '{"n": 1}'),
                                       ("Ev2", "command", '{"n": 2}')]  # oldest first
    state.done("Ev1")
    assert state.pending_work(600) == [("Ev2", "command", '{"n": 2}')]
    time.sleep(0.05)
    assert state.pending_work(0.01) == []  # too old to answer now: dropped for good
    assert state.pending_work(600) == []


def test_pending_work_of_another_process_is_taken_over_after_the_grace(where: str) -> None:
    first, second, third = open_state(where), open_state(where), open_state(where)
    grace = 1.0  # the sleeps below keep well away from it: a loaded machine oversleeps
    first.claim_event("Ev1", "message", "{}")
    assert second.pending_work(600, grace) == []  # just claimed: its owner is at it
    for _ in range(3):  # the owner keeps saying so: nobody takes it
        time.sleep(grace / 2)
        first.keep_pending()
        assert second.pending_work(600, grace) == []
    time.sleep(grace * 1.2)  # the owner went quiet (died)
    assert second.pending_work(600, grace) == [("Ev1", "message", "{}")]
    # Taken: a third replica looking now leaves it to the second, while that one keeps it.
    assert third.pending_work(600, grace) == []
    time.sleep(grace / 2)
    second.keep_pending()
    first.keep_pending()  # no longer the owner: keeps nothing
    time.sleep(grace / 2)
    assert third.pending_work(600, grace) == []
    time.sleep(grace * 0.7)
    assert third.pending_work(600, grace) == [("Ev1", "message", "{}")]


def test_edits_apply_newest_last_whatever_their_order(state: SlackState) -> None:
    assert state.apply_edit("C1", "5.0", "unknown root", "6.0") is False
    state.claim_root("C1", "5.0", "first")
    assert state.latest_edit("C1", "5.0") is None
    assert state.apply_edit("C1", "5.0", "third", "1000.1") is True
    # An older edit arriving late, including one older only as a number ("999.5" sorts
    # after "1000.1" as text), and a repeat of the applied one, change nothing.
    assert state.apply_edit("C1", "5.0", "second", "999.5") is False
    assert state.apply_edit("C1", "5.0", "third again", "1000.1") is False
    found = state.query(root_id("C1", "5.0"))
    assert found is not None and found.text == "third"
    assert found.text_hash == hashlib.sha256(b"third").hexdigest()
    assert state.latest_edit("C1", "5.0") == edit_key("1000.1")
    assert state.apply_edit("C1", "5.0", "fourth", "1000.2") is True
    assert state.query(root_id("C1", "5.0")).text == "fourth"  # type: ignore[union-attr]
    assert state.latest_edit("C1", "9.9") is None


def test_a_resumed_claim_takes_a_root_left_undecided(state: SlackState) -> None:
    assert state.claim_root("C1", "7.0", "laptop") is True
    assert state.claim_root("C1", "7.0", "laptop", resuming=True) is True  # never answered
    state.set_reply("C1", "7.0", "8.0")
    assert state.claim_root("C1", "7.0", "laptop", resuming=True) is False
    assert state.claim_root("C1", "7.0", "laptop") is False


def test_prune_blanks_query_text_after_the_retention_period(where: str) -> None:
    state = open_state(where, retention_days=1)
    state.claim_root("C1", "1.0", "old question")
    state.add_query("q1", "C1", "fresh question")
    state.claim_event("Ev1", "message", "{}")
    state.prune(time.time() + 0.5 * 86400)  # within retention: all kept
    assert state.query(root_id("C1", "1.0")).text == "old question"  # type: ignore[union-attr]
    state.prune(time.time() + 2 * 86400)
    old = state.query(root_id("C1", "1.0"))
    # The id, ts, hash and reply stay (dedup and edits need them); the words go.
    assert old is not None and old.text == "" and old.ts == "1.0"
    assert old.text_hash == hashlib.sha256(b"old question").hexdigest()
    assert state.query("q1").text == ""  # type: ignore[union-attr]
    assert state.claim_event("Ev1") is True  # forgotten after a day
    assert state.pending_work(10 * 86400) == []


def test_erase_text_removes_a_deleted_message_from_queries_and_feedback(
        state: SlackState) -> None:
    state.claim_root("C1", "3.0", "my password is hunter2")
    state.claim_root("C1", "4.0", "keep me")
    qid = root_id("C1", "3.0")
    state.add_feedback(qid, "case-1", "helpful", "U1")
    state.add_feedback(root_id("C1", "4.0"), "case-1", "helpful", "U1")
    state.erase_text(qid)
    assert state.query(qid).text == ""  # type: ignore[union-attr]
    assert sorted(r[1] for r in state.feedback_rows()) == ["", "keep me"]


def test_threads_claim_each_event_once(state: SlackState) -> None:
    won: list[str] = []
    lock = threading.Lock()
    ids = [f"Ev{i}" for i in range(100)]

    def claim() -> None:
        for event_id in ids:
            if state.claim_event(event_id):
                with lock:
                    won.append(event_id)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == sorted(ids)


CLAIMER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from casematch.slack.state import open_state

    where, start, out, first = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    state = open_state(where)
    ids = [f"Ev{i:03d}" for i in range(500)]
    # Alternately: this process takes every other event first, then the ones the other
    # process was sent, as Slack's retries to the other replica would arrive.
    order = ids[first::2] + ids[1 - first::2]
    out.with_suffix(".ready").touch()
    while not start.exists():
        time.sleep(0.005)
    won = [event_id for event_id in order if state.claim_event(event_id)]
    out.write_text("\\n".join(won))
    print(len(order), len(won))
""")


def test_two_processes_claim_each_of_500_events_exactly_once(where: str,
                                                             tmp_path: Path) -> None:
    open_state(where)  # the schema exists before either process starts
    start = tmp_path / "start"
    outs = [tmp_path / "won-0", tmp_path / "won-1"]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, where, str(start), str(out),
                               str(first)], env=env, stdout=subprocess.PIPE, text=True)
             for first, out in enumerate(outs)]
    deadline = time.monotonic() + 120
    while not all(out.with_suffix(".ready").exists() for out in outs):  # both connected
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    start.touch()  # releases both at once
    reports = [proc.communicate(timeout=120)[0].split() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    won = [out.read_text().split() for out in outs]
    # Both tried every event; how the wins split depends on scheduling on a busy machine.
    assert [int(report[0]) for report in reports] == [500, 500]
    assert not set(won[0]) & set(won[1])
    assert sorted(won[0] + won[1]) == [f"Ev{i:03d}" for i in range(500)]


def test_every_database_method_of_slackstate_is_ported_to_postgres() -> None:
    from casematch.slack.state_postgres import PostgresState

    public = {name for name, member in inspect.getmembers(SlackState, inspect.isfunction)
              if not name.startswith("_")}
    # settled() only calls query(); everything else touches the database.
    missing = {name for name in public - {"settled"}
               if getattr(PostgresState, name) is getattr(SlackState, name)}
    assert not missing, f"port these to casematch/slack/state_postgres.py: {sorted(missing)}"


def test_open_state_picks_the_store_and_hides_the_password(tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    from casematch.slack.state_postgres import PostgresState

    assert type(open_state(tmp_path)) is SlackState
    assert (tmp_path / "slack.sqlite").exists()
    # A socket folder where no server listens: the error names the place, not the secret.
    url = f"postgresql://bot:s3cret-pw@/casematch?host={tmp_path}&connect_timeout=1"
    with pytest.raises(ConfigError) as raised:
        PostgresState(url)
    assert "s3cret-pw" not in str(raised.value) and "state_url" in str(raised.value)


def test_state_url_is_read_from_the_slack_table(tmp_path: Path) -> None:
    config = tmp_path / "casematch.toml"
    config.write_text('[slack]\nchannels = ["C1"]\nstate_url = "postgresql://db1/casematch"\n')
    slack = SlackSettings.from_settings(Settings.load(config), {})
    assert slack.state_url == "postgresql://db1/casematch"
    config.write_text('[slack]\nchannels = ["C1"]\n')
    assert SlackSettings.from_settings(Settings.load(config), {}).state_url == ""  # SQLite


def test_eval_from_feedback_reads_the_votes_from_state_url(
        tmp_path: Path, postgres_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from click.testing import CliRunner
    from conftest import FakeEncoder, make_case

    from casematch import index as index_module
    from casematch.cli import cli
    from casematch.index import CaseIndex

    encoder = FakeEncoder()
    CaseIndex.build([make_case("slack:C1:1.1", "vpn disconnects every hour", "new profile"),
                     make_case("slack:C1:1.2", "printer jams paper", "replace the fuser")],
                    tmp_path / "idx", encoder=encoder)
    monkeypatch.setattr(index_module, "load_query_encoder", lambda *a, **kw: encoder)
    url = fresh_database(postgres_server)
    shared = open_state(url)
    shared.add_query("q1", "C1", "my vpn keeps disconnecting every hour")
    assert shared.add_feedback("q1", "slack:C1:1.1", "helpful", "U1")
    config = tmp_path / "casematch.toml"
    config.write_text(f'[index]\npath = "idx"\n[slack]\nstate_url = "{url}"\n')
    result = CliRunner().invoke(cli, ["eval", "--from-feedback", "--config", str(config),
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["queries"] == 1  # the vote in PostgreSQL, not SQLite
    assert not (tmp_path / "idx" / "slack.sqlite").exists()
    # No votes there: the error names the database without its password.
    empty = fresh_database(postgres_server).replace("casematch@", "casematch:pw-secret@")
    config.write_text(f'[index]\npath = "idx"\n[slack]\nstate_url = "{empty}"\n')
    result = CliRunner().invoke(cli, ["eval", "--from-feedback", "--config", str(config)])
    assert result.exit_code != 0 and "no Slack feedback" in result.output
    assert "pw-secret" not in result.output
