from __future__ import annotations

import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from slack_fixtures import msg, reaction, reply, root, write_export, zip_folder

from casematch.cases import Case, Message, Visibility
from casematch.errors import InputError
from casematch.sources import ReadOptions, ReadReport, read_source
from casematch.sources.slack_export import read_slack_export

T0 = "1700000000.000100"  # 2023-11-14 22:13:20 UTC
ANSWER = "Set `max_connections` to 200 and restart <@U1>'s pooler :tada:"


def read(path: Path, **options: Any) -> tuple[list[Case], ReadReport]:
    report = ReadReport()
    cases = list(read_slack_export(path, options=ReadOptions(**options), report=report))
    return cases, report


def help_export(folder: Path) -> Path:
    """A channel with a thread split over three days, a lone message and housekeeping."""
    return write_export(folder, {"help": {
        "2023-11-14": [
            msg("1699999000.000001", "<@U1> has joined the channel", subtype="channel_join"),
            root(T0, "DB connections exhausted &amp; app is down", replies=4),
            reply("1700000100.000200", T0, "Also seeing it on staging.", user="U1"),
            msg("1700000200.000300", "anyone around?"),
        ],
        "2023-11-15": [
            reply("1700086400.000400", T0, ANSWER, reactions=reaction("white_check_mark")),
        ],
        "2023-11-17": [
            reply("1700259200.000500", T0, "fixed, thanks!", user="U1"),
            reply("1700259300.000600", T0, "glad it worked", user="U3"),
        ],
    }})


def test_thread_across_day_files_becomes_one_resolved_case(tmp_path: Path) -> None:
    cases, report = read(help_export(tmp_path / "export"))
    assert len(cases) == 1
    case = cases[0]
    assert case.id == f"slack:CHELP:{T0}"
    assert (case.source, case.channel, case.url) == ("slack", "help", "")
    assert case.problem == "DB connections exhausted & app is down\n\nAlso seeing it on staging."
    assert case.title == "DB connections exhausted & app is down"
    assert case.resolved
    assert case.resolution == "Set `max_connections` to 200 and restart @Ann's pooler"
    assert case.created_at == datetime.fromtimestamp(1700000000.0001, tz=UTC)
    assert case.resolved_at == datetime.fromtimestamp(1700086400.0004, tz=UTC)
    assert case.visibility == Visibility()
    assert [(m.author, m.text) for m in case.messages] == [
        ("Ann", "DB connections exhausted & app is down"),
        ("Ann", "Also seeing it on staging."),
        ("Bob Helper", "Set `max_connections` to 200 and restart @Ann's pooler"),
        ("Ann", "fixed, thanks!"),
        ("cy", "glad it worked"),
    ]
    assert case.messages[2] == Message(
        text="Set `max_connections` to 200 and restart @Ann's pooler", author="Bob Helper",
        author_id="U2", created_at=datetime.fromtimestamp(1700086400.0004, tz=UTC),
        reactions=("white_check_mark",), ts="1700086400.000400",
    )
    assert report.skipped == {"channel_join": 1, "no replies": 1}
    assert report.problems == []


def test_phrase_resolution_and_unresolved_thread(tmp_path: Path) -> None:
    t1, t2 = "1700000000.000001", "1700000500.000001"
    folder = write_export(tmp_path / "e", {"help": {"2023-11-14": [
        root(t1, "Login page returns 502 for everyone"),
        reply("1700000010.000001", t1, "The ingress cert expired; I renewed it just now."),
        reply("1700000020.000001", t1, "Solved, thank you!", user="U1"),
        root(t2, "Exports are slow since Monday"),
        reply("1700000510.000001", t2, "Looking into it, can you share the job id?"),
        reply("1700000520.000001", t2, "still not solved", user="U1"),
    ]}})
    cases, _ = read(folder)
    by_ts = {c.id.rsplit(":", 1)[1]: c for c in cases}
    assert by_ts[t1].resolved
    assert by_ts[t1].resolution == "The ingress cert expired; I renewed it just now."
    assert by_ts[t1].resolved_at == datetime.fromtimestamp(1700000020.000001, tz=UTC)
    assert (by_ts[t2].resolved, by_ts[t2].resolution, by_ts[t2].resolved_at) == (False, "", None)


@pytest.mark.parametrize("domain", ["acme", "acme.slack.com", "https://acme.slack.com/", "ACME"])
def test_permalink_with_domain(tmp_path: Path, domain: str) -> None:
    cases, _ = read(help_export(tmp_path / "e"), slack_domain=domain)
    assert cases[0].url == "https://acme.slack.com/archives/CHELP/p1700000000000100"


@pytest.mark.parametrize("prefix", ["", "acme Slack export Nov 2023/"])
def test_zip_reads_like_the_folder(tmp_path: Path, prefix: str) -> None:
    folder = help_export(tmp_path / "e")
    archive = zip_folder(folder, tmp_path / "export.zip", prefix=prefix)
    from_zip, zip_report = read(archive)
    from_folder, folder_report = read(folder)
    assert from_zip == from_folder
    assert zip_report.to_dict() == folder_report.to_dict()


def test_truncated_zip_is_an_input_error_naming_the_file(tmp_path: Path) -> None:
    archive = zip_folder(help_export(tmp_path / "e"), tmp_path / "export.zip")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(InputError) as info:
        read(archive)
    assert info.value.path == str(archive)
    assert "truncated" in str(info.value)


def test_corrupt_member_in_a_zip_is_reported_and_the_rest_read(tmp_path: Path) -> None:
    folder = help_export(tmp_path / "e")
    archive = zip_folder(folder, tmp_path / "export.zip", compression=zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    spot = data.index(b"fixed, thanks!")
    data[spot] = ord("F")  # the stored CRC no longer matches
    archive.write_bytes(bytes(data))
    cases, report = read(archive)
    assert len(cases) == 1
    assert len(cases[0].messages) == 3  # the 2023-11-17 replies are lost
    assert len(report.problems) == 1
    assert "help/2023-11-17.json" in report.problems[0]
    assert "CRC" in report.problems[0]


@pytest.mark.parametrize(
    ("content", "reason"),
    [("[{\"ts\": ", "invalid JSON: Expecting value"), (b"[\xff\xfe]", "invalid JSON: not UTF-8"),
     ('{"not": "a list"}', "invalid JSON: expected a list")],
)
def test_bad_day_file_is_reported_and_the_rest_read(
    tmp_path: Path, content: str | bytes, reason: str
) -> None:
    folder = help_export(tmp_path / "e")
    target = folder / "help" / "2023-11-16.json"
    target.write_bytes(content if isinstance(content, bytes) else content.encode())
    cases, report = read(folder)
    assert len(cases) == 1 and cases[0].resolved
    assert report.problems[0].startswith(f"{target}: {reason}")
    assert report.skipped["unreadable day file"] == 1


def test_message_without_ts_is_skipped_with_a_note(tmp_path: Path) -> None:
    folder = write_export(tmp_path / "e", {"help": {"2023-11-14": [
        {"type": "message", "user": "U1", "text": "no ts here"},
        root(T0, "Question"), reply("1700000001.000001", T0, "An answer that is long enough."),
    ]}})
    cases, report = read(folder)
    assert len(cases) == 1
    assert report.skipped["no ts"] == 1
    assert report.problems == [f"{folder / 'help' / '2023-11-14.json'}: "
                               "a message without 'ts' was skipped"]


def test_workflow_bot_and_attachment_posts(tmp_path: Path) -> None:
    workflow_blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Support request"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Customer*: Globex\n"
                                                               "*Issue*: SSO loop on login"}},
    ]
    t1, t2 = T0, "1700000900.000001"
    folder = write_export(tmp_path / "e", {"help": {"2023-11-14": [
        root(t1, "", user="", bot_id="B1", subtype="bot_message", blocks=workflow_blocks,
             bot_profile={"name": "Workflow Builder"}),
        reply("1700000010.000001", t1, "Clear the IdP session cookie; it is a known bug.",
              poster="B1", reactions=reaction("white_check_mark")),
        root(t2, "", user="", bot_id="B2", username="alertbot",
             attachments=[{"title": "Disk full on db-1", "fields": [
                 {"title": "Host", "value": "db-1"}]}]),
        reply("1700000910.000001", t2, "Rotated the logs, 40% free now. Resolved.", user="U3"),
    ]}})
    cases, _ = read(folder)
    workflow, alert = cases
    assert workflow.problem == "Support request\n*Customer*: Globex\n*Issue*: SSO loop on login"
    assert workflow.messages[0].is_bot and workflow.messages[0].author == "Workflow Builder"
    assert workflow.resolution == "Clear the IdP session cookie; it is a known bug."
    assert alert.problem == "Disk full on db-1\nHost: db-1"
    assert (alert.messages[0].author, alert.messages[0].author_id) == ("alertbot", "B2")
    assert alert.resolved and alert.resolution == "Rotated the logs, 40% free now. Resolved."


def test_files_are_named_in_the_text(tmp_path: Path) -> None:
    folder = write_export(tmp_path / "e", {"help": {"2023-11-14": [
        root(T0, "Crash on start", files=[{"name": "trace.txt", "title": "Stack trace"}]),
        reply("1700000001.000001", T0, "", files=[{"name": "fix.patch"}]),
    ]}})
    (case,), _ = read(folder)
    assert case.problem == "Crash on start\n[file: Stack trace]"
    assert case.messages[1].text == "[file: fix.patch]"


def test_deleted_root_keeps_the_thread_only_with_poster_text(tmp_path: Path) -> None:
    t1, t2 = T0, "1700000900.000001"
    tombstone = {"subtype": "tombstone", "hidden": True, "text": "This message was deleted."}
    folder = write_export(tmp_path / "e", {"help": {"2023-11-14": [
        msg(t1, thread_ts=t1, reply_count=2, user="USLACKBOT", **tombstone),
        reply("1700000010.000001", t1, "Forgot to say: it only fails on Windows.", user="U1"),
        reply("1700000020.000001", t1, "Install the 2019 VC++ runtime; that's the cause."),
        msg(t2, thread_ts=t2, reply_count=1, user="USLACKBOT", **tombstone),
        reply("1700000910.000001", t2, "Which version are you on?"),
    ]}})
    cases, report = read(folder)
    assert [c.id for c in cases] == [f"slack:CHELP:{t1}"]
    assert cases[0].problem == "Forgot to say: it only fails on Windows."
    assert cases[0].created_at == datetime.fromtimestamp(float(t1), tz=UTC)
    assert [m.author_id for m in cases[0].messages] == ["U1", "U2"]
    assert report.skipped["deleted message"] == 2
    assert report.skipped["thread root missing, no problem text"] == 1


def test_private_channel_keeps_its_members(tmp_path: Path) -> None:
    folder = write_export(
        tmp_path / "e",
        {"secret-ops": {"2023-11-14": [
            root(T0, "VPN down"), reply("1700000001.000001", T0, "Restarted the VPN gateway."),
        ]}},
        channels=[],
        groups=[{"id": "G1", "name": "secret-ops", "members": ["U1", "U2"]}],
    )
    (case,), _ = read(folder)
    assert case.id == f"slack:G1:{T0}"
    assert case.visibility == Visibility(private=True, members=("U1", "U2"))


def test_broadcast_reply_counts_once_and_dms_are_ignored(tmp_path: Path) -> None:
    broadcast = reply("1700000001.000001", T0, "Rolled back to v1.2 everywhere.",
                      subtype="thread_broadcast")
    folder = write_export(tmp_path / "e", {"help": {
        "2023-11-14": [root(T0, "Deploy broke checkout"), broadcast],
        "2023-11-15": [broadcast],
    }})
    (folder / "dms.json").write_text(json.dumps([{"id": "D1", "members": ["U1", "U2"]}]))
    (folder / "D1").mkdir()
    (folder / "D1" / "2023-11-14.json").write_text(
        json.dumps([root(T0, "a direct message"), reply("1700000002.000001", T0, "a reply")]))
    cases, _ = read(folder)
    assert [c.channel for c in cases] == ["help"]
    assert [m.text for m in cases[0].messages] == [
        "Deploy broke checkout", "Rolled back to v1.2 everywhere."]


def test_legacy_export_without_threads(tmp_path: Path) -> None:
    # 2016-era: no thread_ts anywhere, no users.json, bot posts with attachments.
    folder = write_export(tmp_path / "e", {"general": {"2016-01-14": [
        msg("1452837318.000002", "<@U0A|ann> has joined", subtype="channel_join"),
        msg("1452837400.000003", "what's the wifi password?"),
        msg("1452837500.000004", "The printer on floor 2 jams: open tray B and reseat it",
            reactions=reaction("heavy_check_mark")),
        {"type": "message", "subtype": "bot_message", "bot_id": "B0", "text": "",
         "attachments": [{"fallback": "[repo] 1 new commit"}], "ts": "1452837600.000005"},
    ]}}, users=None)
    cases, report = read(folder)
    assert [(c.problem, c.resolved, c.resolution) for c in cases] == [
        ("The printer on floor 2 jams: open tray B and reseat it", True, "")]
    assert report.skipped == {"channel_join": 1, "unthreaded message": 2}


def test_conversations_in_an_unthreaded_channel_become_cases(tmp_path: Path) -> None:
    # No thread_ts: the question, its answer and the thanks are recovered as one conversation
    # (the asker continues, the answer follows within minutes); the unrelated post later on
    # stays alone and is no case.
    folder = write_export(tmp_path / "e", {"general": {"2016-01-14": [
        msg("1452837400.000001", "VPN drops every hour since the upgrade, any idea?", user="U1"),
        msg("1452837460.000002", "Raise the IKE lifetime to 8h in the client profile",
            user="U2"),
        msg("1452837520.000003", "thanks, that worked!", user="U1"),
        msg("1452859000.000004", "lunch order closes at noon", user="U3"),
    ]}}, users=None)
    cases, report = read(folder)
    assert [(c.id, c.resolved, c.resolution) for c in cases] == [
        ("slack:CGENERAL:1452837400.000001", True,
         "Raise the IKE lifetime to 8h in the client profile")]
    assert [m.text for m in cases[0].messages][-1] == "thanks, that worked!"
    assert report.skipped["unthreaded message"] == 1


def test_not_an_export(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=re.escape("neither channels.json nor groups.json")):
        read(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=re.escape("expected a folder or a .zip")):
        read(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="no such file"):
        read(tmp_path / "missing")
    bad = write_export(tmp_path / "bad", {})
    (bad / "channels.json").write_text("{oops")
    with pytest.raises(InputError, match=re.escape("channels.json: invalid JSON")):
        read(bad)


def test_read_source_detects_and_counts(tmp_path: Path) -> None:
    archive = zip_folder(help_export(tmp_path / "e"), tmp_path / "export.zip")
    report = ReadReport()
    cases = list(read_source(archive, report=report))
    assert [c.id for c in cases] == [f"slack:CHELP:{T0}"]
    assert (report.read, report.resolved) == (1, 1)
