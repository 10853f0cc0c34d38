"""The per-id records of one ingestion run live in SQLite, not in memory: each id's newest
copy (`sync.cursors.RunCases`) and each Zendesk ticket's newest copy (`zendesk._Tickets`).
They are resolved in batches; whatever the batch size, the outcome must be the one a
whole-run dict gives, and a killed run must leave no scratch file behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEncoder

from casematch.config import Settings
from casematch.sources import ReadOptions, ReadReport, zendesk
from casematch.sync import cursors
from casematch.sync.build import build_index

ROOT = Path(__file__).resolve().parents[1]


def _jsonl(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """(id, resolution, created_at) per line."""
    path.write_text("".join(json.dumps({"id": case_id, "problem": f"Widget {case_id} crashes",
                                        "resolution": fix, "created_at": when}) + "\n"
                            for case_id, fix, when in rows), encoding="utf-8")
    return path


def _build_twice_sources(tmp_path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Two sources repeating ids across what would be many batches of two; returns the
    outcome and each id's resolution in the index."""
    first = _jsonl(tmp_path / "a.jsonl", [
        ("x1", "old x1", "2026-01-01T00:00:00Z"),
        ("x2", "new x2", "2026-03-01T00:00:00Z"),
        ("x3", "only x3", "2026-01-01T00:00:00Z"),
        ("x1", "newer x1", "2026-02-01T00:00:00Z"),
        ("x4", "first x4", "2026-01-01T00:00:00Z"),
        ("x5", "only x5", "2026-01-01T00:00:00Z"),
    ])
    second = _jsonl(tmp_path / "b.jsonl", [
        ("x2", "older x2", "2026-01-01T00:00:00Z"),
        ("x1", "newest x1", "2026-04-01T00:00:00Z"),
        ("x6", "only x6", "2026-01-01T00:00:00Z"),
        ("x4", "tie x4, later", "2026-01-01T00:00:00Z"),
        ("x1", "stale x1", "2025-01-01T00:00:00Z"),
    ])
    index = tmp_path / f"idx-{len(list(tmp_path.glob('idx-*')))}"
    built = build_index([first, second], Settings.load(env={}, index_path=index),
                        encoder=FakeEncoder())
    from casematch.index import CaseIndex

    with CaseIndex.open(index, encoder=FakeEncoder()) as opened:
        fixes = {f"x{n}": opened.get(f"x{n}").resolution  # type: ignore[union-attr]
                 for n in range(1, 7)}
    outcome = {"added": built.update.added, "duplicates": built.read.duplicates,
               "problems": built.read.problems, "partial": built.partial_sources}
    return outcome, fixes


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_duplicate_ids_across_batches_resolve_as_in_one_batch(
        tmp_path: Path, batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    whole, fixes = _build_twice_sources(tmp_path)
    assert fixes == {"x1": "newest x1", "x2": "new x2", "x3": "only x3",
                     "x4": "tie x4, later", "x5": "only x5", "x6": "only x6"}
    assert whole["added"] == 6 and whole["partial"] == []
    # Every later copy of an id is reported, in the order it was read.
    assert whole["duplicates"] == ["x1", "x2", "x1", "x4", "x1"]
    monkeypatch.setattr(cursors, "RUN_BATCH", batch)
    assert _build_twice_sources(tmp_path) == (whole, fixes)


def test_ownership_and_deletion_follow_the_records(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cursors, "RUN_BATCH", 2)
    settings = Settings.load(env={}, index_path=tmp_path / "idx")
    rows = [(f"c{n}", f"fix {n}", "2026-01-01T00:00:00Z") for n in range(10)]
    source = _jsonl(tmp_path / "s.jsonl", rows)
    other = _jsonl(tmp_path / "o.jsonl", [("o1", "fix o1", "2026-01-01T00:00:00Z")])
    assert build_index([source, other], settings, encoder=FakeEncoder()).update.added == 11
    with cursors.SyncState(tmp_path / "idx") as state:
        assert state.owned(f"path:{source.resolve()}") == {f"c{n}" for n in range(10)}
    # One case gone from a source read whole: deleted, and no longer owned by it; the
    # other source, not given, keeps its case.
    _jsonl(source, rows[1:])
    again = build_index([source], settings, encoder=FakeEncoder())
    assert (again.update.deleted, again.update.unchanged) == (1, 9)
    with cursors.SyncState(tmp_path / "idx") as state:
        assert state.owned(f"path:{source.resolve()}") == {f"c{n}" for n in range(1, 10)}
        assert state.owned(f"path:{other.resolve()}") == {"o1"}
    # --prune: only the sources given remain.
    pruned = build_index([source], settings, encoder=FakeEncoder(), prune=True)
    assert (pruned.pruned, pruned.update.deleted) == (1, 1)


def _tickets(tmp_path: Path) -> Path:
    rows: list[dict[str, Any]] = []
    for n in range(1, 9):
        rows.append({"id": n, "subject": f"Printer {n} jams", "description": f"Printer {n}",
                     "status": "solved", "updated_at": "2026-01-02T00:00:00Z"})
    # Repeats, newer and older, far from the first copy (other batches of two).
    rows += [{**rows[1], "subject": "Printer 2 jams again", "updated_at": "2026-02-01T00:00:00Z"},
             {**rows[4], "subject": "Printer 5 older copy", "updated_at": "2025-01-01T00:00:00Z"},
             {**rows[6], "subject": "Printer 7 same time, later"},
             {**rows[1], "subject": "Printer 2 stale", "updated_at": "2025-06-01T00:00:00Z"}]
    path = tmp_path / "tickets.ndjson"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(("batch", "budget"), [(1, 0), (2, 0), (3, 10**9), (2048, 0)])
def test_zendesk_newest_copy_across_batches(tmp_path: Path, batch: int, budget: int,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = _tickets(tmp_path)
    monkeypatch.setattr(zendesk, "TICKET_BATCH", batch)
    monkeypatch.setattr(zendesk, "PARSED_BUDGET", budget)
    report = ReadReport()
    cases = list(zendesk.read_zendesk(path, options=ReadOptions(), report=report))
    # Each ticket once, with its newest copy (a tie goes to the later one).
    assert sorted((c.id, c.title) for c in cases) == [
        (f"zendesk:zendesk:{n}", title) for n, title in enumerate([
            "Printer 1 jams", "Printer 2 jams again", "Printer 3 jams", "Printer 4 jams",
            "Printer 5 jams", "Printer 6 jams", "Printer 7 same time, later",
            "Printer 8 jams"], start=1)]
    assert report.problems == []


def test_a_killed_run_leaves_no_scratch_file_and_the_next_run_works(tmp_path: Path) -> None:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to see the open scratch files")
    scratch = tmp_path / "sqlite-tmp"
    scratch.mkdir()
    source = tmp_path / "tickets.ndjson"
    source.write_text("".join(json.dumps({
        "id": n, "subject": f"Disk {n} full", "description": f"Disk {n} is full on agent {n}",
        "status": "solved", "updated_at": "2026-01-02T00:00:00Z",
        "comments": [{"id": 2 * n, "author_id": 1, "body": f"Disk {n} is full"},
                     {"id": 2 * n + 1, "author_id": 2, "body": f"Prune images {n}"}]})
        + "\n" for n in range(1, 3001)), encoding="utf-8")
    index = tmp_path / "idx"
    # Killed (SIGKILL, nothing runs after it) while reading, with both scratch databases
    # open and spilled to their files: it reports which of its open files are there.
    child = textwrap.dedent(f"""
        import os, signal, sys
        sys.path[:0] = [{str(ROOT / "tests")!r}, {str(ROOT)!r}]
        from conftest import FakeEncoder
        from casematch.config import Settings
        from casematch.sources import zendesk
        from casematch.sync import cursors
        from casematch.sync.build import build_index
        zendesk._TICKETS_CACHE_KIB = cursors._RUN_CACHE_KIB = 1
        zendesk.PARSED_BUDGET = 0

        class Dying(FakeEncoder):
            calls = 0
            def chunk(self, text):
                Dying.calls += 1
                if Dying.calls == 2500:
                    open_files = []
                    for fd in os.listdir("/proc/self/fd"):
                        try:
                            open_files.append(os.readlink(f"/proc/self/fd/{{fd}}"))
                        except OSError:  # the listing's own descriptor, closed by now
                            pass
                    print(sum({str(scratch)!r} in path for path in open_files), flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
                return super().chunk(text)

        build_index([{str(source)!r}], Settings.load(env={{}}, index_path={str(index)!r}),
                    encoder=Dying())
    """)
    env = {**os.environ, "SQLITE_TMPDIR": str(scratch), "TMPDIR": str(scratch)}
    done = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == -9, done.stderr
    assert int(done.stdout.split()[-1]) >= 1  # the scratch files existed, open
    assert list(scratch.iterdir()) == []  # ... and were never left in the folder
    built = build_index([source], Settings.load(env={}, index_path=index),
                        encoder=FakeEncoder())
    assert (built.update.added, built.status) == (3000, "indexed")
    assert not list(index.glob(".tmp-*"))
    again = build_index([source], Settings.load(env={}, index_path=index),
                        encoder=FakeEncoder())
    assert (again.update.unchanged, again.update.changed) == (3000, False)


def test_undated_copies_tie_and_the_later_one_wins_across_batches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from casematch.sources import Unchanged

    monkeypatch.setattr(cursors, "RUN_BATCH", 1)
    undated = (float("-inf"),) * 3
    records = cursors.RunCases(sqlite3.connect(""))
    report = ReadReport()
    for position, digest in enumerate(["h1", "h2", "h2"]):
        records.add(Unchanged("u1", True, digest, undated, 0, position), "s", report)
    assert len(records) == 1
    # Undated copies tie: the last one read is the one kept, and each repeat is reported.
    assert records.wins(Unchanged("u1", True, "h2", undated, 0, 2), 2)
    assert not records.wins(Unchanged("u1", True, "h1", undated, 0, 0), 0)
    assert report.duplicates == ["u1", "u1"]
    assert len(report.problems) == 1 and "'u1' appears more than once" in report.problems[0]
