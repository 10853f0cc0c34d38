"""THE PRE-CHANGE RULE, kept only for comparison in benchmarks/resolution.py.

This is `resolve_thread` as it was before issue 14 ("the resolution is the reacted reply,
else the last substantive reply by someone other than the poster"), copied from
casematch/resolution.py and changed only to return the chosen message indices instead of
their text. Do not use it anywhere else and do not improve it: it is the baseline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from casematch.cases import Message

REACTIONS = ("white_check_mark", "heavy_check_mark", "resolved")
PHRASES = ("resolved", "fixed", "solved", "closing this")
LAST_REPLIES = 3

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


def _closes(text: str) -> bool:
    for phrase in PHRASES:
        words = r"\s+".join(re.escape(w) for w in phrase.split())
        for match in re.finditer(rf"(?<![\w-]){words}(?![\w-])", text, re.IGNORECASE):
            before = re.split(r"[.!?\n]", text[: match.start()])[-1]
            after = re.split(r"[.!\n]", text[match.end():])[0]
            tail = re.findall(r"[\w']+", before.lower().replace("\u2019", "'"))[-4:]
            if any(w in _NEGATIONS or w.endswith("n't") for w in tail) or "?" in after:
                continue
            return True
    return False


def _substantive(text: str) -> bool:
    stripped = text.strip()
    if len(stripped) < 20:
        return False
    return not (_THANKS.match(stripped) and len(stripped) < 60)


def _who(message: Message) -> str:
    return message.author_id or message.author


def _answer_before(messages: Sequence[Message], stop: int, poster: str) -> int | None:
    for index in range(stop - 1, 0, -1):
        message = messages[index]
        if _who(message) != poster and not message.is_bot and _substantive(message.text):
            return index
    return None


def old_resolve(messages: Sequence[Message]) -> tuple[bool, tuple[int, ...]]:
    """(resolved, indices of the messages shown as the resolution) under the old rule."""
    if not messages:
        return False, ()
    poster = _who(messages[0])
    wanted = set(REACTIONS)
    reacted = tuple(i for i in range(1, len(messages))
                    if wanted.intersection(messages[i].reactions))
    if reacted:
        return True, tuple(i for i in reacted if messages[i].text.strip())
    closing = None
    window = max(1, len(messages) - LAST_REPLIES)
    for index in range(len(messages) - 1, window - 1, -1):
        if _closes(messages[index].text):
            closing = index
            break
    if closing is None and not wanted.intersection(messages[0].reactions):
        return False, ()
    if closing is not None:
        closer = messages[closing]
        if _who(closer) != poster and not closer.is_bot and _substantive(closer.text):
            answer: int | None = closing
        else:
            answer = _answer_before(messages, closing, poster)
    else:
        answer = _answer_before(messages, len(messages), poster)
    return True, (answer,) if answer is not None else ()
