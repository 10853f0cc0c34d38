"""Why a case is a case, and why its resolution is the message it is.

`casematch explain CASE_ID` answers it for an indexed case: the thread's messages are
judged again with the same rules the readers used (`casematch.resolution`), and each reply
is shown with the evidence for it or the reason it was passed over. Threads that were not
taken at all never reach the index; `casematch index --explain-skipped` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from casematch.cases import Case, Message
from casematch.errors import InputError
from casematch.index import CaseIndex
from casematch.resolution import resolve_thread
from casematch.rules import DEFAULT_RULES, ResolutionRules

EXCERPT_CHARS = 160


@dataclass(frozen=True, slots=True)
class MessageVerdict:
    """One message of the case and what the rules made of it."""

    index: int
    author: str
    excerpt: str
    role: str  # "problem", "fix", "passed over", "reply"
    score: float = 0.0
    evidence: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Explanation:
    """Whether the thread is a case, which message(s) are the fix, and why."""

    case_id: str
    source: str
    is_case: bool
    kind: str
    signals: tuple[str, ...]
    reason: str
    resolution: str
    messages: tuple[MessageVerdict, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.case_id, "source": self.source, "is_case": self.is_case,
            "kind": self.kind, "signals": list(self.signals), "reason": self.reason,
            "resolution": self.resolution,
            "messages": [{"index": m.index, "author": m.author, "excerpt": m.excerpt,
                          "role": m.role, "score": round(m.score, 3),
                          "evidence": list(m.evidence), "reason": m.reason}
                         for m in self.messages],
        }


def explain(index: CaseIndex, case_id: str,
            rules: ResolutionRules = DEFAULT_RULES) -> Explanation:
    """Explain the indexed case `case_id`.

    Raises:
        InputError: no case with that id is in the index (it may have been passed over
            when the index was built: `casematch index --explain-skipped` lists those).
    """
    case = index.get(case_id)
    if case is None:
        raise InputError(case_id, "no such case in the index; threads that were not taken "
                                  "are listed by `casematch index SOURCES --explain-skipped`")
    if case.source == "slack" and case.messages:
        return _thread(case, rules)
    return _stored(case)


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[:EXCERPT_CHARS - 1] + "…"


def _author(message: Message) -> str:
    return message.author or message.author_id or "?"


def _thread(case: Case, rules: ResolutionRules) -> Explanation:
    messages = case.messages
    verdict = resolve_thread(messages, rules, channel=case.channel)
    weighed = {c.index: c for c in verdict.candidates}
    rows = []
    for number, message in enumerate(messages):
        candidate = weighed.get(number)
        if number == 0:
            role, reason = "problem", ""
        elif number in verdict.fix:
            role, reason = "fix", ""
        elif candidate is not None and candidate.rejected:
            role, reason = "passed over", candidate.rejected
        else:
            role, reason = "reply", "a weaker candidate than the fix"
        rows.append(MessageVerdict(
            index=number, author=_author(message), excerpt=_excerpt(message.text), role=role,
            score=candidate.score if candidate else 0.0,
            evidence=candidate.evidence if candidate else (), reason=reason))
    return Explanation(case.id, case.source, verdict.is_case, verdict.kind, verdict.signals,
                       verdict.reason, verdict.resolution, tuple(rows))


def _stored(case: Case) -> Explanation:
    """Tickets and JSONL cases: the resolution their source recorded, and where it is."""
    fix = " ".join(case.resolution.split())
    rows = []
    for number, message in enumerate(m for m in case.messages if m.public):
        is_fix = bool(fix) and " ".join(message.text.split()) == fix
        rows.append(MessageVerdict(index=number, author=_author(message),
                                   excerpt=_excerpt(message.text),
                                   role="problem" if number == 0 else
                                   "fix" if is_fix else "reply"))
    if case.source == "zendesk":
        reason = ("the ticket is solved or closed; its fix is the last public agent reply "
                  "that is not a closing macro, survey, auto-reply or acknowledgement"
                  if case.resolved else "the ticket is not solved or closed")
    else:
        reason = "resolved as the source recorded it" if case.resolved else "not resolved"
    return Explanation(case.id, case.source, case.resolved, "support",
                       ("status",) if case.resolved else (), reason, case.resolution,
                       tuple(rows))
