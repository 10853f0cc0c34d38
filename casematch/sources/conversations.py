"""Recover conversations from a channel whose messages carry no thread structure.

Older Slack exports, channels where people never use threads, and chat logs (IRC) are one
flat, time-ordered stream in which several conversations interleave. `split_conversations`
groups such a stream into conversations so that the rules for threads can be applied to
each group as if it were a thread.

Algorithm (one greedy pass, oldest message first)
-------------------------------------------------
Each message either starts a new conversation or joins one of the *active* conversations:
those whose last message is at most `window` old, capped at the `max_active` most recent.
Every option gets a score from evidence a reader of the channel would use, and the
highest score wins (starting anew wins ties):

* **Mentions.** Addressing someone (``nick: ...`` / ``nick, ...`` at the start, as on
  IRC, or ``@Name`` anywhere, as Slack text reads once cleaned) is the strongest
  evidence: the message belongs with the conversation that person last wrote in, or, with
  less weight, another one they take part in; a conversation the writer also takes part
  in gets a further pull (a helper juggling two askers is answered in the right one).
* **Quotes.** A message that starts by quoting ("> ...") the opening of an earlier
  message joins that message's conversation.
* **Author continuity.** People keep talking in the conversation they were last in: the
  asker adds detail, says "still failing", says thanks; the person who opened a
  conversation gets an extra pull back into it. Bots get neither: an alert bot posting
  twice is two incidents, not one conversation.
* **Quiet channel.** When at most `quiet_speakers` people (the writer included) wrote
  within `quiet_horizon`, the channel holds one exchange at a time, and a message with no
  other evidence most likely continues the one just before it (the usual unthreaded
  support channel: a question, then answers that mention nobody). Measured on who spoke,
  not on our own grouping, so one wrong merge cannot make the channel look quiet forever.
* **Time.** Every candidate pays ``time_weight * log1p(gap / time_scale)`` for the time
  since its last message. A log, because a reply two minutes late is much less likely than
  one ten seconds late, while 50 and 60 minutes late are about equally unlikely; the same
  curve then serves a busy IRC channel and a slow Slack one.
* **Starting anew** scores `new_score`, plus `new_question` when the message is itself a
  question that addresses nobody: that is how support requests open.
* **Reply-like openings** ("yes", "try ...", "you need ...", "did you ...") and
  **question -> answer** (a non-question right after someone else's question) are
  computed but weigh 0 by default: on both measured sets they merged unrelated
  conversations more often than they joined the right ones (benchmarks/RESULTS.md).

The default weights were tuned by a coordinate search on half of the gold-annotated
Ubuntu IRC development files (Kummerfeld et al., ACL 2019) together with one DISCO Slack
channel, and are reported on the other halves (benchmarks/disentangle.py): one set of
weights has to serve a busy chat with many interleaved conversations and a slow support
channel with one at a time.

Why greedy and local: nearly every chat message replies to one of the few most recently
active conversations, so a bounded set of candidates loses little, and the pass stays
O(n * max_active) in time and O(n) in memory.

Messages whose `created_at` is missing take the time of the nearest message before them
(after them, at the start): order is the only evidence left, and the input is in time
order. Times that go backwards count as no gap.
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from casematch.cases import Message


@dataclass(frozen=True, slots=True)
class ConversationOptions:
    """Weights of the evidence `split_conversations` combines. Times are in seconds."""

    # A conversation idle for longer than this cannot be joined any more.
    window: float = 6 * 3600.0
    max_active: int = 40
    time_scale: float = 60.0
    time_weight: float = 1.0
    new_score: float = 0.0
    new_question: float = 1.0
    mention_latest: float = 6.0
    mention_member: float = 2.5
    author_latest: float = 2.5
    asker: float = 1.0
    reply_opening: float = 0.0
    answers_question: float = 0.0
    # Quoting a message ("> the line ...") links to that message's conversation.
    quote: float = 6.0
    # A quiet channel: at most `quiet_speakers` people wrote within `quiet_horizon`.
    quiet_horizon: float = 300.0
    quiet_speakers: int = 3
    quiet_continuation: float = 2.5

DEFAULT_OPTIONS = ConversationOptions()

# Characters IRC nicks and Slack handles are made of ("|trey|", "Matt_", "[x]", "a-b").
_NAME = r"[\w|\[\]\\^`{}\-.']+"
_ADDRESS = re.compile(rf"^\s*@?({_NAME})\s*[:,]")
_AT = re.compile(r"@")
_WORD = re.compile(r"[a-z']+")
_WORDS_ANY = re.compile(r"\w+")

_QUESTION_WORDS = frozenset({
    "how", "what", "why", "where", "when", "who", "which", "is", "are", "does", "do", "can",
    "could", "should", "would", "will", "anyone", "anybody", "has", "have", "any", "whats",
    "hows", "isnt", "cant", "help",
})
# First words (or pairs) of messages that answer or react to someone else.
_REPLY_FIRST = frozenset({
    "yes", "yeah", "yep", "yup", "no", "nope", "nah", "try", "use", "run", "type", "install",
    "check", "just", "maybe", "probably", "then", "it", "its", "it's", "that", "thats",
    "that's", "because", "sure", "ok", "okay", "right", "exactly", "correct", "thanks",
    "thank", "thx", "ty", "sudo", "see", "look", "perhaps", "instead", "well", "hmm",
    "sorry", "afaik", "iirc", "apt-get", "apt", "open", "edit", "go", "click", "set",
    "si", "sí", "sim", "oui", "ja", "ya", "iya", "gracias", "obrigado", "merci", "danke",
})
_REPLY_PAIRS = frozenset({
    ("you", "need"), ("you", "can"), ("you", "should"), ("you", "could"), ("you", "have"),
    ("you", "must"), ("you", "want"), ("you", "might"), ("you", "may"), ("did", "you"),
    ("have", "you"), ("do", "you"), ("are", "you"), ("is", "it"), ("what", "does"),
    ("what", "do"), ("i", "think"), ("i", "believe"), ("i", "guess"), ("i", "had"),
    ("i", "use"), ("in", "that"), ("if", "you"), ("not", "sure"),
})


@dataclass(slots=True)
class _Conversation:
    members: list[int]
    root_author: str
    participants: set[str]
    last_time: float
    last_author: str
    last_is_question: bool


@dataclass(slots=True)
class _Names:
    """Speakers seen so far, findable by what others type to address them."""

    by_name: dict[str, str] = field(default_factory=dict)
    # "@john smith ..." is found through "john", then the longest full name that fits.
    by_first_word: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, key: str) -> None:
        name = name.strip().lower().lstrip("@")
        if not name or name in self.by_name:
            return
        self.by_name[name] = key
        first = name.split()[0]
        self.by_first_word.setdefault(first, []).append(name)
        self.by_first_word[first].sort(key=len, reverse=True)

    def mentioned(self, text: str) -> list[str]:
        """Speaker keys the text addresses, in the order they appear."""
        found: list[str] = []
        lowered = text.lower()
        address = _ADDRESS.match(lowered)
        if address and address.group(1) in self.by_name:
            found.append(self.by_name[address.group(1)])
        for at in _AT.finditer(lowered):
            rest = lowered[at.end():at.end() + 80]
            word = re.match(_NAME, rest)
            if not word:
                continue
            for name in self.by_first_word.get(word.group(0), ()):
                end = len(name)
                if rest.startswith(name) and (end == len(rest) or not rest[end].isalnum()):
                    found.append(self.by_name[name])
                    break
        return found


def _speaker(message: Message) -> str:
    return message.author_id or message.author


def _is_question(words: list[str], text: str) -> bool:
    return "?" in text or (bool(words) and words[0] in _QUESTION_WORDS)


def _is_reply_opening(words: list[str]) -> bool:
    if not words:
        return False
    return words[0] in _REPLY_FIRST or tuple(words[:2]) in _REPLY_PAIRS


def _body(text: str, addressed: bool) -> str:
    # The "nick:" in front says who is addressed; the opening that matters comes after it.
    if addressed:
        match = _ADDRESS.match(text)
        if match:
            return text[match.end():]
    return text


def _opening(text: str) -> str:
    # Enough of a message to recognise it when quoted, short enough to survive trimming;
    # words only, as quoting adds or drops quotation marks and punctuation.
    return " ".join(_WORDS_ANY.findall(text.lower()))[:40]


def _seconds(messages: Sequence[Message]) -> list[float]:
    """Each message's time, never decreasing, gaps in the record filled from neighbours."""
    known = [m.created_at.timestamp() if m.created_at else None for m in messages]
    first = next((t for t in known if t is not None), 0.0)
    out: list[float] = []
    last = first
    for value in known:
        last = last if value is None else max(value, last)
        out.append(last)
    return out


def split_conversations(
    messages: Sequence[Message], options: ConversationOptions = DEFAULT_OPTIONS
) -> list[list[int]]:
    """Group a time-ordered stream of one channel's unthreaded messages into conversations.

    Returns lists of indices into `messages`: every index exactly once, each list in stream
    order (its first index is the conversation's root), the lists ordered by root.
    Conversations of a single message are included; a caller that wants only exchanges
    keeps the lists longer than one.
    """
    names = _Names()
    conversations: list[_Conversation] = []
    active: list[int] = []  # conversation numbers, most recently active last
    latest_of: dict[str, int] = {}  # speaker -> the conversation they last wrote in
    previous = -1  # the conversation of the message just before
    opening_of: dict[str, int] = {}  # a message's first words -> its conversation
    # Who wrote lately, to tell a quiet channel from a busy one without trusting our own
    # grouping (which would feed on its own mistakes).
    recent: deque[tuple[float, str]] = deque()
    recent_count: Counter[str] = Counter()
    times = _seconds(messages)
    for index, message in enumerate(messages):
        now = times[index]
        speaker = _speaker(message)
        mentioned = [key for key in names.mentioned(message.text) if key != speaker]
        text = _body(message.text, bool(mentioned)).strip()
        words = _WORD.findall(text[:60].lower())
        question = _is_question(words, text)
        reply = _is_reply_opening(words)

        quoted = (opening_of.get(_opening(text[1:].split("\n", 1)[0]))
                  if text.startswith(">") else None)
        active = [c for c in active if now - conversations[c].last_time <= options.window]
        active = active[-options.max_active:]

        best = options.new_score
        if question and not mentioned:
            best += options.new_question
        chosen = -1
        while recent and now - recent[0][0] > options.quiet_horizon:
            _, gone = recent.popleft()
            recent_count[gone] -= 1
            if not recent_count[gone]:
                del recent_count[gone]
        quiet = len(recent_count.keys() | {speaker}) <= options.quiet_speakers
        for number in active:
            conversation = conversations[number]
            gap = max(0.0, now - conversation.last_time)
            score = -options.time_weight * math.log1p(gap / options.time_scale)
            if mentioned:
                if any(latest_of.get(key) == number for key in mentioned):
                    score += options.mention_latest
                elif any(key in conversation.participants for key in mentioned):
                    score += options.mention_member
                if speaker in conversation.participants:
                    score += options.mention_member / 2
            if number == quoted:
                score += options.quote
            if not message.is_bot and latest_of.get(speaker) == number:
                score += options.author_latest
            if speaker == conversation.root_author and not message.is_bot:
                score += options.asker
            if quiet and number == previous and not message.is_bot:
                score += options.quiet_continuation
            if conversation.last_author != speaker and number == previous:
                if reply:
                    score += options.reply_opening
                if conversation.last_is_question and not question:
                    score += options.answers_question
            if score > best:
                best, chosen = score, number

        if chosen < 0:
            chosen = len(conversations)
            conversations.append(_Conversation([], speaker, set(), now, speaker, False))
        else:
            active.remove(chosen)
        active.append(chosen)
        conversation = conversations[chosen]
        conversation.members.append(index)
        conversation.participants.add(speaker)
        conversation.last_time = now
        conversation.last_author = speaker
        conversation.last_is_question = question
        latest_of[speaker] = chosen
        previous = chosen
        if text and not text.startswith(">"):
            opening_of[_opening(text)] = chosen
        recent.append((now, speaker))
        recent_count[speaker] += 1
        if message.author:
            names.add(message.author, speaker)
        if message.author_id:
            names.add(message.author_id, speaker)
    return [c.members for c in conversations]
