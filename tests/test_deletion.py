"""The deletion rule: a source read only partly deletes nothing, `index` deletes only the
cases of the sources it was given, and mass deletion is refused unless asked for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import FakeEncoder
from filelock import FileLock
from slack_fixtures import reaction, reply, root, write_export

from casematch.cli import cli
from casematch.config import Settings
from casematch.errors import InputError
from casematch.index import CaseIndex
from casematch.sync.build import build_index
from casematch.sync.reindex import reindex


def slack_days(count: int, start: int = 1700000000) -> dict[str, list[dict[str, Any]]]:
    """`count` resolved threads, one per day file."""
    days = {}
    for n in range(count):
        t0 = f"{start + n * 86400}.000100"
        days[f"2023-11-{n + 1:02d}"] = [
            root(t0, f"Printer {n} jams on tray two every morning"),
            reply(f"{start + n * 86400 + 60}.000200", t0, f"Replace roller kit {n}",
                  reactions=reaction("white_check_mark")),
        ]
    return days


def write_jsonl(path: Path, ids: range | list[int], prefix: str = "c",
                text: str = "Widget {n} crashes on save") -> Path:
    path.write_text("".join(json.dumps({"id": f"{prefix}{n}", "problem": text.format(n=n),
                                        "resolution": f"Apply hotfix {n}"}) + "\n"
                            for n in ids), encoding="utf-8")
    return path


def case_ids(index_path: Path) -> set[str]:
    from casematch.storage.generations import current_case_ids

    return current_case_ids(index_path)


def settings_for(tmp_path: Path, config: str = "") -> Settings:
    if config:
        path = tmp_path / "casematch.toml"
        path.write_text(config, encoding="utf-8")
        return Settings.load(path, env={})
    return Settings.load(env={}, index_path=tmp_path / "idx")


EXPORT_CONFIG = '[index]\npath = "idx"\n[[sources]]\ntype = "slack-export"\npath = "export"\n'


def test_a_corrupt_day_file_deletes_nothing_and_reports_partial(tmp_path: Path) -> None:
    write_export(tmp_path / "export", {"support-swarm": slack_days(6)})
    settings = settings_for(tmp_path, EXPORT_CONFIG)
    first = reindex(settings, encoder=FakeEncoder())
    assert (first.update.added, first.status) == (6, "indexed")

    (tmp_path / "export" / "support-swarm" / "2023-11-03.json").write_text('[{"broken')
    second = reindex(settings, encoder=FakeEncoder())
    assert (second.update.deleted, second.status, second.exit_code) == (0, "partial", 3)
    assert "2023-11-03.json" in second.sources[0].problems[0]
    assert len(case_ids(tmp_path / "idx")) == 6
    # Repaired: the source is whole again, and its ownership was not forgotten meanwhile.
    write_export(tmp_path / "export", {"support-swarm": slack_days(6)})
    (tmp_path / "export" / "support-swarm" / "2023-11-06.json").unlink()
    third = reindex(settings, encoder=FakeEncoder())
    assert (third.update.deleted, third.status) == (1, "indexed")


def test_an_empty_channel_list_deletes_nothing(tmp_path: Path) -> None:
    write_export(tmp_path / "export", {"support-swarm": slack_days(6)})
    settings = settings_for(tmp_path, EXPORT_CONFIG)
    reindex(settings, encoder=FakeEncoder())
    (tmp_path / "export" / "channels.json").write_text("[]")
    result = reindex(settings, encoder=FakeEncoder())
    assert (result.update.deleted, result.status, result.exit_code) == (0, "partial", 3)
    assert any("lists no channels" in p for p in result.sources[0].problems)
    assert len(case_ids(tmp_path / "idx")) == 6

    # `casematch index` on the same export: nothing could be read, nothing changes.
    before = (tmp_path / "idx" / "CURRENT").read_text()
    with pytest.raises(InputError, match=r"nothing could be read.*lists no channels"):
        build_index([tmp_path / "export"], settings, encoder=FakeEncoder())
    assert (tmp_path / "idx" / "CURRENT").read_text() == before


def test_wrong_format_on_a_slack_export_deletes_nothing(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    export = write_export(tmp_path / "export", {"support-swarm": slack_days(6)})
    monkeypatch.setattr("casematch.sync.build.load_encoder", lambda *a, **k: FakeEncoder())
    index = str(tmp_path / "idx")
    assert CliRunner().invoke(cli, ["index", str(export), "--index", index]).exit_code == 0
    result = CliRunner().invoke(cli, ["index", str(export), "--format", "zendesk",
                                      "--include-unresolved", "--index", index])
    assert result.exit_code == 1
    assert "not a Zendesk ticket" in result.stderr and "Traceback" not in result.output
    assert len(case_ids(tmp_path / "idx")) == 6


def test_index_keeps_cases_of_sources_not_given_and_prune_removes_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("casematch.sync.build.load_encoder", lambda *a, **k: FakeEncoder())
    a = write_jsonl(tmp_path / "a.jsonl", range(5), prefix="a")
    b = write_jsonl(tmp_path / "b.jsonl", range(3), prefix="b")
    index = str(tmp_path / "idx")
    assert CliRunner().invoke(cli, ["index", str(a), "--index", index]).exit_code == 0
    result = CliRunner().invoke(cli, ["index", str(b), "--index", index])
    assert result.exit_code == 0 and "deleted 0" in result.stdout
    assert len(case_ids(tmp_path / "idx")) == 8

    # Relative and absolute spellings of one path are one source.
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(cli, ["index", "a.jsonl", "--index", index]).exit_code == 0
    assert len(case_ids(tmp_path / "idx")) == 8

    result = CliRunner().invoke(cli, ["index", str(b), "--index", index, "--prune"])
    assert result.exit_code == 0, result.output
    assert "Pruned 5 cases of sources not given." in result.stdout
    assert case_ids(tmp_path / "idx") == {"b0", "b1", "b2"}


def test_a_source_losing_many_cases_is_refused_unless_allowed(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    source = write_jsonl(tmp_path / "cases.jsonl", range(10))
    build_index([source], settings, encoder=FakeEncoder())
    write_jsonl(source, range(9))  # 10% lost: fine
    assert build_index([source], settings, encoder=FakeEncoder()).update.deleted == 1
    write_jsonl(source, range(3))  # 6 of 9 lost: looks like a truncated file
    with pytest.raises(InputError, match=r"would delete 6 of the 9 cases.*max-delete-ratio 1"):
        build_index([source], settings, encoder=FakeEncoder())
    assert len(case_ids(tmp_path / "idx")) == 9
    done = build_index([source], settings, encoder=FakeEncoder(), max_delete_ratio=1)
    assert done.update.deleted == 6


def test_reindex_keeps_a_source_that_would_lose_too_much(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "cases.jsonl", range(10))
    config = '[index]\npath = "idx"\n[[sources]]\ntype = "jsonl"\npath = "cases.jsonl"\n'
    settings = settings_for(tmp_path, config)
    reindex(settings, encoder=FakeEncoder())
    write_jsonl(tmp_path / "cases.jsonl", range(2))
    result = reindex(settings, encoder=FakeEncoder())
    assert (result.status, result.exit_code, result.update.deleted) == ("partial", 3, 0)
    assert "would delete 8 of the 10" in result.sources[0].problems[0]
    allowed = reindex(settings, encoder=FakeEncoder(), max_delete_ratio=1)
    assert (allowed.status, allowed.update.deleted) == ("indexed", 8)


def test_a_locked_index_refuses_before_reading_or_loading(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model must not load for a locked index")

    def no_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("no source may be read for a locked index")

    monkeypatch.setattr("casematch.sync.build.load_encoder", no_model)
    monkeypatch.setattr("casematch.sync.build.read_source_changes", no_read)
    source = write_jsonl(tmp_path / "cases.jsonl", range(3))
    (tmp_path / "idx").mkdir()
    with FileLock(tmp_path / "idx" / ".lock"):
        result = CliRunner().invoke(cli, ["index", str(source), "--index",
                                          str(tmp_path / "idx")])
    assert result.exit_code == 75 and "another casematch process" in result.stderr


def test_duplicate_ids_keep_the_newest_and_name_the_id(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    old = tmp_path / "old.jsonl"
    new = tmp_path / "new.jsonl"
    old.write_text(json.dumps({"id": "x1", "problem": "VPN drops", "resolution": "old fix",
                               "created_at": "2026-01-01T00:00:00Z"}) + "\n", encoding="utf-8")
    new.write_text(json.dumps({"id": "x1", "problem": "VPN drops", "resolution": "new fix",
                               "created_at": "2026-02-01T00:00:00Z"}) + "\n", encoding="utf-8")
    # The newer copy wins whichever source comes first.
    built = build_index([new, old], settings, encoder=FakeEncoder())
    assert (built.update.added, built.read.duplicates) == (1, ["x1"])
    assert any("'x1' appears more than once" in p for p in built.read.problems)
    with CaseIndex.open(tmp_path / "idx", encoder=FakeEncoder()) as index:
        case = index.get("x1")
        assert case is not None and case.resolution == "new fix"

    # Identical duplicates: counted once.
    same = write_jsonl(tmp_path / "same.jsonl", [1, 2, 1, 2], prefix="s")
    built = build_index([same], settings, encoder=FakeEncoder())
    assert (built.update.added, built.read.read, built.read.duplicates) == (2, 4, ["s1", "s2"])
    assert not built.read.partial


def test_the_writer_survives_an_id_given_twice(tmp_path: Path) -> None:
    from conftest import make_case

    from casematch.storage.writer import IndexWriter

    with IndexWriter(tmp_path / "idx", FakeEncoder()) as writer:
        writer.upsert(make_case("d1", "Disk full on build agent", "Prune docker images"))
        writer.upsert(make_case("d1", "Disk full on build agent", "Grow the volume"))
        result = writer.commit()
    assert result.embedded == 1
    with CaseIndex.open(tmp_path / "idx", encoder=FakeEncoder()) as index:
        case = index.get("d1")
        assert case is not None and case.resolution == "Grow the volume"


def test_reindex_exits_zero_when_nothing_changed_unless_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "cases.jsonl", range(3))
    config = tmp_path / "casematch.toml"
    config.write_text('[index]\npath = "idx"\n[[sources]]\ntype = "jsonl"\n'
                      'path = "cases.jsonl"\n', encoding="utf-8")
    monkeypatch.setattr("casematch.sync.reindex.load_encoder", lambda *a, **k: FakeEncoder())
    assert CliRunner().invoke(cli, ["reindex", "--config", str(config)]).exit_code == 0
    quiet = CliRunner().invoke(cli, ["reindex", "--config", str(config), "--json"])
    assert quiet.exit_code == 0
    payload = json.loads(quiet.stdout)
    assert (payload["status"], payload["exit_code"], payload["detailed_exit_code"]) == (
        "nothing-to-do", 0, 4)
    detailed = CliRunner().invoke(cli, ["reindex", "--config", str(config),
                                        "--detailed-exitcode"])
    assert detailed.exit_code == 4


def test_full_rebuild_keeps_other_sources_unless_pruned(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    a = write_jsonl(tmp_path / "a.jsonl", range(3), prefix="a")
    b = write_jsonl(tmp_path / "b.jsonl", range(2), prefix="b")
    build_index([a], settings, encoder=FakeEncoder())
    build_index([b], settings, encoder=FakeEncoder())
    with pytest.raises(InputError, match="holds 3 cases of other sources"):
        build_index([b], settings, encoder=FakeEncoder(), full=True)
    assert len(case_ids(tmp_path / "idx")) == 5
    done = build_index([b], settings, encoder=FakeEncoder(), full=True, prune=True)
    assert (done.pruned, done.update.embedded) == (3, 2)
    assert case_ids(tmp_path / "idx") == {"b0", "b1"}


def test_a_full_reindex_with_a_half_read_source_writes_nothing(tmp_path: Path) -> None:
    write_export(tmp_path / "export", {"support-swarm": slack_days(3)})
    settings = settings_for(tmp_path, EXPORT_CONFIG)
    first = reindex(settings, encoder=FakeEncoder())
    (tmp_path / "export" / "support-swarm" / "2023-11-02.json").write_text("[")
    full = reindex(settings, encoder=FakeEncoder(), full=True)
    assert (full.status, full.exit_code) == ("failed", 1)
    assert "a --full run needs every source read whole" in full.sources[0].error
    assert (tmp_path / "idx" / "CURRENT").read_text().strip() == first.update.generation
    assert len(case_ids(tmp_path / "idx")) == 3
