"""BM25 from stored postings is FTS5's bm25(): same cases, same scores, commit after commit."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, make_case
from hypothesis import given, settings
from hypothesis import strategies as st

from casematch.cases import Case, Filters
from casematch.index import CaseIndex
from casematch.search.options import DEFAULT_OPTIONS
from casematch.storage import postings
from casematch.storage.generations import Generation
from casematch.storage.lexical import match_expression, query_terms, select_terms
from casematch.storage.store import CaseStore
from casematch.storage.writer import IndexWriter

# Stems shared by several words, diacritics, an identifier, digits, and words common
# enough to be in more than half the cases (FTS5 then floors their IDF).
WORDS = ["crash", "crashes", "crashing", "café", "cafe", "E_1042", "v2", "vpn", "tunnel",
         "printer", "jams", "fuser", "outlook", "password", "the", "login", "okta", "saml"]
_TEXT = st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)
_CASE = st.tuples(_TEXT, _TEXT, _TEXT, st.sampled_from(["it", "facilities"]))
WEIGHTS = [DEFAULT_OPTIONS.field_weights, (1.3, 0.7, 0.2)]


def _case(case_id: str, title: str, problem: str, resolution: str, channel: str) -> Case:
    return make_case(case_id, problem or "(empty)", resolution or "fixed", title=title,
                     channel=channel)


def _assert_fts5_scores(store: CaseStore, queries: list[str]) -> int:
    """Every query's stored-postings scores against FTS5's, unfiltered and filtered;
    returns how many (query, weights, filter) answers were compared."""
    compared = 0
    facilities = store.filtered_rowids(resolved_only=False, channels=["facilities"])
    for text in queries:
        # As the lexical side chooses them: terms some case holds (all, at this size).
        terms = select_terms(query_terms(text), store.document_frequencies)
        if not terms:
            continue
        expression = match_expression([t.raw for t in terms])
        stems = [t.stem for t in terms]
        for weights in WEIGHTS:
            for allowed, where in ((None, {}), (facilities, {"channels": ["facilities"]})):
                ours = store.bm25(stems, weights=weights, allowed=allowed)
                theirs = store.lexical_search(expression, weights=weights, **where)
                assert ours is not None
                assert dict(ours).keys() == dict(theirs).keys(), text
                for (rowid, score), want in zip(ours, [dict(theirs)[r] for r, _ in ours],
                                                strict=True):
                    assert score == pytest.approx(want, rel=1e-12, abs=1e-15), (text, rowid)
                # Best first, ties by rowid.
                assert ours == sorted(ours, key=lambda item: (-item[1], item[0]))
                compared += 1
    return compared


@given(first=st.lists(_CASE, min_size=1, max_size=12),
       changes=st.lists(st.tuples(st.integers(0, 15), st.one_of(st.none(), _CASE)),
                        max_size=10),
       queries=st.lists(_TEXT, min_size=1, max_size=4))
@settings(max_examples=40, deadline=None)
def test_stored_postings_score_as_fts5_after_every_commit(
        first: list[tuple[str, str, str, str]],
        changes: list[tuple[int, tuple[str, str, str, str] | None]],
        queries: list[str]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "idx"
        encoder = FakeEncoder()
        with IndexWriter(root, encoder) as writer:
            for n, fields in enumerate(first):
                writer.upsert(_case(f"c{n}", *fields))
            writer.commit()
        _assert_fts5_scores(Generation.open(root).store, queries)
        # The next generation rewrites only the postings its changes touch: edits, new
        # cases, deletions (None), ids given twice in one run.
        with IndexWriter(root, encoder) as writer:
            for n, fields in changes:
                if fields is None:
                    writer.delete(f"c{n}")
                else:
                    writer.upsert(_case(f"c{n}", *fields))
            writer.commit()
        _assert_fts5_scores(Generation.open(root).store, queries)


def test_a_title_refresh_and_deletions_update_the_postings(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    cases = [make_case("a", "Okta login loops after the SAML change", "Fixed the audience"),
             make_case("b", "VPN tunnel drops", "Raised the lifetime"),
             make_case("c", "Printer jams on tray two", "Replaced the fuser")]
    CaseIndex.build(cases, root, encoder=FakeEncoder())
    with IndexWriter(root, FakeEncoder()) as writer:
        # Same indexed text (the problem starts with the title), new words in the title.
        writer.upsert(make_case("a", "Okta login loops after the SAML change", "Fixed the "
                                "audience", title="Okta login"))
        writer.upsert(cases[1])
        writer.delete_unseen()  # c goes
        result = writer.commit()
    assert (result.refreshed, result.deleted) == (1, 1)
    store = Generation.open(root).store
    # 2 weights x (unfiltered, filtered); "printer jams" is no case's any more.
    assert _assert_fts5_scores(store, ["okta login fuser tunnel", "printer jams"]) == 4
    kept = {term for (term,) in store._db.execute("SELECT term FROM postings")}
    assert "login" in kept and not {"printer", "jam", "fuser"} & kept  # c's went with it


def test_terms_in_too_many_cases_are_left_to_fts5(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postings, "MAX_DF", 2)
    cases = [make_case(f"c{n}", f"printer {n} jams", "replaced the fuser") for n in range(3)]
    cases.append(make_case("d", "vpn tunnel drops", "raised the lifetime"))
    index, _ = CaseIndex.build(cases, tmp_path / "idx", encoder=FakeEncoder())
    store = index.storage.store
    assert store.bm25(["printer"], weights=(1, 1, 1)) is None  # in 3 cases: no postings
    assert store.bm25(["printer", "vpn"], weights=(1, 1, 1)) is None
    assert [r for r, _ in store.bm25(["vpn"], weights=(1, 1, 1)) or []] == \
        [store.hashes()["d"][0]]
    # The search asks FTS5 then, with the same results.
    matches = index.search("printer jams", k=4, options=DEFAULT_OPTIONS)
    assert {m.case.id for m in matches[:3]} == {"c0", "c1", "c2"}


def test_a_generation_without_postings_searches_through_fts5_the_same(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    cases = [make_case(f"c{n}", f"{w} error E_{1000 + n} on {w} host", f"restarted {w}",
                       channel="it" if n % 2 else "facilities")
             for n, w in enumerate(["printer", "vpn", "okta", "outlook", "badge", "wifi"])]
    index, _ = CaseIndex.build(cases, root, encoder=FakeEncoder())
    queries = [("vpn error E_1001", Filters()), ("host error", Filters(channels=("it",))),
               ("okta badge wifi", Filters(exclude=("c2",)))]

    def answers(opened: CaseIndex) -> list[list[tuple[str, float]]]:
        return [[(m.case.id, m.score) for m in opened.search(q, k=6, filters=f)]
                for q, f in queries]

    expected = answers(index)
    assert index.storage.store.bm25(["vpn"], weights=(1, 1, 1))  # scored from postings
    index.close()
    with sqlite3.connect(root / index.generation / "cases.sqlite") as db:
        db.execute("DROP TABLE postings")
        db.execute("DROP TABLE postings_meta")
    db.close()
    with CaseIndex.open(root, encoder=FakeEncoder()) as older:
        assert older.storage.store.bm25(["vpn"], weights=(1, 1, 1)) is None
        got = answers(older)
    assert [[r for r, _ in q] for q in got] == [[r for r, _ in q] for q in expected]
    assert np.allclose([s for q in got for _, s in q], [s for q in expected for _, s in q],
                       rtol=1e-12)
    # The next generation written from it keeps postings for every term again.
    with IndexWriter(root, FakeEncoder()) as writer:
        writer.upsert(make_case("new", "Badge reader offline", "Rebooted it"))
        writer.commit()
    store = Generation.open(root).store
    assert _assert_fts5_scores(store, ["badge vpn error", "host restarted"]) == 8


def test_damaged_postings_give_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    from casematch.errors import IndexFormatError

    cases = [make_case("a", "vpn tunnel drops", "raised the lifetime"),
             make_case("b", "printer jams", "replaced the fuser")]
    index, _ = CaseIndex.build(cases, tmp_path / "idx", encoder=FakeEncoder())
    path = tmp_path / "idx" / index.generation / "cases.sqlite"
    index.close()
    for damage in (b"\x01\x02\x03", np.array([99], np.int32).tobytes() + bytes(6)):
        with sqlite3.connect(path) as db:  # a torn blob; a case the index does not hold
            db.execute("UPDATE postings SET data = ? WHERE term = 'vpn'", (damage,))
        db.close()
        with CaseIndex.open(tmp_path / "idx", encoder=FakeEncoder()) as opened, \
                pytest.raises(IndexFormatError, match=r"cases\.sqlite: damaged BM25 postings"):
            opened.search("vpn tunnel", k=1)


def test_an_index_with_no_cases_commits_and_searches(tmp_path: Path) -> None:
    # An FTS5 table with no rows may have no averages record yet.
    with IndexWriter(tmp_path / "idx", FakeEncoder()) as writer:
        writer.commit()
    store = Generation.open(tmp_path / "idx").store
    assert store._postings_stats is not None and store._postings_stats[:2] == (0, 0)
    assert store.bm25(["vpn"], weights=(1, 1, 1)) is None  # no postings: FTS5 answers
    with CaseIndex.open(tmp_path / "idx", encoder=FakeEncoder()) as index:
        assert index.search("vpn tunnel", k=3) == []
