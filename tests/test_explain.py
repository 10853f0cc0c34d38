"""`casematch explain`: whether a thread is a case, which reply is its fix, and why."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from conftest import FakeEncoder
from slack_fixtures import reaction, reply, root, write_export

from casematch.cli import cli
from casematch.config import Settings
from casematch.index import CaseIndex
from casematch.sources import ReadReport, read_source

T0 = "1700000000.000100"


def _index(tmp_path: Path) -> tuple[Path, ReadReport]:
    export = write_export(tmp_path / "export", {"help": {"2023-11-14": [
        root(T0, "helm upgrade fails with 'field is immutable' on 0.0.21", replies=4),
        reply("1700000001.000100", T0, "can you share the values file?", user="U2"),
        reply("1700000002.000100", T0,
              "We fixed this in helm chart version 0.0.22: run `helm upgrade olake "
              "olake/olake --version 0.0.22`", user="U2"),
        reply("1700000003.000100", T0, "Ohh my bad, it's working with latest version, "
              "thank you.", user="U1", reactions=reaction("white_check_mark")),
        reply("1700000004.000100", T0, "Please join here: https://meet.google.com/abc-defg",
              user="U2"),
    ], "2023-11-15": [
        root("1700090000.000100", "OLake Workers v0.3.6 Released! :tada: Highlights: faster "
             "CDC", replies=1),
        reply("1700090001.000100", "1700090000.000100", "congrats team!", user="U2",
              reactions=reaction("white_check_mark")),
    ]}})
    report = ReadReport()
    cases = list(read_source(export, report=report))
    built, _ = CaseIndex.build(cases, tmp_path / "idx", encoder=FakeEncoder())
    built.close()
    return tmp_path / "idx", report


def test_the_fix_is_the_reply_the_thanks_acknowledges_not_the_thanks(tmp_path: Path) -> None:
    index, report = _index(tmp_path)
    # The release announcement was read and passed over, with its id kept for the user.
    assert [why for _, why, _ in report.passed_over] == ["not a support thread (announcement)"]
    result = CliRunner().invoke(cli, ["explain", f"slack:CHELP:{T0}", "--index", str(index),
                                      "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["is_case"] and data["kind"] == "support"
    roles = {m["index"]: m["role"] for m in data["messages"]}
    assert roles[2] == "fix" and roles[0] == "problem"
    assert {roles[1], roles[3], roles[4]} == {"passed over"}
    assert "0.0.22" in data["resolution"] and "thank you" not in data["resolution"]
    reasons = " ".join(m["reason"] for m in data["messages"])
    assert "meeting" in reasons
    text = CliRunner().invoke(cli, ["explain", f"slack:CHELP:{T0}", "--index", str(index)])
    assert "FIX" in text.output and "why not:" in text.output


def test_a_case_not_in_the_index_says_where_to_look(tmp_path: Path) -> None:
    index, _ = _index(tmp_path)
    result = CliRunner().invoke(cli, ["explain", "slack:CHELP:1700090000.000100",
                                      "--index", str(index)])
    assert result.exit_code == 1
    assert "--explain-skipped" in result.output


def test_configured_gratitude_reaches_the_rules(tmp_path: Path) -> None:
    config = tmp_path / "casematch.toml"
    config.write_text('[resolution]\ngratitude = ["sorted, cheers"]\n'
                      'bot_case_channels = ["#alerts"]\n', encoding="utf-8")
    rules = Settings.load(config, env={}).resolution_rules
    assert rules.gratitude == ("sorted, cheers",) and rules.bot_case_channels == ("alerts",)


def test_index_explain_skipped_lists_what_was_not_taken(tmp_path: Path,
                                                        monkeypatch: object) -> None:
    import casematch.sync.build

    export = write_export(tmp_path / "export", {"help": {"2023-11-15": [
        root("1700090000.000100", "OLake Workers v0.3.6 Released! Highlights: faster CDC",
             replies=1),
        reply("1700090001.000100", "1700090000.000100", "congrats team!", user="U2"),
        root(T0, "Printer on floor 2 jams after the update", replies=1),
        reply("1700000001.000100", T0, "Open tray B and reseat the fuser; fixed on ours",
              user="U2", reactions=reaction("white_check_mark")),
    ]}})
    monkeypatch.setattr(casematch.sync.build, "load_encoder",  # type: ignore[attr-defined]
                        lambda *a, **k: FakeEncoder())
    result = CliRunner().invoke(cli, ["index", str(export), "--index", str(tmp_path / "idx"),
                                      "--explain-skipped"])
    assert result.exit_code == 0, result.output
    assert ("Passed over slack:CHELP:1700090000.000100: not a support thread (announcement)"
            in result.output)
