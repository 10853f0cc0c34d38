"""Is a Slack thread resolved, and which message(s) hold the fix.

A swarm thread is a root (the case) and replies (the swarm). Teams mark the end either with
a reaction (a check mark on the answer or on the root) or with a closing word in one of the
last replies ("fixed, thanks!"). The fix itself is rarely the closing message: it is the
reply the poster reacted to, or else the last useful answer from someone else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from casematch.cases import Message, first_sentence

DEFAULT_REACTIONS = ("white_check_mark", "heavy_check_mark", "resolved")
DEFAULT_PHRASES = ("resolved", "fixed", "solved", "closing this")


@dataclass(frozen=True, slots=True)
class ResolutionRules:
    """What marks a thread as resolved. Configurable per team."""

    reactions: tuple[str, ...] = DEFAULT_REACTIONS
    phrases: tuple[str, ...] = DEFAULT_PHRASES
    # How many of the last replies are searched for a closing phrase.
    last_replies: int = 3


DEFAULT_RULES = ResolutionRules()


@dataclass(frozen=True, slots=True)
class ThreadResolution:
    """What `resolve_thread` decided about one thread."""

    resolved: bool
    problem: str
    resolution: str
    title: str
    resolved_at: datetime | None = None


# Words that, shortly before a closing phrase, turn it into its opposite or a hope:
# "not fixed", "still isn't resolved", "will be fixed", "once it's solved".
_NEGATIONS = frozenset({
    "not", "never", "no", "isn't", "isnt", "wasn't", "hasn't", "haven't", "didn't", "doesn't",
    "don't", "aren't", "weren't", "won't", "cannot", "can't", "couldn't", "nothing", "yet",
    "will", "should", "would", "could", "might", "hopefully", "until", "unless", "once", "if",
    "when", "whether", "before", "partially", "almost",
})
_THANKS = re.compile(
    r"(thanks|thank you|thank u|thx|ty|tysm|np|no problem|no worries|you'?re welcome|welcome|"
    r"glad|great|awesome|cool|perfect|nice|ok|okay|sure|got it|\+1|lgtm)\b",
    re.IGNORECASE,
)
_SUBSTANTIVE_MIN = 20
# A first line that only greets ("Hi team,", "Hello all!") makes a useless title.
_GREETING = re.compile(
    r"(hi|hey|hello|hola|hiya|greetings|good (morning|afternoon|evening|day))\b"
    r"[\w\s,@.'-]{0,25}[,.!:]*", re.IGNORECASE,
)


@lru_cache(maxsize=32)
def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(w) for w in phrase.split())
    return re.compile(rf"(?<![\w-]){words}(?![\w-])", re.IGNORECASE)


def has_closing_phrase(text: str, phrases: Sequence[str] = DEFAULT_PHRASES) -> bool:
    """True when `text` says the case is closed ("fixed!"), not "not fixed" or "fixed?"."""
    for phrase in phrases:
        for match in _phrase_pattern(phrase).finditer(text):
            before = re.split(r"[.!?\n]", text[: match.start()])[-1]
            after = re.split(r"[.!\n]", text[match.end():])[0]
            words = re.findall(r"[\w']+", before.lower().replace("\u2019", "'"))[-4:]
            if any(w in _NEGATIONS or w.endswith("n't") for w in words):
                continue
            if "?" in after:  # "is it fixed?" asks; it does not close
                continue
            return True
    return False


def is_substantive(text: str) -> bool:
    """False for replies that carry no fix: thanks, +1, an emoji, a few words."""
    stripped = text.strip()
    if len(stripped) < _SUBSTANTIVE_MIN:
        return False
    return not (_THANKS.match(stripped) and len(stripped) < 60)


# Intake forms (Workflow Builder, helpdesk bots) post labelled fields; the problem field
# says far more than the first line, which is usually "Customer: ...".
_PROBLEM_FIELD = re.compile(
    r"^[*_]*(?:problem|issue|summary|subject|question)[*_]*\s*:[*_]*\s*(.*)$", re.IGNORECASE
)


def title_of(problem: str) -> str:
    """A short title: a form's problem field, else the first sentence past a greeting."""
    lines = [line.strip().strip("`").strip() for line in problem.strip().split("\n")]
    lines = [line for line in lines if line]
    for number, line in enumerate(lines):
        field = _PROBLEM_FIELD.match(line)
        if field:
            value = field.group(1) or (lines[number + 1] if number + 1 < len(lines) else "")
            if value:
                return first_sentence(value)
    while len(lines) > 1 and _GREETING.fullmatch(lines[0]):
        lines.pop(0)
    return first_sentence("\n".join(lines))


def _who(message: Message) -> str:
    return message.author_id or message.author


def _problem(messages: Sequence[Message]) -> str:
    """The root plus the poster's follow-ups before anyone else answers."""
    poster = _who(messages[0])
    parts = [messages[0].text.strip()]
    for message in messages[1:]:
        if _who(message) == poster:
            parts.append(message.text.strip())
        # A bot's auto-acknowledgement is not an answer; it does not end the problem.
        elif not message.is_bot:
            break
    return "\n\n".join(p for p in parts if p)


def _answer_before(messages: Sequence[Message], stop: int, poster: str) -> Message | None:
    """The last substantive human reply by someone other than the poster before `stop`."""
    for message in reversed(messages[1:stop]):
        if _who(message) != poster and not message.is_bot and is_substantive(message.text):
            return message
    return None


def resolve_thread(
    messages: Sequence[Message], rules: ResolutionRules = DEFAULT_RULES
) -> ThreadResolution:
    """Decide whether a thread (root first, replies in order) is resolved, and by what."""
    if not messages:
        return ThreadResolution(resolved=False, problem="", resolution="", title="")
    problem = _problem(messages)
    title = title_of(problem)
    poster = _who(messages[0])
    wanted = set(rules.reactions)

    reacted = [m for m in messages[1:] if wanted.intersection(m.reactions)]
    if reacted:
        return ThreadResolution(
            resolved=True,
            problem=problem,
            resolution="\n\n".join(m.text.strip() for m in reacted if m.text.strip()),
            title=title,
            resolved_at=reacted[-1].created_at,
        )

    # A closing phrase in one of the last replies; the latest one is the closing message.
    closing: int | None = None
    window = max(1, len(messages) - rules.last_replies)
    for index in range(len(messages) - 1, window - 1, -1):
        if has_closing_phrase(messages[index].text, rules.phrases):
            closing = index
            break
    root_reacted = bool(wanted.intersection(messages[0].reactions))
    if closing is None and not root_reacted:
        return ThreadResolution(resolved=False, problem=problem, resolution="", title=title)

    if closing is not None:
        closer = messages[closing]
        # A substantive closing message from a helper is the fix itself ("Fixed in 2.3:
        # upgrade with ..."); the poster's "fixed, thanks!" points at the answer before it.
        if _who(closer) != poster and not closer.is_bot and is_substantive(closer.text):
            answer: Message | None = closer
        else:
            answer = _answer_before(messages, closing, poster)
        resolved_at = closer.created_at
    else:
        answer = _answer_before(messages, len(messages), poster)
        resolved_at = (answer or messages[-1]).created_at
    return ThreadResolution(
        resolved=True,
        problem=problem,
        resolution=answer.text.strip() if answer else "",
        title=title,
        resolved_at=resolved_at,
    )
