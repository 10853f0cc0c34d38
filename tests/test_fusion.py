"""The fusion rule and the fitted weight, on candidate sets where each retriever should win."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import FakeEncoder, make_case

from casematch.index import CaseIndex, read_tuning, write_tuning
from casematch.search import SearchOptions
from casematch.search.fusion import (
    DISTINCTIVE_MAX_TERMS,
    Candidate,
    adaptive_weight,
    fit_weight,
    fuse,
)


def candidates(*rows: tuple[float, float]) -> dict[int, Candidate]:
    """Rowid n is the n-th (cosine, BM25) pair."""
    return {n: Candidate(n, dense, lexical) for n, (dense, lexical) in enumerate(rows)}


def best(scores: dict[int, float]) -> int:
    return max(scores, key=lambda r: scores[r])


# Case 0 is the answer in both. Dense-wins: the lexical top (1) shares words but the model
# puts it far below the answer. Lexical-wins: the answer and case 1 are neck and neck on
# cosine, and only the answer holds the query's rare error code.
# Both are padded with the many far candidates a real query draws (cosines 0.30-0.49).
FAR = tuple((0.30 + 0.01 * n, 0.0) for n in range(20))
DENSE_WINS = candidates((0.82, 8.0), (0.35, 9.0), (0.60, 1.0), (0.55, 0.0), *FAR)
LEXICAL_WINS = candidates((0.70, 9.0), (0.72, 1.5), (0.50, 2.0), (0.45, 0.0), *FAR)
# A chat message's worth of distinct terms.
SHORT = 6


def test_each_retriever_wins_where_it_should_and_the_default_follows() -> None:
    assert best(fuse(DENSE_WINS, "dense")) == 0 and best(fuse(DENSE_WINS, "lexical")) == 1
    assert best(fuse(LEXICAL_WINS, "lexical")) == 0 and best(fuse(LEXICAL_WINS, "dense")) == 1
    # The default (no weight given) ranks the answer first in both.
    assert best(fuse(DENSE_WINS, "hybrid", query_terms=SHORT)) == 0
    assert best(fuse(LEXICAL_WINS, "hybrid", query_terms=SHORT)) == 0


def test_the_rule_trusts_lexical_less_when_the_model_disagrees_with_it() -> None:
    # The lexical top has a cosine far below the dense top: a word match the model rejects.
    assert adaptive_weight(DENSE_WINS, SHORT) < adaptive_weight(LEXICAL_WINS, SHORT)
    # ... unless one case alone holds the query's rare word (BM25 far ahead of its second).
    distinctive = candidates((0.82, 2.0), (0.35, 9.0), (0.60, 1.0), *FAR)
    assert adaptive_weight(distinctive, SHORT) > adaptive_weight(DENSE_WINS, SHORT)
    # No lexical evidence at all: dense alone, whatever the weight.
    only_dense = candidates((0.9, 0.0), (0.8, 0.0))
    assert fuse(only_dense, "hybrid", query_terms=SHORT) == fuse(only_dense, "dense")
    assert adaptive_weight(candidates(), SHORT) >= 0


def test_a_distinctive_match_counts_in_a_message_not_in_a_ticket_body() -> None:
    # The answer (0) is well below the dense top (2) and BM25 puts case 1 far ahead of
    # every other: an error code in a short message, a shared pasted log in a long body.
    lone_match = candidates((0.70, 1.0), (0.60, 9.0), (0.82, 2.0), *FAR)
    in_message = adaptive_weight(lone_match, DISTINCTIVE_MAX_TERMS)
    in_body = adaptive_weight(lone_match, DISTINCTIVE_MAX_TERMS + 1)
    assert in_message > in_body
    # In the body only the agreement part is left, and here the model disagrees with BM25.
    assert in_body == 0.0
    assert best(fuse(lone_match, "hybrid", query_terms=DISTINCTIVE_MAX_TERMS + 1)) == 2


def test_fit_prefers_lexical_where_labels_say_so_and_the_rule_otherwise() -> None:
    lexical_helps = [(LEXICAL_WINS, {0}, SHORT)] * 12
    weight = fit_weight(lexical_helps)
    assert weight is None or best(fuse(LEXICAL_WINS, "hybrid", weight)) == 0
    # Answers that dense ranks first and a big lexical weight breaks: the fit never picks
    # a weight that ranks them worse than the rule does.
    dense_right = [(DENSE_WINS, {0}, SHORT)] * 12
    fitted = fit_weight(dense_right)
    assert fitted is None or best(fuse(DENSE_WINS, "hybrid", fitted)) == 0
    # Where only a heavy weight ranks the labels right, the fit finds it.
    needs_heavy = candidates((0.40, 9.0), (0.75, 0.5))
    heavy = fit_weight([(needs_heavy, {0}, SHORT)] * 12)
    assert heavy is not None and heavy > 0.15
    assert best(fuse(needs_heavy, "hybrid", heavy)) == 0
    # Too few labels: no fit.
    assert fit_weight([(needs_heavy, {0}, SHORT)] * 3) is None


def test_index_uses_its_fitted_weight_unless_the_search_names_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cases = [make_case("a", "printer offline error E1042", "reboot"),
             make_case("b", "printer is not printing at all today", "replace toner")]
    CaseIndex.build(cases, tmp_path, encoder=FakeEncoder())[0].close()
    with CaseIndex.open(tmp_path, encoder=FakeEncoder()) as index:
        assert index.fitted_lexical_weight is None
        model = index.manifest["model"]
    write_tuning(tmp_path, {"fusion": {model: {"lexical_weight": 0.45}}})
    assert read_tuning(tmp_path)["fusion"][model]["lexical_weight"] == 0.45
    with CaseIndex.open(tmp_path, encoder=FakeEncoder()) as index:
        assert index.fitted_lexical_weight == pytest.approx(0.45)
        # Searches run either way; a weight given explicitly is not replaced.
        assert index.search("printer E1042", k=2)
        explicit = replace(SearchOptions(), lexical_weight=0.0)
        assert index.search("printer E1042", k=2, options=explicit)
    # A damaged tuning file never stops an index from opening.
    (tmp_path / "tuning.json").write_text("{not json", encoding="utf-8")
    with CaseIndex.open(tmp_path, encoder=FakeEncoder()) as index:
        assert index.fitted_lexical_weight is None
