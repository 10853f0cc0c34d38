"""Agents' "Helpful" / "Not relevant" votes -> labelled eval queries.

`casematch eval --from-feedback` reads these, so every team grows its own test set.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from casematch.errors import CasematchError
from casematch.slack.state import STATE_FILE, SlackState, open_state

HELPFUL, NOT_RELEVANT = "helpful", "not_relevant"


def feedback_queries(path: str | Path, *, required: bool = False) -> list[dict[str, Any]]:
    """Eval queries `{"query": text, "relevant": [case ids]}` from stored feedback.

    `path` is `slack.sqlite`, the index directory holding it, or the `postgresql://`
    URL of a shared state (`[slack] state_url`). A suggested case counts as
    relevant when more people found it helpful than not; queries with no relevant case are
    left out (they say what is wrong, not what is right). Order: first vote first.
    With `required`, no usable feedback at all is an error that says how to get some.

    A query asked in a thread carries `"exclude": ["slack:<channel>:<thread_ts>"]`: once
    that thread is resolved and captured it is a case of the index, and it would match its
    own text at rank 1 and push the cases the agents voted for down.
    """
    if str(path).startswith(("postgresql://", "postgres://")):
        from casematch.slack.state_postgres import redact

        where, queries = redact(str(path)), _queries(open_state(str(path)))
    else:
        path = Path(path)
        if path.is_dir():
            path = path / STATE_FILE
        where, queries = str(path), _queries(SlackState(path)) if path.is_file() else []
    if required and not queries:
        raise CasematchError(
            f"no Slack feedback to evaluate on yet in {where}: a query counts once agents "
            "vote one of the responder's suggestions Helpful")
    return queries


def _queries(state: SlackState) -> list[dict[str, Any]]:
    votes: dict[str, Counter[str]] = {}
    texts: dict[str, str] = {}
    for query_id, text, case_id, verdict, _user, _at in state.feedback_rows():
        texts.setdefault(query_id, text)
        tally = votes.setdefault(query_id, Counter())
        tally[case_id] += 1 if verdict == HELPFUL else -1
    out: list[dict[str, Any]] = []
    for query_id, tally in votes.items():
        relevant = [case_id for case_id, score in tally.items() if score > 0]
        if not relevant or not texts[query_id].strip():
            continue
        query: dict[str, Any] = {"query": texts[query_id], "relevant": relevant}
        asked = state.query(query_id)
        if asked is not None and asked.ts:
            query["exclude"] = [f"slack:{asked.channel}:{asked.ts}"]
        out.append(query)
    return out
