"""The SQLite half of a generation: cases, chunks, filters and FTS5, without FAISS."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import make_case

from casematch.cases import Filters, Visibility
from casematch.errors import IndexFormatError
from casematch.storage.lexical import match_expression
from casematch.storage.store import CaseStore


def _store(path: Path) -> CaseStore:
    store = CaseStore(path / "cases.sqlite", create=True)
    cases = [
        make_case("a", "VPN drops every hour", "Raise the IKE lifetime", channel="network",
                  source="slack", tags=("vpn",),
                  created_at=datetime(2026, 1, 5, tzinfo=UTC)),
        make_case("b", "Printer E1042 jam on floor 3", "Replace the fuser",
                  channel="it", source="zendesk",
                  created_at=datetime(2026, 3, 1, tzinfo=UTC)),
        make_case("c", "VPN certificate expired", "", channel="network", source="slack",
                  visibility=Visibility(private=True, members=("U1",))),
    ]
    for case in cases:
        rowid = store.add_case(case, case.content_hash())
        store.add_chunks(rowid, "case", case.search_text().split("\n\n"))
    store.finish_lexical()
    store.commit()
    return store


def test_cases_round_trip_and_keep_their_chunks(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.case_by_id("a") == make_case(
        "a", "VPN drops every hour", "Raise the IKE lifetime", channel="network",
        source="slack", tags=("vpn",), created_at=datetime(2026, 1, 5, tzinfo=UTC))
    assert store.case_by_id("nope") is None
    stats = store.stats()
    assert (stats["cases"], stats["resolved"], stats["chunks"]) == (3, 2, 5)
    assert stats["by_source"] == {"slack": 2, "zendesk": 1}
    hashes = store.hashes()
    assert hashes["b"][1] == make_case("b", "Printer E1042 jam on floor 3",
                                       "Replace the fuser").content_hash()


def test_replacing_a_case_drops_its_old_chunks(tmp_path: Path) -> None:
    store = _store(tmp_path)
    old_rowid = store.hashes()["a"][0]
    new = make_case("a", "VPN drops every hour on macOS", "Raise the IKE lifetime to 8h")
    rowid = store.add_case(new, new.content_hash())
    store.add_chunks(rowid, "case", [new.search_text()])
    assert rowid != old_rowid and store.chunk_rows(old_rowid) == []
    assert [text for _, _, text in store.chunk_rows(rowid)] == [new.search_text()]


def test_filters_and_the_chunk_map_agree(tmp_path: Path) -> None:
    store = _store(tmp_path)
    rowid = {case_id: row for case_id, (row, _) in store.hashes().items()}
    by = store.filtered_rowids
    assert set(by(**Filters(channels=("network",)).sql_args())) == {rowid["a"]}  # c unresolved
    assert set(by(**Filters(channels=("network",), resolved_only=False).sql_args())) == {
        rowid["a"], rowid["c"]}
    assert set(by(**Filters(tags=("vpn",)).sql_args())) == {rowid["a"]}
    since = Filters(since=datetime(2026, 2, 1, tzinfo=UTC))
    assert set(by(**since.sql_args())) == {rowid["b"]}
    # Excluded ids are searched as if absent, together with the other filters.
    assert set(by(**Filters(exclude=("a",)).sql_args())) == {rowid["b"]}
    assert set(by(**Filters(exclude=("a", "b", "nosuchid"), resolved_only=False)
                  .sql_args())) == {rowid["c"]}
    chunks = store.chunk_map()
    assert len(chunks) == 5
    b_chunks, counts = chunks.chunks_of_each([rowid["b"]])
    assert len(b_chunks) == 2 and counts.tolist() == [2]
    assert set(chunks.cases_of(b_chunks)) == {rowid["b"]}
    assert set(chunks.chunks_in(np.array([rowid["b"]]))) == set(b_chunks)
    # Several cases at once, in the order asked, a case without chunks counted as 0.
    ids, counts = chunks.chunks_of_each([rowid["b"], 10**6, rowid["a"], rowid["b"]])
    assert counts.tolist() == [2, 0, len(chunks.chunks_in(np.array([rowid["a"]]))), 2]
    assert set(chunks.cases_of(ids[:2])) == set(chunks.cases_of(ids[-2:])) == {rowid["b"]}
    assert set(chunks.cases_of(ids[2:-2])) == {rowid["a"]}


def test_lexical_search_ranks_rare_terms_and_respects_filters(tmp_path: Path) -> None:
    store = _store(tmp_path)
    rowid = {case_id: row for case_id, (row, _) in store.hashes().items()}
    weights = (2.0, 1.0, 0.5)
    hits = store.lexical_search(match_expression(["e1042"]), weights=weights)
    assert [r for r, _ in hits] == [rowid["b"]] and hits[0][1] > 0
    vpn = store.lexical_search(match_expression(["vpn"]), weights=weights, resolved_only=True)
    assert [r for r, _ in vpn] == [rowid["a"]]
    assert store.lexical_search(match_expression(["vpn"]), weights=weights,
                                sources=("zendesk",)) == []
    assert store.lexical_search(match_expression(["e1042"]), weights=weights,
                                exclude=("b",)) == []
    # Stemmed counts: "drops" and "drop" are one term.
    assert store.document_frequencies(["drop", "vpn", "nosuchword"]) == {"drop": 1, "vpn": 2}


def test_a_missing_or_foreign_file_is_an_index_format_error(tmp_path: Path) -> None:
    with pytest.raises(IndexFormatError, match="missing"):
        CaseStore(tmp_path / "none.sqlite")
    foreign = tmp_path / "foreign.sqlite"
    foreign.write_bytes(b"not a database at all" * 100)
    with pytest.raises(IndexFormatError, match="not a casematch case store"):
        CaseStore(foreign)


def test_a_read_only_store_keeps_decoded_cases_within_its_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import casematch.storage.store as store_module

    written = _store(tmp_path)
    rowids = {c: written.case_by_id(c) for c in "abc"}
    by_id = {case.id: rowid for rowid, case in written.cases_by_rowid([1, 2, 3]).items()}
    written.close()
    monkeypatch.setattr(store_module, "DECODED_CASES", 2)
    reader = CaseStore(tmp_path / "cases.sqlite")
    first = reader.cases_by_rowid([by_id["a"], by_id["b"]])
    # The second read is the cache's: the very same objects, equal to what was written.
    again = reader.cases_by_rowid([by_id["b"], by_id["a"]])
    assert again[by_id["a"]] is first[by_id["a"]] and again[by_id["a"]] == rowids["a"]
    # A third case evicts the oldest; every answer stays complete and correct.
    mixed = reader.cases_by_rowid([by_id["c"], by_id["a"]])
    assert {case.id for case in mixed.values()} == {"c", "a"}
    assert len(reader._decoded or ()) == 2
    assert reader.cases_by_rowid([by_id["b"]])[by_id["b"]] == rowids["b"]
    assert reader.cases_by_rowid([]) == {}
    # One read of more cases than the bound (tune reads them all) answers all of them.
    fresh = CaseStore(tmp_path / "cases.sqlite")
    every = fresh.cases_by_rowid(sorted(by_id.values()))
    assert {case.id for case in every.values()} == {"a", "b", "c"}
    assert len(fresh._decoded or ()) == 2


def test_a_store_being_written_never_serves_stale_cases(tmp_path: Path) -> None:
    store = _store(tmp_path)
    rowid = next(r for r, c in store.cases_by_rowid([1, 2, 3]).items() if c.id == "b")
    store.update_case(rowid, make_case("b", "Printer E2000 jam on floor 4", "New fuser"))
    assert store.cases_by_rowid([rowid])[rowid].problem == "Printer E2000 jam on floor 4"
