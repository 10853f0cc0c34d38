"""An unchanged re-run of `casematch index` over a Zendesk NDJSON export skips building the
tickets whose raw input is unchanged (input fingerprints stored in the index), with the same
counts and the same safety rules as a run that builds every ticket."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEncoder

import casematch.sources.zendesk as zendesk
from casematch.config import Settings
from casematch.index import CaseIndex
from casematch.storage import generations
from casematch.sync.build import BuildResult, build_index


def ticket(n: int, *, body: str = "", status: str = "solved",
           updated: str = "2026-01-02T00:00:00Z") -> dict[str, Any]:
    return {"id": n, "subject": f"Printer {n} jams", "status": status, "requester_id": 1,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": updated,
            "comments": [
                {"id": 10 * n + 1, "author_id": 1, "public": True,
                 "body": body or f"Printer {n} jams on tray two every morning"},
                {"id": 10 * n + 2, "author_id": 2, "public": True,
                 "body": f"Replace the roller kit {n} and restart the spooler."}]}


def write(path: Path, tickets: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(t) + "\n" for t in tickets), encoding="utf-8")
    return path


@pytest.fixture
def fixes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first answer of each fix choice made: one per ticket built, not recalled."""
    calls: list[str] = []
    real = zendesk.ticket_fix

    def counted(answers: Any, *args: Any, **kwargs: Any) -> int | None:
        calls.append(answers[0].text if answers else "")
        return real(answers, *args, **kwargs)

    monkeypatch.setattr(zendesk, "ticket_fix", counted)
    return calls


def run(source: Path | list[Path], settings: Settings, **kwargs: Any) -> BuildResult:
    sources = source if isinstance(source, list) else [source]
    return build_index(sources, settings, encoder=FakeEncoder(), **kwargs)


def counts(result: BuildResult) -> tuple[int, int, int, int]:
    return (result.read.read, result.read.resolved, result.read.cleaned,
            result.update.unchanged)


def settings_for(tmp_path: Path) -> Settings:
    return Settings.load(env={}, index_path=tmp_path / "idx")


def test_an_unchanged_rerun_builds_nothing_and_reports_the_same(tmp_path: Path,
                                                                 fixes: list[str]) -> None:
    # A lone surrogate is cleaned (and counted) when built; the count must survive a skip.
    tickets = [ticket(1, body="Printer 1 jams \ud800 on tray two"), ticket(2), ticket(3),
               ticket(4, status="open")]
    source = write(tmp_path / "tickets.ndjson", tickets)
    settings = settings_for(tmp_path)
    first = run(source, settings)
    assert first.update.added == 3 and len(fixes) == 3 and first.read.cleaned
    fixes.clear()
    again = run(source, settings)
    assert fixes == []  # no fix choice: nothing was built again
    assert counts(again) == (4, 3, first.read.cleaned, 3)
    assert not again.update.changed and again.update.skipped_unresolved == 1
    assert again.update.generation == first.update.generation
    with CaseIndex.open(settings.index_path) as index:
        case = index.get("zendesk:zendesk:2")
    assert case is not None and "roller kit 2" in case.resolution


def test_a_changed_line_is_built_again(tmp_path: Path, fixes: list[str]) -> None:
    source = write(tmp_path / "tickets.ndjson", [ticket(1), ticket(2), ticket(3)])
    settings = settings_for(tmp_path)
    run(source, settings)
    write(source, [ticket(1), ticket(2, body="Scanner 2 shows a paper jam light"), ticket(3)])
    fixes.clear()
    changed = run(source, settings)
    assert len(fixes) == 1
    assert (changed.update.updated, changed.update.unchanged) == (1, 2)
    with CaseIndex.open(settings.index_path) as index:
        case = index.get("zendesk:zendesk:2")
    assert case is not None and "Scanner 2" in case.problem
    fixes.clear()
    assert counts(run(source, settings))[3] == 3 and fixes == []


def test_changed_options_or_side_files_build_every_ticket_again(tmp_path: Path,
                                                                 fixes: list[str]) -> None:
    source = write(tmp_path / "tickets.ndjson", [ticket(1), ticket(2)])
    settings = settings_for(tmp_path)
    run(source, settings)
    fixes.clear()
    noted = dataclasses.replace(settings, include_internal_notes=True)
    assert run(source, noted).update.unchanged == 2 and len(fixes) == 2
    # Side-loaded users decide who is an agent: a change there reaches every ticket.
    (tmp_path / "users.json").write_text(json.dumps({"users": [
        {"id": 1, "name": "Ann", "role": "end-user"},
        {"id": 2, "name": "Bo", "role": "agent"}]}), encoding="utf-8")
    fixes.clear()
    with_users = run(source, noted)
    assert len(fixes) == 2 and with_users.update.refreshed == 2
    fixes.clear()
    assert run(source, noted).update.unchanged == 2 and fixes == []


def test_an_index_written_before_fingerprints_is_built_once_then_skipped(
        tmp_path: Path, fixes: list[str]) -> None:
    source = write(tmp_path / "tickets.ndjson", [ticket(1), ticket(2), ticket(3)])
    settings = settings_for(tmp_path)
    first = run(source, settings)
    # An index from before: its store has no table of input fingerprints at all.
    store = settings.index_path / first.update.generation / generations.CASES
    with sqlite3.connect(store) as db:
        db.execute("DROP TABLE case_inputs")
    fixes.clear()
    older = run(source, settings)
    assert len(fixes) == 3 and counts(older) == (3, 3, 0, 3) and not older.update.changed
    # The fingerprints alone are worth a generation, so the next run skips the building.
    assert older.update.generation != first.update.generation
    fixes.clear()
    assert counts(run(source, settings)) == (3, 3, 0, 3) and fixes == []
    with CaseIndex.open(settings.index_path) as index:
        assert len(index) == 3


def test_newest_copy_still_wins_across_sources_on_a_rerun(tmp_path: Path,
                                                          fixes: list[str]) -> None:
    old = write(tmp_path / "old.ndjson", [ticket(1, body="Printer 1 old text here"), ticket(2)])
    new = write(tmp_path / "new.ndjson", [ticket(1, body="Printer 1 newest text here",
                                                 updated="2026-02-01T00:00:00Z")])
    # The newer copy has the later comment dates: the newness a duplicate is judged by.
    lines = new.read_text().replace("\"public\": true", "\"public\": true, \"created_at\": "
                                                       "\"2026-02-01T00:00:00Z\"")
    new.write_text(lines, encoding="utf-8")
    settings = settings_for(tmp_path)
    first = run([old, new], settings)
    assert first.read.duplicates == ["zendesk:zendesk:1"]
    for _ in range(2):
        fixes.clear()
        again = run([old, new], settings)
        assert again.read.duplicates == ["zendesk:zendesk:1"] and not again.update.changed
        # Only ticket 1 is built (its losing copy's input is not the stored one, and a
        # one-pass attempt writes the loser before the duplicate is known); 2 never is.
        assert fixes and all("kit 1" in answer for answer in fixes)
        with CaseIndex.open(settings.index_path) as index:
            case = index.get("zendesk:zendesk:1")
        assert case is not None and "newest text" in case.problem


def test_a_partial_rerun_deletes_nothing_and_keeps_the_rest_unbuilt(
        tmp_path: Path, fixes: list[str]) -> None:
    source = write(tmp_path / "tickets.ndjson", [ticket(n) for n in range(1, 6)])
    settings = settings_for(tmp_path)
    run(source, settings)
    lines = source.read_text(encoding="utf-8").splitlines()
    source.write_text("\n".join([*lines[:4], '{"id": 5, "subject": "tru']) + "\n",
                      encoding="utf-8")
    fixes.clear()
    partial = run(source, settings)
    assert partial.status == "partial" and partial.update.deleted == 0 and fixes == []
    with CaseIndex.open(settings.index_path) as index:
        assert len(index) == 5
