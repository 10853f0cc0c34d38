"""`casematch eval --from-feedback`: agents' votes in Slack become labelled queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FakeEncoder, make_case

from casematch import index as index_module
from casematch.cli import cli
from casematch.index import CaseIndex
from casematch.slack import feedback_queries
from casematch.slack.state import SlackState, root_id

SWARM = "CSWARM"
VPN, PRINTER, MAIL = "slack:CSWARM:100.1", "slack:CSWARM:100.2", "slack:CSWARM:100.3"
# A case that was itself asked in Slack, answered, then resolved and captured live.
CAPTURED = "slack:CSWARM:200.1"

CASES = [
    make_case(VPN, "vpn disconnects every hour on macos laptop",
              "reinstall the vpn client profile", source="slack"),
    make_case(PRINTER, "printer on floor three jams paper", "replace the fuser unit",
              source="slack"),
    make_case(MAIL, "outlook keeps asking for the password", "reset the credentials",
              source="slack"),
    make_case(CAPTURED, "my vpn disconnects every hour", "rotated the vpn certificate",
              source="slack"),
]


@pytest.fixture
def index_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    encoder = FakeEncoder()
    CaseIndex.build(CASES, tmp_path / "idx", encoder=encoder)
    # The CLI loads the model named in the manifest: hand it the fake one.
    monkeypatch.setattr(index_module, "load_query_encoder", lambda *a, **kw: encoder)
    return tmp_path / "idx"


def vote(state: SlackState, query_id: str, case_id: str, verdict: str, user: str) -> None:
    assert state.add_feedback(query_id, case_id, verdict, user)


@pytest.fixture
def voted(index_dir: Path) -> Path:
    """Votes as the responder stores them: roots it answered, and an ephemeral query."""
    state = SlackState.at_index(index_dir)
    vpn_root = root_id(SWARM, "200.1")
    assert state.claim_root(SWARM, "200.1", "my vpn disconnects every hour")
    vote(state, vpn_root, VPN, "helpful", "U1")
    vote(state, vpn_root, VPN, "helpful", "U2")
    vote(state, vpn_root, MAIL, "not_relevant", "U1")
    printer_root = root_id(SWARM, "201.1")
    assert state.claim_root(SWARM, "201.1", "printer jams paper on floor three")
    vote(state, printer_root, PRINTER, "helpful", "U3")
    vote(state, printer_root, VPN, "helpful", "U1")  # outvoted: not a relevant case
    vote(state, printer_root, VPN, "not_relevant", "U2")
    vote(state, printer_root, VPN, "not_relevant", "U4")
    # Only "not relevant" votes say nothing about what the right answer is: no query.
    assert state.claim_root(SWARM, "202.1", "lunch menu for friday")
    vote(state, root_id(SWARM, "202.1"), MAIL, "not_relevant", "U5")
    # An /casematch question (no thread).
    state.add_query("q-slash", SWARM, "outlook asking for my password again")
    vote(state, "q-slash", MAIL, "helpful", "U6")
    return index_dir


def test_feedback_queries_label_helpful_cases_and_exclude_the_asking_thread(
    voted: Path,
) -> None:
    assert feedback_queries(voted) == [
        {"query": "my vpn disconnects every hour", "relevant": [VPN], "exclude": [CAPTURED]},
        {"query": "printer jams paper on floor three", "relevant": [PRINTER],
         "exclude": ["slack:CSWARM:201.1"]},
        {"query": "outlook asking for my password again", "relevant": [MAIL]},
    ]


def test_eval_from_feedback_scores_the_voted_queries(voted: Path) -> None:
    result = CliRunner().invoke(cli, ["eval", "--from-feedback", "--index", str(voted),
                                      "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"recall@1", "recall@5", "recall@10", "mrr", "ndcg@10", "queries"} <= set(report)
    assert report["queries"] == 3
    assert report["missing_relevant"]["count"] == 0
    # The captured thread "my vpn disconnects every hour" is the text's own case and would
    # rank first; excluded, every query finds its voted case at rank 1.
    for name in ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10"):
        assert report[name] == pytest.approx(1.0), name

    text = CliRunner().invoke(cli, ["eval", "--from-feedback", "--index", str(voted)])
    assert text.exit_code == 0, text.output
    assert "Queries: 3" in text.output and "mrr" in text.output


def test_eval_from_feedback_without_votes_says_so(index_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["eval", "--from-feedback", "--index", str(index_dir)])
    assert result.exit_code == 1
    assert "no Slack feedback to evaluate on yet" in result.output
    assert "slack.sqlite" in result.output
    # Votes that only say "not relevant" label nothing either.
    state = SlackState.at_index(index_dir)
    state.claim_root(SWARM, "300.1", "vpn disconnects")
    vote(state, root_id(SWARM, "300.1"), VPN, "not_relevant", "U1")
    again = CliRunner().invoke(cli, ["eval", "--from-feedback", "--index", str(index_dir)])
    assert again.exit_code == 1 and "no Slack feedback" in again.output


def test_eval_needs_queries_or_from_feedback_but_not_both(voted: Path, tmp_path: Path) -> None:
    neither = CliRunner().invoke(cli, ["eval", "--index", str(voted)])
    assert neither.exit_code == 2
    assert "give a QUERIES file, or --from-feedback" in neither.output
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"query": "vpn", "relevant": [VPN]}) + "\n")
    both = CliRunner().invoke(cli, ["eval", str(queries), "--from-feedback",
                                    "--index", str(voted)])
    assert both.exit_code == 2 and "not both" in both.output
