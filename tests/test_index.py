"""Index mechanics with a fake encoder: generations, reuse, atomicity, bad indexes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, make_case
from hypothesis import given, settings
from hypothesis import strategies as st

from casematch.cases import Filters
from casematch.errors import IndexFormatError, IndexLockedError, ModelMismatchError
from casematch.index import CaseIndex
from casematch.search import DEFAULT_OPTIONS, search
from casematch.storage.generations import CURRENT, Generation
from casematch.storage.vectors import VectorIndex
from casematch.storage.writer import IndexWriter

CASES = [
    make_case("a", "VPN tunnel drops every hour", "Raise the IKE lifetime", channel="it"),
    make_case("b", "Printer on floor 3 jams", "Replace the fuser", channel="facilities"),
    make_case("c", "Outlook keeps asking for password", "Reset the credential manager",
              channel="it", tags=("email",)),
    make_case("d", "VPN cannot connect from hotel wifi", resolved=False, channel="it"),
]


def build(path: Path, encoder: FakeEncoder, cases=CASES, **kwargs):  # type: ignore[no-untyped-def]
    return CaseIndex.build(cases, path, encoder=encoder, **kwargs)


def test_build_open_round_trip(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    _, result = build(tmp_path / "idx", fake_encoder)
    assert (result.added, result.skipped_unresolved, result.embedded) == (3, 1, 3)
    reopened = CaseIndex.open(tmp_path / "idx", encoder=fake_encoder)
    assert len(reopened) == 3
    assert reopened.get("c") == CASES[2]
    assert reopened.get("d") is None  # unresolved cases are not indexed by default
    [top] = reopened.search("vpn tunnel drops", k=1)
    assert (top.case.id, top.rank, top.snippet) == ("a", 1, "Raise the IKE lifetime")
    manifest = json.loads((tmp_path / "idx" / reopened.generation / "manifest.json").read_text())
    assert manifest["model"] == "fake-bag-of-words"
    assert manifest["dimension"] == 64
    assert (manifest["cases"], manifest["chunks"], manifest["format"]) == (3, 3, 2)


def test_opening_with_another_model_says_which_model(tmp_path: Path,
                                                     fake_encoder: FakeEncoder) -> None:
    build(tmp_path / "idx", fake_encoder)
    with pytest.raises(ModelMismatchError, match="built with model 'fake-bag-of-words'"):
        CaseIndex.open(tmp_path / "idx", model="some/other-model")


def test_rebuild_embeds_only_what_changed(tmp_path: Path) -> None:
    first = FakeEncoder()
    build(tmp_path / "idx", first)
    second = FakeEncoder()
    changed = [*CASES[:2], make_case("c", "Outlook asks for the password again",
                                     "Reset the credential manager"),
               make_case("e", "Badge reader offline", "Power-cycle the controller")]
    index, result = build(tmp_path / "idx", second, cases=changed)
    assert (result.added, result.updated, result.unchanged, result.deleted) == (1, 1, 2, 0)
    assert second.encoded == [changed[2].search_text(), changed[3].search_text()]
    assert {m.case.id for m in index.search("outlook password badge vpn printer", k=10)} == {
        "a", "b", "c", "e"}


def test_cases_missing_from_a_full_build_are_deleted(tmp_path: Path,
                                                     fake_encoder: FakeEncoder) -> None:
    build(tmp_path / "idx", fake_encoder)
    index, result = build(tmp_path / "idx", fake_encoder, cases=CASES[:1])
    assert result.deleted == 2
    assert len(index) == 1
    assert [m.case.id for m in index.search("printer outlook vpn", k=5)] == ["a"]


def test_nothing_changed_writes_no_generation(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    first, _ = build(tmp_path / "idx", fake_encoder)
    again, result = build(tmp_path / "idx", fake_encoder)
    assert not result.changed
    assert again.generation == first.generation


def test_metadata_change_is_written_without_embedding(tmp_path: Path) -> None:
    build(tmp_path / "idx", FakeEncoder())
    encoder = FakeEncoder()
    moved = [make_case("a", CASES[0].problem, CASES[0].resolution, channel="network"),
             *CASES[1:]]
    index, result = build(tmp_path / "idx", encoder, cases=moved)
    assert (result.refreshed, result.embedded, encoder.encoded) == (1, 0, [])
    assert index.get("a").channel == "network"  # type: ignore[union-attr]


def test_update_upserts_and_deletes(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    index, _ = build(tmp_path / "idx", fake_encoder)
    newer, result = index.update([make_case("f", "Laptop fan is loud", "Clean the vents")],
                                 delete=["b"])
    assert (result.added, result.deleted) == (1, 1)
    assert newer.get("f") is not None and newer.get("b") is None
    # The generation opened before the update keeps answering.
    assert index.search("printer jams", k=1)[0].case.id == "b"


def test_generations_are_pruned_to_current_and_previous(tmp_path: Path,
                                                        fake_encoder: FakeEncoder) -> None:
    for n in range(4):
        build(tmp_path / "idx", fake_encoder, cases=CASES[: n + 1] if n < 3 else CASES[:1])
    generations = sorted(p.name for p in (tmp_path / "idx").glob("g*"))
    assert generations == ["g000003", "g000004"]
    assert (tmp_path / "idx" / CURRENT).read_text().strip() == "g000004"


def test_failure_mid_build_leaves_the_old_index_serving(tmp_path: Path,
                                                        fake_encoder: FakeEncoder) -> None:
    build(tmp_path / "idx", fake_encoder)

    def broken():  # type: ignore[no-untyped-def]
        yield CASES[0]
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError):
        build(tmp_path / "idx", fake_encoder, cases=broken())
    index = CaseIndex.open(tmp_path / "idx", encoder=fake_encoder)
    assert len(index) == 3
    assert not list((tmp_path / "idx").glob(".tmp-*"))


def test_second_writer_is_refused(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    build(tmp_path / "idx", fake_encoder)
    with IndexWriter(tmp_path / "idx", fake_encoder), pytest.raises(
        IndexLockedError, match="another casematch process is writing"
    ):
        build(tmp_path / "idx", fake_encoder)


def test_long_text_is_chunked_and_scores_by_best_chunk(tmp_path: Path) -> None:
    encoder = FakeEncoder(window_words=10)
    long_case = make_case("long", "intro words here " * 10 + "kerberos ticket expired",
                          "Sync the clock")
    index, result = build(tmp_path / "idx", encoder, cases=[long_case, *CASES[:2]])
    assert result.embedded > 3
    assert index.search("kerberos ticket expired", k=1)[0].case.id == "long"
    assert [m.case.id for m in index.search("kerberos", k=3)].count("long") == 1


def test_filters_are_applied_inside_retrieval(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    index, _ = build(tmp_path / "idx", fake_encoder, include_unresolved=True)
    # The printer case is the only one in its channel; it must come back even though the
    # query is closest to the VPN cases.
    facilities = Filters(channels=("facilities",))
    only_facilities = index.search("vpn tunnel drops", k=2, filters=facilities)
    assert [m.case.id for m in only_facilities] == ["b"]
    assert [m.case.id for m in index.search("x", filters=Filters(tags=("email",)))] == ["c"]
    assert "d" not in {m.case.id for m in index.search("vpn hotel wifi", k=4)}
    unresolved_too = index.search("vpn hotel wifi", k=1, filters=Filters(resolved_only=False))
    assert unresolved_too[0].case.id == "d"
    assert index.search("vpn", filters=Filters(channels=("nowhere",))) == []


@pytest.mark.parametrize("damage", ["manifest", "vectors", "sqlite", "current"])
def test_damaged_index_gives_a_clear_error(tmp_path: Path, fake_encoder: FakeEncoder,
                                           damage: str) -> None:
    index, _ = build(tmp_path / "idx", fake_encoder)
    gen = tmp_path / "idx" / index.generation
    target = {"manifest": gen / "manifest.json", "vectors": gen / "vectors.faiss",
              "sqlite": gen / "cases.sqlite", "current": tmp_path / "idx" / CURRENT}[damage]
    target.write_bytes(b"\x00garbage" if damage != "current" else b"g999999\n")
    with pytest.raises(IndexFormatError, match=str(target.name)):
        CaseIndex.open(tmp_path / "idx", encoder=fake_encoder)


def test_missing_index_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(IndexFormatError, match="build one with `casematch index"):
        CaseIndex.open(tmp_path / "none")


def test_cosines_of_lexical_only_hits_are_their_best_chunk(tmp_path: Path) -> None:
    from casematch.search.retrieve import _dense_for

    encoder = FakeEncoder(window_words=4)  # several chunks per case
    cases = [make_case(f"c{i}", f"printer {i} jams " * (i + 1), "fuser") for i in range(6)]
    CaseIndex.build(cases, tmp_path / "idx", encoder=encoder)
    generation = Generation.open(tmp_path / "idx")
    store = generation.store
    query = encoder.encode(["printer 3 jams"])
    rowids = [rowid for rowid, _ in store.hashes().values()]
    scores = _dense_for(generation, query, list(reversed(rowids)))
    assert scores.keys() == set(rowids)
    assert max(len(store.chunk_rows(rowid)) for rowid in rowids) > 2
    for rowid in rowids:
        chunks = encoder.encode([text for _, _, text in store.chunk_rows(rowid)])
        # Within the rounding of 16-bit codes.
        assert scores[rowid] == pytest.approx(float(np.max(chunks @ query[0])), abs=1e-3)
    assert _dense_for(generation, query, []) == {}


def test_the_collapse_sketch_never_changes_a_same_incident_decision() -> None:
    import random

    from casematch.search.collapse import _jaccard, _possibly_same
    from casematch.storage.sketches import shingles as _shingles

    def same_incident(a: str, b: str, threshold: float) -> bool:  # as collapse decides
        (grams_a, sketch_a, count_a), (grams_b, sketch_b, count_b) = _shingles(a), _shingles(b)
        return (_possibly_same(sketch_a, count_a, sketch_b, count_b, threshold)
                and _jaccard(grams_a, grams_b) >= threshold)

    rng = random.Random(3)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9)))
             for _ in range(400)]
    base = [" ".join(rng.choices(words, k=60))[:400] for _ in range(40)]
    # Pairs from identical to unrelated: a text against copies with more and more words
    # swapped, so exact Jaccards spread over the whole range around each threshold.
    pairs = []
    for text in base:
        for swaps in (0, 1, 2, 3, 4, 6, 8, 11, 16, 40):
            tokens = text.split()
            for _ in range(swaps):
                tokens[rng.randrange(len(tokens))] = rng.choice(words)
            pairs.append((text, " ".join(tokens)))
    seen = set()
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9):
        for a, b in pairs:
            exact = _jaccard(_shingles(a)[0], _shingles(b)[0])
            seen.add(round(exact, 1))
            assert same_incident(a, b, threshold) == (exact >= threshold)
    assert {0.5, 0.6, 0.7, 0.8, 0.9, 1.0} <= seen  # the pairs did straddle the thresholds


def test_collapse_trigrams_are_the_texts_three_character_substrings() -> None:
    from casematch.search.collapse import _jaccard
    from casematch.storage.sketches import shingles as _shingles

    def substrings(text: str) -> set[str]:
        return {text[i : i + 3] for i in range(max(1, len(text) - 2))}

    texts = ["printer jams on floor 3", "printer jammed on floor 3", "ab", "", "a",
             "émoji 🙂 naïve café", "emoji 🙂 naive cafe", "lone \ud800 surrogate", "aaaa"]
    for a in texts:
        assert len(_shingles(a)[0]) == len(substrings(a))
        for b in texts:
            want = len(substrings(a) & substrings(b)) / len(substrings(a) | substrings(b))
            assert _jaccard(_shingles(a)[0], _shingles(b)[0]) == pytest.approx(want)


def test_a_forked_child_can_search_after_its_parent_did(tmp_path: Path) -> None:
    import multiprocessing

    cases = [make_case(f"c{i}", f"printer {i} jams on floor {i}", "replace the fuser")
             for i in range(20)]
    CaseIndex.build(cases, tmp_path / "idx", encoder=FakeEncoder())
    opened = Generation.open(tmp_path / "idx")
    # FTS5 goes through the background pool, and the vector scan through its own, as on an
    # index large enough to split it.
    generation = dataclasses.replace(opened, vectors=VectorIndex(opened.vectors.index, parts=2))
    encoder = FakeEncoder()

    def ids(text: str) -> list[str]:
        return [m.case.id for m in search(generation, encoder, text, k=1)]

    assert ids("printer 3 jams") == ["c3"]  # the pools now have threads

    def child(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
        queue.put(ids("printer 7 jams"))

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=child, args=(queue,))
    process.start()
    process.join(timeout=30)
    alive = process.is_alive()
    if alive:
        process.kill()
    assert not alive, "the search in the forked child hung"
    assert queue.get(timeout=5) == ["c7"]


def test_an_index_of_an_older_format_is_refused_with_how_to_rebuild(
        tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    index, _ = build(tmp_path / "idx", fake_encoder)
    path = tmp_path / "idx" / index.generation / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**manifest, "format": 1}), encoding="utf-8")
    with pytest.raises(IndexFormatError, match=r"format 1.*reads format 2.*rebuild") as error:
        CaseIndex.open(tmp_path / "idx", encoder=fake_encoder)
    assert "--full" in str(error.value)


def test_writer_embeds_pending_texts_in_batches_from_the_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Texts wait in the new generation's SQLite file and are embedded a batch at a time;
    # a case replaced, deleted or not seen again in the same run is never embedded.
    from casematch.storage import writer as writer_module
    from casematch.storage.writer import IndexWriter

    monkeypatch.setattr(writer_module, "EMBED_BATCH", 2)
    root = tmp_path / "idx"
    encoder = FakeEncoder()
    with IndexWriter(root, encoder) as writer:
        for n in range(7):
            writer.upsert(make_case(f"c{n}", f"Printer {n} jams on tray two", f"Clean roller {n}"))
        writer.upsert(make_case("c3", "Printer 3 jams on tray two", "Replace the fuser"))
        writer.delete("c5")
        result = writer.commit()
    assert (result.added, result.deleted, result.embedded) == (7, 1, 6)
    assert sorted(t for t in encoder.encoded if "fuser" in t or "roller 3" in t) == [
        "Printer 3 jams on tray two\n\nReplace the fuser"]
    with IndexWriter(root, encoder) as writer:
        for n in (0, 1, 2):  # unchanged
            writer.upsert(make_case(f"c{n}", f"Printer {n} jams on tray two", f"Clean roller {n}"))
        writer.upsert(make_case("c4", "Printer 4 jams on tray two", "Swap the tray"))
        writer.delete_unseen()
        second = writer.commit()
    assert (second.unchanged, second.updated, second.deleted, second.embedded) == (3, 1, 2, 1)
    with CaseIndex.open(root, encoder=FakeEncoder()) as index:
        assert sorted(index.storage.store.hashes()) == ["c0", "c1", "c2", "c4"]
        # Opening checks the vector count against the store (Generation.open).
        assert index.storage.store.stats()["chunks"] == 4
        # Every vector is the embedding of its own chunk's text (ids matched in batches).
        store = index.storage.store
        rows = [row for case_id in ("c0", "c1", "c2", "c4")
                for row in store.chunk_rows(store.hashes()[case_id][0])]
        stored = index.storage.vectors.reconstruct_batch(np.array([r[0] for r in rows]))
        assert np.allclose(stored, FakeEncoder().encode([r[2] for r in rows]), atol=1e-2)


# Words (final sigma, dotted I, accents included) separated by runs of 1 to 300 spaces,
# so that some texts shrink below the compared length once their whitespace is squeezed.
_WORDS = st.text(alphabet=st.sampled_from("a\u03a3\u03c3\u0130\u00e9xyz1"), max_size=12)
_SPACES = st.integers(1, 300).map(lambda n: ("\t\n \u2003" * n)[:n])


@given(st.lists(st.tuples(_WORDS, _SPACES), max_size=250))
@settings(max_examples=300, deadline=None)
def test_collapse_compares_the_same_characters_as_normalising_the_whole_text(
    parts: list[tuple[str, str]],
) -> None:
    from casematch.storage.sketches import COLLAPSE_CHARS, compared_text

    text = "".join(word + spaces for word, spaces in parts)
    assert compared_text(text) == " ".join(text.lower().split())[:COLLAPSE_CHARS]


# Recurring incidents among unrelated cases: each problem below is reported twice, with
# only the reporter's note differing, and no two problems share much text.
_PROBLEMS = ["Printer on floor three jams on tray two after the firmware update",
             "Outlook keeps asking for the password since the migration",
             "VPN tunnel drops every hour when roaming between offices",
             "Badge reader at the north gate rejects every contractor card",
             "Shared drive mounts read-only for the finance team on Mondays",
             "Conference room display shows no signal from USB-C laptops",
             "Payroll export times out when it includes more than ten thousand rows"]
INCIDENTS = [make_case(f"{n}{twin}", f"{problem}. Reported by {reporter}.",
                       f"Fixed it ({n}{twin})", channel="it")
             for n, problem in enumerate(_PROBLEMS)
             for twin, reporter in (("a", "Ana"), ("b", "Bo"))]


def _computed_sketches(store) -> dict[int, tuple[int, int]]:  # type: ignore[no-untyped-def]
    from casematch.storage.sketches import problem_shingles

    cases = store.cases_by_rowid([rowid for rowid, _ in store.hashes().values()])
    return {rowid: problem_shingles(case.title, case.problem)[1:] for rowid, case in cases.items()}


def test_every_case_is_stored_with_its_collapse_sketch(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    CaseIndex.build(INCIDENTS, root, encoder=FakeEncoder())
    with IndexWriter(root, FakeEncoder()) as writer:
        for case in INCIDENTS[1:]:
            writer.upsert(case)
        # A title the problem starts with leaves the indexed text (and chunks) as they
        # were, but collapse compares it: the refresh must replace the sketch.
        retitled = dataclasses.replace(INCIDENTS[2], title="Outlook keeps asking")
        assert retitled.content_hash() == INCIDENTS[2].content_hash()
        writer.upsert(retitled)
        writer.upsert(make_case("new", "Badge reader at the gate is offline", "Rebooted it"))
        writer.delete_unseen()  # the first case goes
        result = writer.commit()
    assert (result.refreshed, result.added, result.deleted) == (1, 1, 1)
    store = Generation.open(root).store
    expected = _computed_sketches(store)
    assert len(expected) == len(INCIDENTS)  # one added, one deleted
    assert store.sketches(list(expected)) == expected
    raw = store._db.execute("SELECT count(*) FROM case_sketches").fetchone()[0]
    assert raw == len(expected)  # the deleted case's sketch went with it


def test_a_read_only_store_keeps_the_sketches_it_read_within_a_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from casematch.storage import store as store_module

    CaseIndex.build(INCIDENTS, tmp_path / "idx", encoder=FakeEncoder())
    monkeypatch.setattr(store_module, "SKETCHES_KEPT", 4)
    store = Generation.open(tmp_path / "idx").store
    rowids = sorted(rowid for rowid, _ in store.hashes().values())
    first = store.sketches(rowids[:3])
    read: list[int] = []
    reads = store._read_sketches
    monkeypatch.setattr(store, "_read_sketches", lambda r: read.extend(r) or reads(r))
    assert store.sketches(rowids[:3]) == first and read == []  # kept: no SQLite read
    computed = _computed_sketches(store)
    assert store.sketches(rowids[2:6]) == {r: computed[r] for r in rowids[2:6]}
    assert read == rowids[3:6] and len(store._sketches or ()) == 4  # oldest went
    assert store.sketches(rowids[:1]) == {rowids[0]: first[rowids[0]]}
    assert read[-1:] == rowids[:1]


def test_collapse_reads_stored_sketches_and_decodes_only_the_matches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index, _ = CaseIndex.build(INCIDENTS, tmp_path / "idx", encoder=FakeEncoder())
    store = index.storage.store
    decoded: list[int] = []
    read = store._read_cases
    monkeypatch.setattr(store, "_read_cases", lambda rowids: decoded.extend(rowids) or read(rowids))
    matches = index.search("outlook keeps asking for the password", k=4)
    assert [len(m.duplicates) for m in matches] == [1, 1, 1, 1]
    # Collapse scanned all 14 cases, but decoded only the 4 matches and their twins: the
    # sketches alone told every other pair apart.
    members = {store.hashes()[i][0] for m in matches for i in (m.case.id, *m.duplicates)}
    assert len(members) == 8
    assert set(decoded) == members
    with_sketches = [(m.case.id, m.duplicates) for m in matches]
    apart = index.search("outlook keeps asking for the password", k=4,
                         options=dataclasses.replace(DEFAULT_OPTIONS, collapse_above=None))
    assert [m.duplicates for m in apart] == [(), (), (), ()]
    assert with_sketches[0][0] in {m.case.id for m in apart[:2]}


def test_a_generation_without_stored_sketches_collapses_the_same(tmp_path: Path) -> None:
    import sqlite3

    from casematch.storage.sketches import SKETCH_SCHEME

    root = tmp_path / "idx"
    index, _ = CaseIndex.build(INCIDENTS, root, encoder=FakeEncoder())
    queries = ["printer jams on tray two", "outlook password migration", "payroll export"]
    expected = [[(m.case.id, m.duplicates, m.score) for m in index.search(q, k=4)]
                for q in queries]
    index.close()
    cases = root / index.generation / "cases.sqlite"
    for damage in (f"UPDATE case_sketches SET scheme = {SKETCH_SCHEME + 1}",
                   "DROP TABLE case_sketches"):  # another scheme; written before sketches
        with sqlite3.connect(cases) as db:
            db.execute(damage)
        db.close()
        with CaseIndex.open(root, encoder=FakeEncoder()) as older:
            assert older.storage.store.sketches([1, 2]) == {}
            got = [[(m.case.id, m.duplicates, m.score) for m in older.search(q, k=4)]
                   for q in queries]
        assert got == expected, damage
    # The next generation written from it stores every case's sketch.
    with IndexWriter(root, FakeEncoder()) as writer:
        writer.upsert(make_case("new", "Badge reader at the gate is offline", "Rebooted it"))
        writer.commit()
    store = Generation.open(root).store
    expected_sketches = _computed_sketches(store)
    assert store.sketches(list(expected_sketches)) == expected_sketches
