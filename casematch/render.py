"""`Match`es -> terminal text, JSON, and Slack Block Kit. Shared by the CLI and Slack.

Only public content is rendered: helpdesk internal notes and `hidden_text` never appear.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from casematch.cases import Match

# A resolved case whose thread or ticket holds no written fix (a closing macro only).
NO_FIX_RECORDED = "(no public fix recorded)"
# Cosine similarity of all-MiniLM-L6-v2 vectors, in words an agent understands.
CLOSENESS = ((0.80, "very close"), (0.65, "close"), (0.50, "related"))


def closeness(score: float) -> str:
    for floor, word in CLOSENESS:
        if score >= floor:
            return word
    return "loosely related"


def _where_when(match: Match) -> str:
    case = match.case
    if case.source == "slack" and case.channel:
        where = f"#{case.channel}"
    elif case.source == "zendesk":
        # Without side-loaded group names the reader only knows "group <id>": say "Zendesk".
        named = case.channel if case.channel and not case.channel.startswith("group ") else ""
        where = f"Zendesk #{case.id.rsplit(':', 1)[-1]}" + (f" ({named})" if named else "")
    else:
        where = case.channel
    parts = [p for p in (where or case.source, _date(match)) if p]
    if match.seen > 1:
        last = match.last_seen.date().isoformat() if match.last_seen else ""
        parts.append(f"seen {match.seen} times" + (f", last on {last}" if last else ""))
    return " · ".join(parts)


def _date(match: Match) -> str:
    when = match.case.resolved_at or match.case.created_at
    return when.date().isoformat() if when else ""


def to_text(matches: Sequence[Match], *, query: str | None = None) -> str:
    """Human-readable ranked list, for a terminal."""
    if not matches:
        return "No similar resolved cases found."
    lines = [f"Closest past cases for: {query}", ""] if query else []
    for match in matches:
        lines.append(f"{match.rank}. {match.case.display_title}")
        lines.append(
            f"   {_where_when(match)} · {closeness(match.score)} ({match.score:.2f})"
        )
        if match.snippet:
            lines.append(f"   Resolution: {match.snippet}")
        elif match.case.resolved:
            lines.append(f"   Resolution: {NO_FIX_RECORDED}")
        else:
            lines.append("   (not resolved)")
        lines.append(f"   {match.url or match.case.id}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def to_json(matches: Sequence[Match], *, query: str | None = None) -> str:
    payload: dict[str, Any] = {"query": query, "matches": [m.to_dict() for m in matches]}
    return json.dumps(payload, ensure_ascii=False, indent=2)


def _mrkdwn_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_blocks(matches: Sequence[Match], *, heading: str | None = None) -> list[dict[str, Any]]:
    """Slack Block Kit blocks: one section per match, with a context line of where/when."""
    blocks: list[dict[str, Any]] = []
    if heading:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": heading}})
    for match in matches:
        title = _mrkdwn_escape(match.case.display_title)
        title = f"<{match.url}|{title}>" if match.url else f"*{title}*"
        fix = match.snippet or (NO_FIX_RECORDED if match.case.resolved else "")
        body = f"{title}\n{_mrkdwn_escape(fix)}" if fix else title
        blocks.append({
            "type": "section",
            "block_id": f"match-{match.rank}",
            "text": {"type": "mrkdwn", "text": body[:3000]},
        })
        blocks.append({
            "type": "context",
            "elements": [{
                "type": "mrkdwn",
                "text": _mrkdwn_escape(f"{_where_when(match)} · {closeness(match.score)}"),
            }],
        })
    return blocks


def to_fallback_text(matches: Sequence[Match]) -> str:
    """Plain text for notifications and clients that do not render blocks."""
    if not matches:
        return "No similar resolved cases found."
    titles = "; ".join(m.case.display_title for m in matches)
    return f"Similar resolved cases: {titles}"


NO_MATCH_NOTE = "No close match among past resolved cases."
# Block Kit action ids of the feedback buttons; the responder routes clicks by them.
HELPFUL_ACTION, NOT_RELEVANT_ACTION = "casematch_helpful", "casematch_not_relevant"
FEEDBACK_ACTIONS = ((HELPFUL_ACTION, "Helpful"), (NOT_RELEVANT_ACTION, "Not relevant"))


def to_blocks_with_feedback(
    matches: Sequence[Match], values: Sequence[str], *, heading: str | None = None
) -> list[dict[str, Any]]:
    """`to_blocks`, plus "Helpful" / "Not relevant" buttons under each match.

    `values[i]` is the button value for `matches[i]` (what the click handler needs to
    record the vote; at most 2,000 characters, a Slack limit).
    """
    blocks = to_blocks(matches, heading=heading)
    out: list[dict[str, Any]] = []
    rank = 0
    for block in blocks:
        out.append(block)
        if block["type"] == "context" and rank < len(matches):
            out.append({
                "type": "actions",
                "block_id": f"feedback-{matches[rank].rank}",
                "elements": [
                    {"type": "button", "action_id": action,
                     "text": {"type": "plain_text", "text": label}, "value": values[rank]}
                    for action, label in FEEDBACK_ACTIONS
                ],
            })
            rank += 1
    return out


def to_note_blocks(text: str) -> list[dict[str, Any]]:
    """One context line: for "no close match" and acknowledgements."""
    return [{"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn_escape(text)}]}]


# ---- command-line reports -------------------------------------------------------------------


def read_summary(report: Any) -> list[str]:
    """What a read of sources produced (`sources.ReadReport`), as lines for a terminal."""
    lines = [f"Read {report.read} cases: {report.resolved} resolved, "
             f"{report.read - report.resolved} unresolved."]
    if report.skipped:
        skipped = ", ".join(f"{why} {n}" for why, n in report.skipped.most_common())
        lines.append(f"Skipped: {skipped}.")
    return lines


def passed_over(items: Sequence[tuple[str, str, str]]) -> list[str]:
    """`--explain-skipped`: each thread read but not taken as a case, with why."""
    if not items:
        return ["No thread was passed over."]
    return [f"Passed over {case_id}: {why}" + (f" ({detail})" if detail else "")
            for case_id, why, detail in items]


def problems(found: Sequence[str], limit: int = 10) -> list[str]:
    """At most `limit` problem lines, then a count of the rest."""
    lines = [f"Problem: {problem}" for problem in found[:limit]]
    if len(found) > limit:
        lines.append(f"... and {len(found) - limit} more problems")
    return lines


def update_summary(update: Any, path: Any, *, verb: str = "Index") -> str:
    """One line for what a build, update or reindex changed (`UpdateResult`)."""
    return (f"{verb} {path} ({update.generation}): added {update.added}, "
            f"updated {update.updated}, deleted {update.deleted}, unchanged {update.unchanged}; "
            f"embedded {update.embedded} texts in {update.seconds:.1f} s.")


def eval_text(report: Any) -> str:
    """`casematch eval`'s report (`evaluate.EvalReport`) for a terminal."""
    m = report.metrics
    lines = [f"Queries: {report.queries}",
             *(f"{name:<10} {m[name]:.3f}" for name in
               ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10"))]
    if report.missing_relevant:
        lines.append(f"Relevant ids not in the index: {len(report.missing_relevant)} "
                     f"(e.g. {', '.join(report.missing_relevant[:5])})")
    cal = report.calibration
    if cal is not None:
        lines.append(
            f"Threshold for precision@1 >= {cal.target:.2f}: none reaches it" if cal.threshold
            is None else f"Threshold for precision@1 >= {cal.target:.2f}: {cal.threshold:.3f} "
            f"(precision {cal.precision:.3f}, answers {cal.coverage:.0%} of queries)")
    return "\n".join(lines)


def stats_text(stats: Mapping[str, Any]) -> str:
    """`CaseIndex.stats()` for a terminal."""
    lines = [f"Index {stats['path']} ({stats['generation']}), built {stats['built_at']}",
             f"Model: {stats['model']} ({stats['dimension']} dimensions)",
             f"Cases: {stats['cases']} ({stats['resolved']} resolved), {stats['chunks']} vectors"]
    lines += [f"  source {name}: {count}" for name, count in sorted(stats["by_source"].items())]
    lines += [f"  {name}: {count}"
              for name, count in sorted(stats["by_channel"].items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


def explanation_text(explanation: Any) -> str:
    """`casematch explain`'s report (`explain.Explanation`) for a terminal."""
    verdict = "a resolved case" if explanation.is_case else "not a resolved case"
    lines = [f"{explanation.case_id}: {verdict} ({explanation.kind})"]
    if explanation.signals:
        lines.append(f"Resolved by: {', '.join(explanation.signals)}")
    if explanation.reason:
        lines.append(f"Why: {explanation.reason}")
    lines.append("")
    for message in explanation.messages:
        lines.append(f"[{message.index}] {message.role.upper():<11} {message.author}: "
                     f"{message.excerpt}")
        if message.evidence:
            lines.append(f"      evidence: {', '.join(message.evidence)}"
                         f" (score {message.score:.2f})")
        if message.reason:
            lines.append(f"      why not: {message.reason}")
    return "\n".join(lines)


def tune_text(report: Mapping[str, Any]) -> str:
    """`casematch tune`'s report (`tune.TuneReport.to_dict()`) for a terminal."""
    decision = report["decision"]
    if decision == "reverted":
        return (f"Reverted to the base model {report['base_model']} "
                f"({report['generation']}, {report['seconds']:.0f} s).")
    lines = [f"Cases: {report['cases']}; training pairs: {report['pairs_train']} "
             f"(+{report['labels_train']} labelled), held out: {report['pairs_heldout']} pairs"
             f" and {report['labels_heldout']} labels",
             f"Trained {report['steps']} steps"
             + (f" ({report['epochs']} passes over the pairs)" if report.get("epochs") else "")
             + f" on {report['device']} in "
             f"{report['train_seconds']:.0f} s (peak memory {report['peak_rss_mb']:.0f} MB)"
             + (f"; stopped at the time cap ({report['steps_planned']} planned)"
                if report.get("stopped_by_time") else "")]
    held = report["heldout"]
    lines.append(f"Held-out MRR: base {held['base']:.3f}, tuned {held['tuned']:.3f}")
    if report["heldout_labels"]:
        lab = report["heldout_labels"]
        lines.append(f"Held-out labelled MRR: base {lab['base']:.3f}, tuned {lab['tuned']:.3f}")
    lines.append({
        "tuned": f"Tuned model wins: the index now uses {report['model']} "
                 f"({report['generation']}).",
        "kept-base": f"The tuned model does not win: the index keeps {report['model']}.",
        "dry-run": "Dry run: nothing was switched.",
    }[decision])
    if report.get("lexical_weight") is not None:
        lines.append(f"Fusion weight fitted on the labels: {report['lexical_weight']:.2f}")
    return "\n".join(lines)


def model_line(model: Mapping[str, Any]) -> str:
    """Which model produced the figures: base, or tuned (from what, when)."""
    if model.get("kind") == "tuned":
        return (f"Model: {model['model']} (tuned from {model['base_model']} on "
                f"{str(model['tuned_at'])[:10]})")
    return f"Model: {model['model']} (base)"
