"""Metrics on hand-computed toy rankings, threshold calibration, and `casematch eval`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FakeEncoder, make_case

from casematch import index as index_module
from casematch.cli import cli
from casematch.evaluate import (
    LabelledQuery,
    Ranking,
    calibrate,
    load_queries,
    ndcg_at,
    recall_at,
    reciprocal_rank,
    score_rankings,
)
from casematch.index import CaseIndex


def ranking(ids: str, relevant: str, scores: tuple[float, ...] = ()) -> Ranking:
    return Ranking(LabelledQuery("q", tuple(relevant)), tuple(ids), scores)


def test_metrics_on_a_hand_computed_ranking() -> None:
    ids, relevant = list("xaybz"), {"a", "b", "c"}
    assert recall_at(ids, relevant, 1) == 0.0
    assert recall_at(ids, relevant, 5) == pytest.approx(2 / 3)
    assert reciprocal_rank(ids, relevant) == 0.5
    # DCG = 1/log2(3) + 1/log2(5); ideal = 1 + 1/log2(3) + 1/log2(4)
    assert ndcg_at(ids, relevant) == pytest.approx((0.6309298 + 0.4306766) / 2.1309298)
    means = score_rankings([ranking("xaybz", "abc"), ranking("a", "a")])
    assert means == pytest.approx({
        "recall@1": 0.5, "recall@5": (2 / 3 + 1) / 2, "recall@10": (2 / 3 + 1) / 2,
        "mrr": 0.75, "ndcg@10": (0.4981893 + 1) / 2,
    }, abs=1e-6)


def test_calibration_finds_the_lowest_threshold_meeting_the_target() -> None:
    tops = [("a", 0.9), ("a", 0.8), ("x", 0.7), ("a", 0.6), ("x", 0.5)]
    rankings = [ranking(top, "a", (score,)) for top, score in tops]
    three_quarters = calibrate(rankings, 0.75)
    assert (three_quarters.threshold, three_quarters.precision, three_quarters.coverage) == (
        0.6, 0.75, 0.8)
    assert calibrate(rankings, 1.0).threshold == 0.8
    assert calibrate([ranking("x", "a", (0.9,)), ranking("a", "a", (0.1,))], 1.0).threshold \
        is None


def test_queries_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"query": "a", "relevant": "x", "exclude": ["y"]}\n{"query": "b"}\n')
    with pytest.raises(Exception, match=r"q.jsonl:2"):
        load_queries(path)


@pytest.fixture
def fake_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    encoder = FakeEncoder()
    cases = [make_case("vpn", "VPN tunnel drops every hour", "Raise the IKE lifetime"),
             make_case("printer", "Printer on floor 3 jams", "Replace the fuser"),
             make_case("mail", "Outlook keeps asking for the password", "Reset credentials")]
    CaseIndex.build(cases, tmp_path / "idx", encoder=encoder)
    # The CLI loads the model named in the manifest: hand it the fake one.
    monkeypatch.setattr(index_module, "load_query_encoder", lambda *a, **kw: encoder)
    return tmp_path / "idx"


def test_eval_command_json_keys_and_missing_ids(fake_index: Path, tmp_path: Path) -> None:
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join(json.dumps(q) for q in [
        {"query": "vpn tunnel keeps dropping", "relevant": ["vpn"]},
        {"query": "printer jams on floor 3", "relevant": ["printer", "gone-1"]},
        {"query": "outlook password prompt", "relevant": ["mail"], "exclude": ["mail"]},
    ]) + "\n")
    result = CliRunner().invoke(cli, ["eval", str(queries), "--index", str(fake_index),
                                      "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"recall@1", "recall@5", "recall@10", "mrr", "ndcg@10", "queries"} <= set(report)
    assert report["queries"] == 3
    assert report["missing_relevant"] == {"count": 1, "examples": ["gone-1"]}
    # The excluded case cannot answer its own query: 2 of 3 queries hit at rank 1.
    assert report["mrr"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["calibration"]["target_precision@1"] == 0.8

    text = CliRunner().invoke(cli, ["eval", str(queries), "--index", str(fake_index),
                                    "--mode", "lexical"])
    assert text.exit_code == 0, text.output
    assert "mrr" in text.output and "not in the index: 1 (e.g. gone-1)" in text.output


def test_an_excluded_case_is_left_out_before_fusion(tmp_path: Path) -> None:
    # Leave-one-out: the query's own report is its best lexical match. Excluded inside the
    # search, it must not set the BM25 scale the other cases are fused on, so the best
    # remaining lexical match gets the whole lexical weight over its cosine.
    from casematch.evaluate import rank_queries
    from casematch.search import SearchOptions

    cases = [make_case("self", "printer E1042 jams on floor 3, E1042 again", "reboot"),
             make_case("other", "printer shows E1042 and stays offline", "replace toner"),
             make_case("vpn", "VPN tunnel drops every hour", "raise the IKE lifetime")]
    index, _ = CaseIndex.build(cases, tmp_path, encoder=FakeEncoder())
    query = LabelledQuery("printer E1042 jams on floor 3", ("other",), exclude=("self",))
    with index:
        [fused] = rank_queries(index, [query], 3, options=SearchOptions(lexical_weight=0.5))
        [dense] = rank_queries(index, [query], 3, options=SearchOptions(mode="dense"))
    assert "self" not in fused.ids and fused.ids[0] == "other"
    bonus = fused.scores[0] - dense.scores[dense.ids.index("other")]
    assert bonus == pytest.approx(0.5)
