"""Bad input never crashes and never deletes: the malformed corpus in tests/malformed/, and
damaged indexes, each give a clear problem or error naming the file, never a traceback.

Each corpus folder holds files and `expected.json`: file stem -> a phrase its problem must
contain ("" when the file must read cleanly, e.g. after removing lone surrogates).
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FakeEncoder
from slack_fixtures import reaction, reply, root, write_export

from casematch.cli import cli
from casematch.config import Settings
from casematch.errors import CasematchError, IndexFormatError, InputError
from casematch.index import CaseIndex
from casematch.sources import ReadReport, read_source
from casematch.storage import generations
from casematch.sync.build import build_index

CORPUS = Path(__file__).parent / "malformed"


def corpus(kind: str) -> list[tuple[str, str]]:
    expected = json.loads((CORPUS / kind / "expected.json").read_text(encoding="utf-8"))
    return sorted(expected.items())


GOOD_DAY = [root("1699000000.000100", "Scanner shows offline after the firmware update"),
            reply("1699000060.000200", "1699000000.000100", "Power-cycle it and re-pair",
                  reactions=reaction("white_check_mark"))]


@pytest.mark.parametrize(("name", "phrase"), corpus("slack-day"))
def test_slack_day_files(tmp_path: Path, name: str, phrase: str) -> None:
    export = write_export(tmp_path / "export", {"swarm": {"2023-11-02": GOOD_DAY}})
    shutil.copy(CORPUS / "slack-day" / f"{name}.json", export / "swarm" / "2023-11-14.json")
    report = ReadReport()
    cases = list(read_source(export, report=report))
    assert "slack:CSWARM:1699000000.000100" in {c.id for c in cases}  # the rest is read
    for case in cases:
        case.content_hash()
        json.dumps(case.to_dict()).encode("utf-8")  # storable
    if phrase:
        assert report.partial and any(phrase in p for p in report.problems), report.problems
        assert all("2023-11-14.json" in p for p in report.problems)
    else:
        assert not report.problems and len(cases) == 2


@pytest.mark.parametrize(("name", "phrase"), corpus("jsonl"))
def test_jsonl_lines(name: str, phrase: str) -> None:
    report = ReadReport()
    cases = list(read_source(CORPUS / "jsonl" / f"{name}.jsonl", report=report))
    if phrase:
        assert [c.id for c in cases] == ["ok1"]
        assert report.partial and any(f"{name}.jsonl:2: " in p and phrase in p
                                      for p in report.problems), report.problems
    else:
        assert not report.problems and report.cleaned > 0


def test_jsonl_resolved_must_be_a_boolean(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps({"id": 7, "problem": "VPN drops", "resolved": False,
                                "resolution": "a draft answer"}) + "\n", encoding="utf-8")
    [case] = read_source(path)
    assert (case.id, case.resolved) == ("7", False)


@pytest.mark.parametrize(("name", "phrase"), corpus("zendesk"))
def test_zendesk_tickets(tmp_path: Path, name: str, phrase: str) -> None:
    shutil.copy(CORPUS / "zendesk" / f"{name}.json", tmp_path / "tickets.json")
    report = ReadReport()
    cases = list(read_source(tmp_path / "tickets.json", report=report))
    assert "zendesk:zendesk:1" in {c.id for c in cases}
    if phrase:
        assert report.partial and any(phrase in p for p in report.problems), report.problems
    else:
        # Once in the description, once in the message made from it.
        assert not report.problems and report.cleaned == 2
        assert "\udbff" not in cases[0].problem


def test_lone_surrogates_and_control_characters_are_cleaned_and_indexed(tmp_path: Path) -> None:
    settings = Settings.load(env={}, index_path=tmp_path / "idx")
    built = build_index([CORPUS / "jsonl" / "surrogate.jsonl"], settings, encoder=FakeEncoder())
    assert (built.update.added, built.read.cleaned) == (1, 3)
    with CaseIndex.open(tmp_path / "idx", encoder=FakeEncoder()) as index:
        case = index.get("s1")
        assert case is not None and case.problem == "Emoji  cut  here"


def test_non_utf8_queries_are_cleaned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.load(env={}, index_path=tmp_path / "idx")
    build_index([CORPUS / "jsonl" / "surrogate.jsonl"], settings, encoder=FakeEncoder())
    monkeypatch.setattr("casematch.index.load_query_encoder", lambda *a, **k: FakeEncoder())
    runner = CliRunner()
    # argv: Python hands undecodable bytes over as lone surrogates.
    result = runner.invoke(cli, ["query", "emoji \udcff\udcfe cut", "--index",
                                 str(tmp_path / "idx")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["query", "-", "--index", str(tmp_path / "idx"), "--json"],
                           input=b"emoji \xff\xfe cut\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["matches"][0]["id"] == "s1"


DEEP = "[" * 200_000 + "]" * 200_000


def test_deep_nesting_is_a_problem_not_a_recursion_error(tmp_path: Path) -> None:
    export = write_export(tmp_path / "export", {"swarm": {"2023-11-02": GOOD_DAY,
                                                          "2023-11-03": DEEP}})
    report = ReadReport()
    assert len(list(read_source(export, report=report))) == 1
    assert report.partial and "nested too deeply" in report.problems[0]

    lines = tmp_path / "cases.jsonl"
    lines.write_text('{"id": "a", "problem": "x"}\n' + DEEP + "\n", encoding="utf-8")
    report = ReadReport()
    assert len(list(read_source(lines, report=report))) == 1
    assert "cases.jsonl:2: invalid JSON: nested too deeply" in report.problems[0]

    tickets = tmp_path / "zd"
    tickets.mkdir()
    (tickets / "a.json").write_text(json.dumps({"tickets": [
        {"id": 1, "subject": "x", "description": "y", "status": "solved"}]}))
    (tickets / "b.json").write_text(DEEP)
    report = ReadReport()
    assert len(list(read_source(tickets, report=report))) == 1
    assert "nested too deeply" in report.problems[0]


def test_an_unreadable_channel_folder_is_a_problem(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    export = write_export(tmp_path / "export", {"swarm": {"2023-11-02": GOOD_DAY},
                                                "locked": {"2023-11-02": GOOD_DAY}})
    real_iterdir = Path.iterdir

    def iterdir(self: Path):  # type: ignore[no-untyped-def]
        if self.name == "locked":
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    # The tests run as root, which chmod cannot lock out.
    monkeypatch.setattr(Path, "iterdir", iterdir)
    report = ReadReport()
    assert [c.channel for c in read_source(export, report=report)] == ["swarm"]
    assert report.partial and "locked: cannot read the channel folder" in report.problems[0]


def test_channel_names_never_leave_the_export(tmp_path: Path) -> None:
    outside = write_export(tmp_path / "outside", {"x": {"2023-11-02": GOOD_DAY}})
    export = write_export(tmp_path / "export", {"swarm": {"2023-11-02": GOOD_DAY}}, channels=[
        {"id": "CEVIL", "name": "../outside/x"}, {"id": "CABS", "name": str(outside / "x")},
        {"id": "CDOT", "name": ".."}])
    report = ReadReport()
    assert [c.channel for c in read_source(export, report=report)] == ["swarm"]
    assert sum("is not a folder name inside the export" in p for p in report.problems) == 3


def test_zip_members_are_capped(tmp_path: Path) -> None:
    export = write_export(tmp_path / "export", {"swarm": {"2023-11-02": GOOD_DAY}})
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for path in sorted(export.rglob("*.json")):
            handle.write(path, path.relative_to(export).as_posix())
        handle.writestr("swarm/2023-11-03.json", b" " * (8 * 1024 * 1024))
    with pytest.raises(InputError, match=r"bomb.zip: member 'swarm/2023-11-03.json' expands"):
        list(read_source(archive))


def test_a_folder_of_channel_folders_without_a_channel_list(tmp_path: Path) -> None:
    export = write_export(tmp_path / "export", {"swarm": {"2023-11-02": GOOD_DAY}})
    (export / "channels.json").unlink()
    with pytest.raises(InputError, match=r"looks like a Slack export, but has no channels\.json"):
        list(read_source(export))


def test_a_read_only_index_folder_is_a_clear_error(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    settings = Settings.load(env={}, index_path=tmp_path / "ro" / "idx")
    with pytest.raises(IndexFormatError, match="cannot write the index here"):
        build_index([CORPUS / "jsonl" / "surrogate.jsonl"], settings, encoder=FakeEncoder())


def test_index_refuses_a_folder_that_is_not_an_index(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    (mine / "g000001").mkdir(parents=True)
    (mine / "g000001" / "notes.txt").write_text("my own files")
    settings = Settings.load(env={}, index_path=mine)
    with pytest.raises(IndexFormatError, match="not a casematch index and not empty"):
        build_index([CORPUS / "jsonl" / "surrogate.jsonl"], settings, encoder=FakeEncoder())
    assert (mine / "g000001" / "notes.txt").exists()


def test_pruning_touches_only_generations_the_index_wrote(tmp_path: Path) -> None:
    settings = Settings.load(env={}, index_path=tmp_path / "idx")
    source = tmp_path / "cases.jsonl"
    for n in range(4):
        source.write_text(json.dumps({"id": "a", "problem": f"text {n}", "resolution": "r"})
                          + "\n", encoding="utf-8")
        build_index([source], settings, encoder=FakeEncoder())
        if n == 0:
            # Something that looks like a generation but was not written by this index.
            (tmp_path / "idx" / "g000000").mkdir()
    names = sorted(p.name for p in (tmp_path / "idx").iterdir() if p.name.startswith("g"))
    assert names == ["g000000", "g000003", "g000004"]


# ---- damaged indexes: `query` says which file is wrong ----------------------------------


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    source = tmp_path / "cases.jsonl"
    source.write_text("".join(json.dumps({"id": f"c{n}", "problem": f"Widget {n} crashes",
                                          "resolution": f"Hotfix {n}"}) + "\n"
                              for n in range(20)), encoding="utf-8")
    build_index([source], Settings.load(env={}, index_path=tmp_path / "idx"),
                encoder=FakeEncoder())
    monkeypatch.setattr("casematch.index.load_query_encoder", lambda *a, **k: FakeEncoder())
    return tmp_path / "idx"


def _gen(index: Path) -> Path:
    return index / (index / "CURRENT").read_text().strip()


def _rewrite_vectors(index: Path, ids: np.ndarray | None = None, scale: float = 1.0) -> None:
    import faiss

    path = _gen(index) / "vectors.faiss"
    raw = faiss.read_index(str(path))
    stored = faiss.vector_to_array(raw.id_map).astype(np.int64)
    vectors = raw.reconstruct_batch(stored) * scale
    fresh = faiss.IndexIDMap2(faiss.IndexFlatIP(raw.d))
    fresh.add_with_ids(vectors, stored if ids is None else ids)
    faiss.write_index(fresh, str(path))


def _truncate(index: Path, name: str) -> None:
    path = _gen(index) / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(index: Path, name: str) -> None:
    (_gen(index) / name).write_bytes(np.random.default_rng(0).bytes(4096))


def _edit_manifest(index: Path, **changes: object) -> None:
    path = _gen(index) / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


DAMAGE = {
    "truncated vectors": (lambda i: _truncate(i, "vectors.faiss"), "vectors.faiss"),
    "garbage vectors": (lambda i: _garbage(i, "vectors.faiss"), "vectors.faiss"),
    "truncated store": (lambda i: _truncate(i, "cases.sqlite"), "cases.sqlite"),
    "garbage store": (lambda i: _garbage(i, "cases.sqlite"), "cases.sqlite"),
    "flipped vector ids": (lambda i: _rewrite_vectors(i, ids=np.arange(20) + 1000),
                           "vector ids that no chunk"),
    "vectors not unit length": (lambda i: _rewrite_vectors(i, scale=8029.0),
                                "not unit length"),
    "manifest dimension": (lambda i: _edit_manifest(i, dimension=384), "dimension 384"),
    "manifest count": (lambda i: _edit_manifest(i, cases=3), "3 cases"),
    "garbage manifest": (lambda i: _garbage(i, "manifest.json"), "manifest.json"),
    "current escapes": (lambda i: (i / "CURRENT").write_text("../../other/g000001\n"),
                        "is not a generation name"),
    "current missing generation": (lambda i: (i / "CURRENT").write_text("g000009\n"),
                                   "g000009"),
    "swapped vectors": (lambda i: _swap_in_other_vectors(i), "vectors"),
}


def _swap_in_other_vectors(index: Path) -> None:
    other = index.parent / "other.jsonl"
    other.write_text(json.dumps({"id": "o", "problem": "p", "resolution": "r"}) + "\n")
    build_index([other], Settings.load(env={}, index_path=index.parent / "other"),
                encoder=FakeEncoder())
    shutil.copy(_gen(index.parent / "other") / "vectors.faiss", _gen(index) / "vectors.faiss")


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_index_is_one_clear_error(built: Path, damage: str) -> None:
    breaks, phrase = DAMAGE[damage]
    breaks(built)
    result = CliRunner().invoke(cli, ["query", "widget crashes", "--index", str(built)])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and phrase in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_scores_outside_the_unit_range_never_reach_a_user(built: Path) -> None:
    import faiss

    generation = generations.Generation.open(built)
    try:
        raw = generation.vectors.index
        ids = faiss.vector_to_array(raw.id_map).astype(np.int64)
        broken = faiss.IndexIDMap2(faiss.IndexFlatIP(raw.d))
        vectors = raw.reconstruct_batch(ids)
        vectors[3] *= 50  # one damaged vector the sampled check at open may not see
        broken.add_with_ids(vectors, ids)
        checked = generations.CheckedVectors(broken, Path("vectors.faiss"), np.sort(ids))
        with pytest.raises(IndexFormatError, match="scores outside"):
            checked.search(vectors[3:4] / np.linalg.norm(vectors[3]), 5)
    finally:
        generation.close()


def test_only_casematch_errors_escape_the_cli_on_the_corpus(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setattr("casematch.sync.build.load_encoder", lambda *a, **k: FakeEncoder())
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "expected.json")
    for number, path in enumerate(files):
        result = CliRunner().invoke(cli, ["index", str(path), "--index",
                                          str(tmp_path / f"i{number}"), "--json"])
        assert result.exit_code in (0, 1, 3), (path, result.output)
        if result.exception and not isinstance(result.exception, SystemExit):
            assert isinstance(result.exception, CasematchError), (path, result.exception)


def test_one_odd_record_skips_itself_not_the_source(tmp_path: Path) -> None:
    odd = reply("1699000120.000300", "1699000100.000100", "me too", reactions=5)
    export = write_export(tmp_path / "export", {"swarm": {"2023-11-02": [
        *GOOD_DAY, root("1699000100.000100", "Badge reader rejects my card"), odd]}})
    report = ReadReport()
    assert [c.id for c in read_source(export, report=report)] == [
        "slack:CSWARM:1699000000.000100"]
    assert report.partial and "thread 1699000100.000100: unusable" in report.problems[0]

    tickets = tmp_path / "tickets.json"
    tickets.write_text(json.dumps({"tickets": [
        {"id": 1, "subject": "x", "description": "y", "status": "solved"},
        {"id": 2, "subject": "x", "description": "y", "status": "solved", "tags": 5}]}))
    report = ReadReport()
    assert [c.id for c in read_source(tickets, report=report)] == ["zendesk:zendesk:1"]
    assert "ticket zendesk:2: unusable ticket" in report.problems[0]


def test_streamed_ndjson_keeps_the_newest_copy_of_a_ticket(tmp_path: Path) -> None:
    def ticket(subject: str, updated: str) -> str:
        return json.dumps({"id": 1, "subject": subject, "description": "Login loops",
                           "status": "solved", "updated_at": updated}) + "\n"

    path = tmp_path / "tickets.ndjson"
    path.write_text(ticket("newest", "2026-03-01T00:00:00Z") + "not json\n"
                    + ticket("older, later in the file", "2026-01-01T00:00:00Z"),
                    encoding="utf-8")
    report = ReadReport()
    [case] = read_source(path, report=report)
    assert case.title == "newest"
    assert report.problems == [f"{path}:2: invalid JSON (Expecting value, column 1); "
                               "line skipped"]
