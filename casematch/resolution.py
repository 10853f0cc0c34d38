"""Is a Slack thread a resolved support case, and which message(s) hold the fix.

A swarm thread is a root (the case) and replies (the swarm). Real threads rarely end on the
fix: the asker puts the check mark on their own "thanks, that worked" or on the root, more
answers follow the one that worked, and people share meeting links and say "joined". So each
reply is scored as a candidate from the evidence threads carry (a resolution reaction on it,
the asker's thanks or confirmation right after it, code, commands, versions, links, length),
and replies that can never be the fix (thanks, acknowledgements, questions, requests for logs,
promises to look later, meeting links, "+1") are passed over with a reason. The verdict keeps
every candidate with its evidence so a user can see why a message was, or was not, chosen.

A thread is a case only when something says it was resolved (a resolution reaction, a closing
phrase, the asker's thanks or confirmation after an answer, or the asker saying how they
solved it) and it has a substantive answer. Announcements, release notes, polls, welcome
posts and bot posts are not cases, except form intake posts and channels configured as such.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache

from casematch.cases import Message, first_sentence
from casematch.rules import DEFAULT_PHRASES, DEFAULT_RULES, ResolutionRules


@dataclass(frozen=True, slots=True)
class Candidate:
    """One reply weighed as the fix: its evidence, or why it can never be the fix."""

    index: int  # position in the messages given to resolve_thread (0 is the root)
    score: float  # higher is more likely the fix; 0.0 when rejected
    evidence: tuple[str, ...] = ()
    rejected: str | None = None  # None: eligible; else why it is passed over


# What kind of thread the root opens. Only "support" threads can be cases.
SUPPORT, ANNOUNCEMENT, POLL, WELCOME, BOT = "support", "announcement", "poll", "welcome", "bot"
REVIEW = "review"


@dataclass(frozen=True, slots=True)
class ThreadResolution:
    """What `resolve_thread` decided about one thread.

    `resolved` is true exactly when the thread is a resolved support case (`is_case`);
    `fix` holds the indices of the messages that carry the fix, in order, and `resolution`
    their text. `signals` says what marked the thread resolved; `reason` says why a thread
    is not a case. `candidates` has one entry per reply (indices 1..n-1).
    """

    resolved: bool
    problem: str
    resolution: str
    title: str
    resolved_at: datetime | None = None
    fix: tuple[int, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    signals: tuple[str, ...] = ()
    reason: str = ""
    kind: str = SUPPORT

    @property
    def is_case(self) -> bool:
        return self.resolved


# ---- phrases ------------------------------------------------------------------------------

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

# Thanks in the languages support teams commonly write in. Matched as whole words.
GRATITUDE = (
    # English
    "thanks", "thank you", "thank u", "thanx", "thx", "tnx", "tks", "ty", "tyvm", "tysm",
    "cheers", "much appreciated", "appreciate it", "appreciated", "kudos",
    # Spanish
    "gracias", "muchas gracias", "mil gracias", "te agradezco", "se agradece",
    # Portuguese
    "obrigado", "obrigada", "muito obrigado", "muito obrigada", "valeu", "agradeço",
    # French
    "merci", "merci beaucoup", "je vous remercie",
    # German
    "danke", "vielen dank", "danke schön", "dankeschön", "danke sehr",
    # Indonesian
    "terima kasih", "makasih", "trims", "thanks ya", "makasi",
)
# The asker saying the answer worked or was understood.
CONFIRMATION = (
    # English
    "that worked", "it worked", "this worked", "worked for me", "works for me", "it works",
    "that works", "works now", "working now", "it's working", "its working", "is working now",
    "that did it", "that did the trick", "did the trick", "that fixed it", "fixed it",
    "solved it", "problem solved", "issue solved", "all good now", "all good",
    "makes sense", "that makes sense", "clear now", "gotcha",
    "exactly what i needed", "good enough", "nice tip", "that helps", "very helpful",
    "helpful", "was able to", "managed to",
    # Spanish
    "funcionó", "funciono", "ya funciona", "funciona", "perfecto", "entendido", "resuelto",
    "solucionado", "ya quedó",
    # Portuguese
    "funcionou", "deu certo", "perfeito", "resolvido", "entendi", "agora funciona",
    # French
    "ça marche", "ca marche", "ça fonctionne", "ça a marché", "parfait", "résolu", "compris",
    "c'est bon",
    # German
    "funktioniert", "klappt", "hat geklappt", "perfekt", "gelöst", "verstanden", "alles klar",
    # Indonesian
    "berhasil", "sudah bisa", "udah bisa", "sudah jalan", "mantap", "beres",
)
# Acknowledgements that confirm only where they end a clause: "got it." but not "got it
# submitted", "I see." but not "I see the error".
CLAUSE_FINAL = ("got it", "i see", "understood", "perfect", "listo", "paham", "compris")
# Short acknowledgements that are never a fix, whoever writes them.
_ACK_WORDS = frozenset({
    "ok", "okay", "okey", "oke", "okok", "okokok", "k", "kk", "sure", "yes", "yep", "yeah", "yup",
    "cool", "nice", "great", "awesome", "perfect", "noted", "ah", "aha", "oh", "ohh", "ahh",
    "hmm", "right", "alright", "good", "excellent", "lgtm", "np", "welcome", "you're", "youre",
    "no", "problem", "worries", "glad", "to", "help", "helped", "happy", "it", "that", "this",
    "so", "much", "a", "lot", "very", "all", "again", "for", "the", "info", "and", "you", "guys",
    "team", "everyone", "man", "mate", "buddy", "amigo", "my", "bad", "sorry", "will", "try",
    "i", "i'll", "ill", "we", "we'll", "check", "out", "look", "now", "then", "got", "see",
    "works", "worked", "working", "fixed", "solved", "wow", "indeed", "makes", "sense",
    "understood", "clear", "super", "bien", "vale", "si", "sí", "oui", "ja", "ya", "sip", "gut",
    "de", "nada", "rien", "bitte", "sama", "sama-sama", "your", "support", "quick",
    "reply", "response", "answer", "explanation", "clarifying", "clarification", "pointer",
    "pointers", "tip", "insight", "on", "of", "in", "with", "by", "is", "was", "be", "did",
    "do", "me", "us", "there", "here", "just", "too", "as", "well", "have", "day",
    "catching", "reporting", "looking", "into", "get", "back", "let", "know", "can", "hear",
})
# A bare acknowledgement must say yes to something: "ok cool", not "nope" or "hmm".
_POSITIVE_ACK = re.compile(
    r"\b(ok|okay|oke|okey|okok\w*|k|kk|sure|yes|yep|yeah|yup|cool|nice|great|awesome|perfect|"
    r"noted|alright|good|excellent|lgtm|aha|right|understood|clear|bien|vale|oui|ja|sip|"
    r"mantap|beleza|genial|super|wow)\b",
    re.IGNORECASE,
)
# After thanks, a sentence that turns back to the question ("To be clear though, I'm
# wondering if there are docs on this", "Thanks, but why does it...?") keeps it open.
_RESERVATION = re.compile(r"\b(though|however|but|still|although|yet)\b", re.IGNORECASE)
_STILL_ASKING = re.compile(
    r"\b(wonder\w*|hoping|hoped|my question|looking for|need|want|trying to find)\b",
    re.IGNORECASE)
# A helper saying they repaired it ("Thanks for the report! I've pushed a repair."): the fix,
# however short, not an acknowledgement.
_REPAIRED = re.compile(
    r"\b(pushed|merged|committed|released|deployed|shipped|landed|published)\b[^.!?\n]{0,30}"
    r"\b(fix|fixes|repair|patch|change)\b|\b(i|we)('ve| have)? (fixed|repaired|patched)\b",
    re.IGNORECASE)
_NEGATIVE = re.compile(r"\b(no|not|nope|nah|never|still|neither|nor|without)\b|n't\b",
                       re.IGNORECASE)
_FAILURE = re.compile(
    r"\bstill\b[^.?!\n]{0,40}\b(fail|error|not|n't|same|there|null|broken|crash|happen|"
    r"see|get|getting|stuck|issue|problem)|"
    # "still can't find it", but not "still haven't touched Racket" or "still doesn't
    # mention it": a failure to do, not any negation.
    r"\bstill\s+(ca|could|do|does|did|wo|is)n['\u2019]?t\s+(\w+\s+)?(work|find|get|see|run|"
    r"load|connect|install|start|open|build|compile|fix|solve|figure|understand)|"
    r"\b(doesn'?t|does not|didn'?t|did not|isn'?t|is not|not|won'?t|no longer)\s+"
    r"(seem to\s+)?(be\s+)?(work|working|running|run|help|helping|fix|solve|change)|"
    r"\bsame (error|issue|problem|thing)\b|\bno luck\b|\bagain\b[^.?!\n]{0,30}\b(fail|error)",
    re.IGNORECASE,
)
# The asker saying they found the fix themselves.
_SELF_SOLVED = re.compile(
    r"\b(never ?mind|nvm|turns? out|(i|we)('ve| have)? (finally |just |now )?(figured( it)? "
    r"out|found (it|the|a|that|out)|discovered (how|the (fix|cause|solution|trick))|solved|fixed|"
    r"got it working|managed)|the (issue|problem|cause|trick) was|the trick is|it was (because|"
    r"due)|found (a|the) (solution|fix|workaround|way|answer))\b",
    re.IGNORECASE,
)
_MEETING = re.compile(
    r"meet\.google\.com|zoom\.us|teams\.microsoft\.com|teams\.live\.com|whereby\.com|"
    r"webex\.com|\b(join|joining) (here|the call|the meeting|us)\b|"
    r"\b(can|could|shall) we (get on|have|hop on|jump on|connect|do|schedule|set up)\b[^?]{0,30}"
    r"\b(call|meet|meeting|huddle|zoom|session)\b|\b(quick|short) (call|meet|huddle)\b|"
    r"\b(have|get on|hop on|jump on) a (quick |short )?(\d+ ?min(ute)?s? )?(call|meeting|huddle)\b",
    re.IGNORECASE,
)
_ME_TOO = re.compile(
    r"^\W*(\+1|same here|same( issue| problem| for me| error)?|me too|joined|joining\W*|"
    r"bump|any updates?|any news)\W*$",
    re.IGNORECASE,
)
# "+1 for `raco setup --clean`", "same here, on 2.3": agreeing with someone else's words.
_AGREEMENT = re.compile(r"^\W*(\+1|same here|me too)(?![\w])", re.IGNORECASE)
# A reply that ends by asking everyone for help has a question of its own ("I just uploaded
# my first package ... Does anyone have a suggestion?"); it answers nobody.
_ASKS_THE_ROOM = re.compile(
    r"\b(does|do|can|could|would|has|have|is) (anyone|anybody|someone|somebody|any ?one)\b|"
    r"^\W*(anyone|anybody|someone|somebody)\b|\bany (ideas|suggestions|thoughts|advice|"
    r"pointers|hints)\b",
    re.IGNORECASE)
_INFO_REQUEST = re.compile(
    r"\b(can|could|would|will) (you|u)\b[^.?!\n]{0,40}\b(share|send|provide|post|paste|attach|"
    r"upload|show us|tell us|tell me|confirm|dm)\b|"
    r"\bplease (also )?(share|send|provide|post|paste|attach|upload|confirm|let (us|me) know "
    r"(the|which|what|your|if))\b|"
    r"\b(what|which) (version|os|platform|deployment|mode)\b[^.!\n]*\?|"
    r"\bshare (the|your) (full |complete |entire )?(logs?|config|configuration|screenshot|"
    r"output|error)|"
    # "check /var/log/apache2 for logs, then pastebin your config": a step to find the cause.
    r"\bpastebin\b|\b(check|look at|look in|read) (the |your )?[^.!?\n]{0,30}\blogs?\b",
    re.IGNORECASE,
)
_DEFERRAL = re.compile(
    r"\b(we|i)('| a)?re (looking|checking|investigating|working) (into|on) (it|this|that|the)|"
    r"\b(looking|checking) into (it|this)\b|"
    r"\b(will|'ll|shall|going to) (get back|revert|circle back|update you|keep you posted|"
    r"let you know|notify|check (on )?(this|it|once|and)|look into|investigate|assign)\b|"
    r"\bget back to you\b|\bgive (us|me) (some )?time\b|"
    r"\b(will|'ll|planning to|plan to) (try to )?(add|fix|release|ship|review|pick|put)\b"
    r"[^.!\n]{0,60}\b(soon|later|today|tomorrow|tonight|shortly|eta|next (week|release)|"
    r"days?|before \w+day|by \w+day)\b",
    re.IGNORECASE,
)
_SUGGESTION = re.compile(
    r"\b(try|retry|re-run|rerun|restart|upgrade|downgrade|update|install|uninstall|set|use|"
    r"add|remove|enable|disable|run|change|increase|reduce|delete|recreate|switch|pass|"
    r"wrap|call|looked at|look at|checked|tried)\b",
    re.IGNORECASE,
)
_QUESTION_OPENING = re.compile(
    r"^\W*(how|what|why|when|where|which|who|is|are|do|does|did|can|could|would|should|have|"
    r"has|any|anyone|was|were)\b",
    re.IGNORECASE,
)
_CODE = re.compile(r"```|`[^`\n]+`")
_LINK = re.compile(r"https?://|<https?:|\bgithub\.com/|\bdocs?\.[\w-]+\.\w+|\w+\.io/docs")
_VERSION = re.compile(r"(?<![\w.])v?\d+\.\d+(\.\d+)*(?![\w.]*\d)")
_STEPS = re.compile(r"^\s*(\d+[.)]|[•*-]|->|→)\s+\S", re.MULTILINE)
_FIX_WORDS = re.compile(
    r"\b(fix(ed)?|workaround|solution|upgrade|downgrade|install|set|enable|disable|increase|"
    r"reduce|restart|use|try|instead|should|need to|have to|you can|make sure|released?|patch|"
    r"configure|because|caused by|the (issue|problem|cause) (is|was)|requires?|supported)\b",
    re.IGNORECASE,
)
_MENTION = re.compile(r"<@[^>]+>|@[\w.-]+")
_EMOJI_CODE = re.compile(r":[a-z0-9_+'-]+:")
_PUNCT_ONLY = re.compile(r"^[\W_]*$")
_APPRECIATION = frozenset({
    "+1", "thumbsup", "raised_hands", "pray", "heart", "100", "tada", "clap", "ok_hand",
    "muscle", "rocket", "star-struck", "heart_eyes", "ok",
})
# A first line that only greets ("Hi team,", "Hello all!") makes a useless title.
_GREETING = re.compile(
    r"(hi|hey|hello|hola|hiya|greetings|good (morning|afternoon|evening|day))\b"
    r"[\w\s,@.'-]{0,25}[,.!:]*", re.IGNORECASE,
)
_RELEASE = re.compile(
    r"\b(v?\d+(\.\d+)+)\b[^\n]{0,40}\b(released|is out|is live|now available|release notes)\b|"
    r"^\W*(release notes|announcement|announcing|\[announce\]|:mega:|:loudspeaker:|"
    r"new release)\b|\bwhat'?s new\b",
    re.IGNORECASE | re.MULTILINE,
)
_PROBLEM_WORDS = re.compile(
    r"\?|\b(error|errors|fail|fails|failed|failing|issue|bug|broken|can'?t|cannot|unable|"
    r"help|how|why|crash|exception|problem|not working)\b",
    re.IGNORECASE,
)
# Contribution work: "I raised a PR, could someone review it?", "can you assign it to me?".
_PULL_REQUEST = re.compile(r"\b(PR|PRs|pull request|merge request)\b|/pull/\d+|/merge_requests/\d+")
_REVIEW_ASK = re.compile(
    r"\b(review|take a look|have a look|PTAL|tackle|work on|pick (it|this) up|contribute)\b",
    re.IGNORECASE,
)
_ASSIGN_ASK = re.compile(r"\bassign (it |this |this issue |me )?(to me|me)\b|\bassign me\b",
                         re.IGNORECASE)
_ALERT = re.compile(
    r"\b(alert|alarm|firing|triggered|incident|outage|down|full|critical|warning|error|"
    r"errors|failed|failing|failure|unhealthy|degraded|exceeded|above|below|high|timeout)\b",
    re.IGNORECASE,
)
_POLL = re.compile(r"\b(poll|polls|survey|vote|votes|voting)\b", re.IGNORECASE)
_WELCOME = re.compile(
    r"^\W*(please |let'?s |a (warm |big )?)?(welcome|say (hi|hello)|introducing)\b",
    re.IGNORECASE,
)
# Intake forms (Workflow Builder, helpdesk bots) post labelled fields; the problem field
# says far more than the first line, which is usually "Customer: ...".
_PROBLEM_FIELD = re.compile(
    r"^[*_]*(?:problem|issue|summary|subject|question)[*_]*\s*:[*_]*\s*(.*)$", re.IGNORECASE
)
_FORM_FIELD = re.compile(r"^\s*[*_]*[A-Z][\w /-]{1,30}[*_]*\s*:[*_]*(\s|$)", re.MULTILINE)
_WORD = re.compile(r"[\w'\u2019+-]+")
_STOPWORDS = frozenset({
    "about", "after", "again", "also", "because", "been", "before", "being", "between", "both",
    "could", "does", "doing", "down", "each", "from", "further", "have", "having", "here",
    "into", "just", "more", "most", "once", "only", "other", "over", "same", "should", "some",
    "such", "than", "that", "their", "them", "then", "there", "these", "they", "this", "those",
    "through", "under", "until", "very", "were", "what", "when", "where", "which", "while",
    "will", "with", "would", "your", "yours", "thanks", "thank", "going", "give", "good",
    "nice", "seems", "reasonably", "think", "know", "like", "want", "need", "make", "sure",
    "work", "works", "worked", "working", "that's", "it's", "i'll", "look", "check", "really",
})


@lru_cache(maxsize=256)
def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(w) for w in phrase.split())
    return re.compile(rf"(?<![\w-]){words}(?![\w-])", re.IGNORECASE)


def _negated(text: str, start: int) -> bool:
    before = re.split(r"[.!?\n]", text[:start])[-1]
    words = re.findall(r"[\w']+", before.lower().replace("\u2019", "'"))[-4:]
    return any(w in _NEGATIONS or w.endswith("n't") for w in words)


def has_closing_phrase(text: str, phrases: Sequence[str] = DEFAULT_PHRASES) -> bool:
    """True when `text` says the case is closed ("fixed!"), not "not fixed" or "fixed?"."""
    for phrase in phrases:
        for match in _phrase_pattern(phrase).finditer(text):
            after = re.split(r"[.!\n]", text[match.end():])[0]
            if _negated(text, match.start()):
                continue
            if "?" in after:  # "is it fixed?" asks; it does not close
                continue
            return True
    return False


def _may_hold(lowered: str, phrase: str) -> bool:
    """False only when `phrase` cannot match: its first word (if ASCII, where lower() and
    the patterns' IGNORECASE agree) is nowhere in the lowered text. Trying each of a hundred
    phrase patterns on every reply was most of the time a Slack import spends here."""
    first = phrase.split(maxsplit=1)[0].lower() if phrase.strip() else ""
    return not first.isascii() or first in lowered


def _has_phrase(text: str, phrases: Iterable[str], *, negatable: bool = False) -> bool:
    lowered = text.lower()
    for phrase in phrases:
        if not _may_hold(lowered, phrase):
            continue
        for match in _phrase_pattern(phrase).finditer(text):
            if negatable and _negated(text, match.start()):
                continue
            return True
    return False


def is_substantive(text: str) -> bool:
    """False for replies that carry no fix: thanks, +1, an emoji, a few words."""
    stripped = text.strip()
    if len(stripped) < _SUBSTANTIVE_MIN:
        return False
    return not (_THANKS.match(stripped) and len(stripped) < 60)


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


# ---- reading one message ------------------------------------------------------------------


def _who(message: Message) -> str:
    return message.author_id or message.author


def _unquoted(text: str) -> str:
    """The text without the lines it quotes ("> the error you posted")."""
    return "\n".join(line for line in text.split("\n") if not line.lstrip().startswith(">"))


def _prose(text: str) -> str:
    """The text without quotes, code blocks, inline code, mentions or emoji codes."""
    text = re.sub(r"```.*?(```|$)", " ", _unquoted(text), flags=re.DOTALL)
    text = re.sub(r"`[^`\n]*`", " CODE ", text)
    text = re.sub(r"<?https?://[^\s>]+>?", " LINK ", text)
    text = _MENTION.sub(" ", text)
    return _EMOJI_CODE.sub(" ", text)


def _gratitude(text: str, rules: ResolutionRules) -> bool:
    return _has_phrase(text, GRATITUDE) or _has_phrase(text, rules.gratitude)


@lru_cache(maxsize=64)
def _clause_final(phrase: str) -> re.Pattern[str]:
    return re.compile(_phrase_pattern(phrase).pattern + r"(?=\s*([.!,;:)\-\u2013\u2014]|$))",
                      re.IGNORECASE | re.MULTILINE)


def _confirmation(text: str) -> bool:
    return (_has_phrase(text, CONFIRMATION, negatable=True)
            or any(_clause_final(p).search(text) for p in CLAUSE_FINAL))


def _sentences(prose: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", prose) if _WORD.search(s)]


def says_thanks(text: str, rules: ResolutionRules = DEFAULT_RULES) -> bool:
    """Thanks or a confirmation that is what the message says, not a word in passing.

    In a long message only the opening and the closing sentence count: "we used CDC with
    Debezium and it worked without any issues" in the middle of a report confirms nothing.
    """
    prose = _prose(text)
    sentences = _sentences(prose)
    if len(prose.strip()) >= 200 and len(sentences) > 2:
        prose = f"{sentences[0]}\n{sentences[-1]}"
    return _gratitude(prose, rules) or _confirmation(prose)


def is_acknowledgement(text: str, rules: ResolutionRules = DEFAULT_RULES) -> bool:
    """Thanks, "ok, got it", "perfect, fixed": a reply that reacts and carries no fix."""
    if _CODE.search(text) or _LINK.search(text):
        return False
    plain = _prose(text)
    if _SUGGESTION.match(plain.strip()) or _REPAIRED.search(plain):
        return False  # an instruction ("Restart the worker and it works") is an answer
    prose = plain.lower()
    for phrase in (*GRATITUDE, *rules.gratitude, *CONFIRMATION, *CLAUSE_FINAL, *rules.phrases):
        if not _may_hold(prose, phrase):
            continue
        # "that would be helpful" is no confirmation: its words stay and are counted.
        prose = _phrase_pattern(phrase).sub(
            lambda m: m.group(0) if _negated(m.string, m.start()) else " ", prose)
    words = [w for w in _WORD.findall(prose) if w not in _ACK_WORDS and not w.isdigit()]
    said_thanks = _gratitude(text, rules) or _confirmation(text)
    # Thanks plus a few words ("thanks, trying it tonight") is still thanks; an answer that
    # opens with thanks ("Thanks - the cause is the missing index; add it") is not.
    if said_thanks:
        return len(words) <= 4 and len(plain) < 160
    return len(words) <= 1 and len(plain) < 60 and bool(_POSITIVE_ACK.search(prose))


def _thanks_before_asking(text: str, rules: ResolutionRules) -> bool:
    for sentence in _sentences(_prose(text)):
        if sentence.endswith("?") or _QUESTION_OPENING.match(sentence):
            return False
        if _gratitude(sentence, rules) or _confirmation(sentence):
            return True
    return False


def _asks(text: str) -> bool:
    return any(s.endswith("?") or _QUESTION_OPENING.match(s) for s in _sentences(_prose(text)))


def _is_question(text: str) -> bool:
    prose = _prose(text).strip()
    if "?" not in prose:
        return False
    sentences = _sentences(prose)
    asking = [s for s in sentences if s.endswith("?") or _QUESTION_OPENING.match(s)]
    return len(asking) == len(sentences) or (len(prose) < 120 and prose.endswith("?"))


def _suggests(text: str) -> bool:
    """A question that proposes a fix: "can you retry?", "have you looked at <link>?"."""
    return bool(_SUGGESTION.search(_prose(text)) or _LINK.search(text))


@dataclass(frozen=True, slots=True)
class _Features:
    code: bool
    link: bool
    version: bool
    steps: bool
    fix_words: bool

    @property
    def strong(self) -> bool:
        return self.code or self.link or self.version or self.steps


def _features(text: str) -> _Features:
    prose = _prose(text)
    text = _unquoted(text)
    return _Features(
        code=bool(_CODE.search(text)),
        link=bool(_LINK.search(text)),
        version=bool(_VERSION.search(prose)),
        steps=len(_STEPS.findall(text)) >= 2,
        fix_words=bool(_FIX_WORDS.search(prose)),
    )


_LEADING_MENTION = re.compile(
    r"^\W*(?:(?:hi|hey|hello|hola|ok|okay|yes|no|so|also|and|but|cc)\b\W*)?(<@[^>]+>|@[\w.-]+)",
    re.IGNORECASE,
)


def _addressed_elsewhere(message: Message, asker: Message) -> bool:
    """True when the reply opens by naming someone other than the asker: it answers them."""
    match = _LEADING_MENTION.match(message.text)
    if not match:
        return False
    head = message.text[match.start(1):].lower()
    names = {n.lower() for n in (asker.author, asker.author_id) if n}
    return not any(head.startswith(f"@{n}") or head.startswith(f"<@{n}") for n in names)


def _rejection(message: Message, root: Message, rules: ResolutionRules) -> str | None:
    """Why `message` can never be the fix, or None when it may be."""
    asker = _who(root)
    text = message.text.strip()
    if message.is_bot:
        return "bot message"
    if not text:
        return "no text"
    prose = _prose(text).strip()
    if _PUNCT_ONLY.match(prose) and not _CODE.search(text):
        return "emoji or mention only" if text else "no text"
    if _MEETING.search(text):
        return "meeting or call arrangement"
    if _ME_TOO.match(prose) or (_AGREEMENT.match(prose) and len(prose) < 80):
        return "+1 / same here / joined"
    if is_acknowledgement(text, rules):
        return "thanks or acknowledgement"
    features = _features(text)
    # A request may come with instructions for getting what it asks for (steps, a sample):
    # then only its opening counts. Without them, a request anywhere makes it one.
    asked = " ".join(_sentences(prose)[:2]) if features.strong else prose
    if _INFO_REQUEST.search(asked):
        return "asks for information"
    if _is_question(text) and not _suggests(text):
        return "a question"
    sentences = _sentences(prose)
    if sentences and sentences[-1].endswith("?") and _ASKS_THE_ROOM.search(sentences[-1]):
        return "asks everyone a question of its own"
    if _DEFERRAL.search(text) and not (features.code or features.steps) and len(prose) < 300:
        return "a promise to look into it, not an answer"
    if _who(message) == asker:
        if not _SELF_SOLVED.search(prose) or _is_question(text):
            return "written by the asker"
    elif _addressed_elsewhere(message, root):
        return "addressed to someone other than the asker"
    # "Restart the spooler" is short and a fix; "hmm, odd" is short and not.
    if (len(prose.strip()) < _SUBSTANTIVE_MIN and not features.code
            and not _SUGGESTION.match(prose.strip())):
        return "too short to hold a fix"
    return None


def _base_evidence(message: Message, asker: str, rules: ResolutionRules) -> list[str]:
    text = message.text
    features = _features(text)
    evidence = []
    if set(rules.reactions).intersection(message.reactions):
        evidence.append("resolution reaction")
    if features.code:
        evidence.append("code or command")
    if features.link:
        evidence.append("link")
    if features.version:
        evidence.append("version number")
    if features.steps:
        evidence.append("steps")
    if features.fix_words:
        evidence.append("fix wording")
    if _APPRECIATION.intersection(message.reactions):
        evidence.append("appreciative reaction")
    if _who(message) == asker:
        evidence.append("asker's own solution")
    return evidence


_WEIGHTS = {
    "resolution reaction": 3.0, "code or command": 1.0, "link": 0.75, "version number": 0.75,
    "steps": 0.5, "fix wording": 0.5, "appreciative reaction": 0.5,
    "asker's own solution": -0.5,
}
_POINTER_WEIGHT = 4.0


# ---- the thread ---------------------------------------------------------------------------


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


def thread_kind(root: Message, rules: ResolutionRules = DEFAULT_RULES, channel: str = "") -> str:
    """What the root opens: a support thread, or an announcement, poll, welcome or bot post."""
    text = root.text.strip()
    first_line = text.split("\n", 1)[0]
    if _POLL.search(root.author) or (_POLL.search(first_line) and "?" not in text
                                    and not _PROBLEM_WORDS.search(first_line)):
        return POLL
    if root.is_bot and (_POLL.search(text) and _POLL.search(root.author or "poll")):
        return POLL
    if _WELCOME.match(text):
        return WELCOME
    if _RELEASE.search(text[:400]) and not _PROBLEM_WORDS.search(first_line):
        return ANNOUNCEMENT
    if (_PULL_REQUEST.search(text) and _REVIEW_ASK.search(text)) or _ASSIGN_ASK.search(text):
        return REVIEW
    if root.is_bot:
        # A bot post that reports a problem (an alert, an intake form) opens a case; other
        # bot posts (release feeds, digests, reminders) do not, except where configured.
        intake = ("workflow" in root.author.lower() or len(_FORM_FIELD.findall(text)) >= 2)
        if not (intake or _ALERT.search(text) or channel in rules.bot_case_channels):
            return BOT
    return SUPPORT


_KIND_REASON = {
    ANNOUNCEMENT: "an announcement or release notes, not a request for help",
    POLL: "a poll, not a request for help",
    WELCOME: "a welcome post, not a request for help",
    BOT: "a bot post outside the channels whose bot posts are cases (bot_case_channels)",
    REVIEW: "a request to review or assign contribution work, not a request for help",
}


# The asker's own word (their thanks, a resolution reaction, their fix) outranks a helper's
# "fixed in 2.3" written for someone else who joined the thread.
# A resolution reaction on the answer itself is the most explicit of all.
MARKED_ANSWER, ASKER_SIDE, HELPER_SIDE = 3, 2, 1


@dataclass(frozen=True, slots=True)
class _Signal:
    at: int  # the message that says "resolved"
    target: int | None  # the reply it points at, if any
    text: str
    strength: int


def _pointer(
    messages: Sequence[Message], at: int, eligible: set[int], rules: ResolutionRules
) -> tuple[int | None, str]:
    """The reply that thanks at `at` acknowledges: the one it @-names, quotes, or follows."""
    thanker = _who(messages[at])
    # The thanks and the same person's messages right after it ("thanks" / "trying concat").
    unit = [messages[at].text]
    for message in messages[at + 1:]:
        if _who(message) != thanker:
            break
        unit.append(message.text)
    said = "\n".join(unit)
    before = [i for i in sorted(eligible, reverse=True)
              if i < at and _who(messages[i]) != thanker]
    if not before:
        return None, ""
    named = [i for i in before if messages[i].author
             and f"@{messages[i].author}".lower() in said.lower()]
    if named:
        return named[0], f"@-names its author {messages[named[0]].author}"
    words = {w.lower() for w in _WORD.findall(_prose(said)) if len(w) >= 4}
    words -= _STOPWORDS
    words = {w for w in words if not _has_phrase(w, (*GRATITUDE, *CONFIRMATION))}
    if words:
        quoting = [i for i in before
                   if words & {w.lower() for w in _WORD.findall(messages[i].text)}
                   and not words & {w.lower() for w in _WORD.findall(messages[0].text)}]
        if len(quoting) == 1:
            return quoting[0], "quotes it"
    # Remarks the same person adds after their answer ("I'm good at googling") are not what
    # the thanks is for: it acknowledges the answer they follow.
    target = before[0]
    k = target
    while (_chatter(messages[k].text) and k - 1 > 0
           and _who(messages[k - 1]) == _who(messages[target])):
        k -= 1
    if k != target and k in eligible and not _chatter(messages[k].text):
        return k, "follows it, after the same person's remarks"
    return target, "follows it"


def _block(messages: Sequence[Message], index: int, eligible: set[int], asker: str) -> list[int]:
    """`index` plus the same author's adjacent replies that belong to the same answer.

    A thin reply ("or, as a workaround, raise the limit") continues the one before it from
    the same person: a diagnosis and then the command. An asker's own solution takes the
    asker's next lines too ("nevermind, they show up in another log" / "the default java.log").
    """
    author = _who(messages[index])
    block = [index]
    first = index
    while (first - 1 in eligible and _who(messages[first - 1]) == author
           and _thin(messages[first].text)):
        first -= 1
        block.insert(0, first)
    if author == asker:
        last = index
        # "found a solution" and then the code, pasted in the next message.
        if (index + 1 < len(messages) and _who(messages[index + 1]) == asker
                and len(messages[index].text) < 80 and _features(messages[index + 1].text).code
                and not _is_question(messages[index + 1].text)):
            last += 1
            block.append(last)
        while (last + 1 < len(messages) and _who(messages[last + 1]) == asker
               and _thin(messages[last + 1].text) and len(messages[last + 1].text) < 80
               and not _is_question(messages[last + 1].text)
               and not says_thanks(messages[last + 1].text)):
            last += 1
            block.append(last)
    return block


def _thin(text: str) -> bool:
    features = _features(text)
    return not (features.code or features.link or features.steps) and len(text.strip()) < 160


_ADDRESS_END = re.compile(r"[:,]\s")


def _with_handles(messages: Sequence[Message]) -> list[Message]:
    """The thread with each participant's @-mentions and name replaced by a handle "p<n>".

    Slack exports write mentions as display names ("@Anh Nguyen Thach"), which no pattern can
    tell from the words after them ("@Ankit Sharma Thanks!"); the thread knows its people.
    """
    handles: dict[str, str] = {}
    for message in messages:
        handles.setdefault(_who(message), f"p{len(handles)}")
    forms: dict[str, str] = {}
    for message in messages:
        handle = handles[_who(message)]
        for form in (message.author, message.author_id):
            if form and len(form) > 1:
                forms.setdefault(form.lower(), handle)
    if not forms:
        return [replace(message, author=handles[_who(message)]) for message in messages]
    # Longest name first, so "Anh Nguyen" wins over "Anh". One pattern per thread, and only
    # when a message mentions someone: a pattern per name and message had made regex
    # compilation most of a Slack import's time.
    longest_first = sorted(forms, key=len, reverse=True)
    mention: re.Pattern[str] | None = None
    if any("@" in message.text for message in messages):
        names = "|".join(re.escape(form) for form in longest_first)
        mention = re.compile(rf"<@({names})(?:\|[^>]*)?>|@({names})(?![\w.-])", re.IGNORECASE)

    def to_handle(match: re.Match[str]) -> str:
        handle = forms.get(next(g for g in match.groups() if g is not None).lower())
        return f"@{handle}" if handle else match.group(0)

    out = []
    for message in messages:
        text = mention.sub(to_handle, message.text) if mention else message.text
        # Chat and IRC address people by a leading "name:" ("dopey: in universe").
        start = text[:80].lower()
        for form in longest_first:
            if start.startswith(form) and _ADDRESS_END.match(text, len(form)):
                text = f"@{forms[form]}{text[len(form):]}"
                break
        out.append(replace(message, text=text, author=handles[_who(message)]))
    return out


def resolve_thread(
    messages: Sequence[Message], rules: ResolutionRules = DEFAULT_RULES, *, channel: str = ""
) -> ThreadResolution:
    """Decide whether a thread (root first, replies in order) is a resolved case, and by what.

    `channel` (a name) matters only for `rules.bot_case_channels`.
    """
    if not messages:
        return ThreadResolution(resolved=False, problem="", resolution="", title="",
                                reason="empty thread")
    problem = _problem(messages)
    title = title_of(problem)
    shown = messages
    messages = _with_handles(messages)
    asker = _who(messages[0])
    wanted = set(rules.reactions)

    rejected = {i: _rejection(messages[i], messages[0], rules) for i in range(1, len(messages))}
    for i, why in rejected.items():
        if why is None and _already_done(messages, i):
            rejected[i] = "a suggestion the asker had already tried"
        elif why is None and _side_exchange(messages, i):
            rejected[i] = "answers someone else's remark to them, not the asker"
    for i in _helped_elsewhere(messages):
        if rejected[i] is None:
            rejected[i] = ("its author opened by thanking for help of their own: another "
                           "conversation")
    eligible = {i for i, why in rejected.items() if why is None}

    signals, superseded = _signals(messages, eligible, rules)
    pointed: dict[int, list[str]] = {}
    for signal in signals:
        if signal.target is not None:
            note = "superseded: " if signal in superseded else ""
            pointed.setdefault(signal.target, []).append(f"{note}{signal.text}")

    candidates = []
    for i in range(1, len(messages)):
        if rejected[i] is not None:
            candidates.append(Candidate(i, 0.0, (), rejected[i]))
            continue
        evidence = _base_evidence(messages[i], asker, rules)
        score = 1.0 + sum(_WEIGHTS[e] for e in evidence)
        score += min(len(_prose(messages[i].text).strip()) / 500, 1.0)
        for note in pointed.get(i, ()):
            evidence.append(note)
            score += 1.0 if note.startswith("superseded") else _POINTER_WEIGHT
        candidates.append(Candidate(i, round(score + i / 1000, 3), tuple(evidence), None))

    kind = thread_kind(shown[0], rules, channel)
    def verdict(reason: str, shown_signals: Sequence[_Signal]) -> ThreadResolution:
        return ThreadResolution(
            resolved=False, problem=problem, resolution="", title=title,
            candidates=tuple(candidates), signals=tuple(s.text for s in shown_signals),
            reason=reason, kind=kind)

    if kind != SUPPORT:
        return verdict(_KIND_REASON[kind], signals)
    valid = [s for s in signals if s not in superseded]
    if not valid:
        reason = ("no sign it was resolved: no resolution reaction, closing phrase, or thanks "
                  "or confirmation from the asker after an answer")
        if signals:
            reason = "the asker reported the problem again after every sign of resolution"
        return verdict(reason, signals)
    if len(messages) == 1:
        # A lone message marked resolved (unthreaded channels) holds problem and fix at once.
        return ThreadResolution(
            resolved=True, problem=problem, resolution="", title=title,
            resolved_at=messages[0].created_at, signals=tuple(s.text for s in valid), kind=kind)
    if not eligible:
        return verdict("no substantive answer: every reply is thanks, a question, a request "
                       "for information, a promise, a meeting link or too short", valid)

    targeted = [s for s in valid if s.target is not None]
    deciding = max(targeted or valid, key=lambda s: (s.strength, s.at))
    if deciding.target is not None:
        chosen = deciding.target
    else:
        chosen = max(candidates, key=lambda c: c.score if c.rejected is None else -1.0).index
    fix = set(_block(messages, chosen, eligible, asker))
    # Replies marked with a resolution reaction are fixes by the team's own word.
    fix |= {i for i in eligible if wanted.intersection(messages[i].reactions)}
    ordered = tuple(sorted(fix))
    # Resolved when the deciding sign was given; a check mark on the root (which carries the
    # root's time) or a sign before the fix's last part dates it by the fix instead.
    when = messages[max(deciding.at, ordered[-1])].created_at
    return ThreadResolution(
        resolved=True,
        problem=problem,
        resolution="\n\n".join(shown[i].text.strip() for i in ordered),
        title=title,
        resolved_at=when,
        fix=ordered,
        candidates=tuple(candidates),
        signals=tuple(s.text for s in valid),
        kind=kind,
    )


# "yes I restarted", "already did": done before. "Yes sure" agrees to try it now.
def _side_exchange(messages: Sequence[Message], at: int) -> bool:
    """True when `at` (and the same person's messages just before it) reply to a message
    addressed to them by someone else: "dopey: in universe" / dopey: "that makes more sense".
    """
    author = messages[at].author
    if _LEADING_MENTION.match(messages[at].text):
        return False  # it names whom it answers; _addressed_elsewhere judges that
    k = at
    while k > 1 and messages[k - 1].author == author:
        k -= 1
    before = messages[k - 1]
    match = _LEADING_MENTION.match(before.text)
    return (k > 1 and before.author != messages[0].author and match is not None
            and match.group(1).lstrip("<@").rstrip(">").split("|")[0] == author)


_ALREADY = re.compile(r"^\W*((yes|yeah|yep|yup)\W+((i|we)\s+)?(did|have|had|already|tried|"
                      r"\w+ed)\b|already|i did|i have|i've|i tried|tried that|did that|"
                      r"done that)\b", re.IGNORECASE)


def _already_done(messages: Sequence[Message], at: int) -> bool:
    """A suggestion asked as a question ("did you restart apache?") the asker says they did."""
    if not _is_question(messages[at].text):
        return False
    asker = _who(messages[0])
    reply = next((m for m in messages[at + 1:] if _who(m) == asker), None)
    return reply is not None and bool(_ALREADY.match(_prose(reply.text)))


def _reservation(text: str) -> bool:
    """Thanks that turns back to the question: "Thanks. To be clear though, I'm wondering..."."""
    return any(_RESERVATION.search(s) and (s.endswith("?") or _STILL_ASKING.search(s))
               for s in _sentences(_prose(text)))


_CHECK_IN = re.compile(r"\b(work|works|worked|working|help|helps|helped|fix|fixes|fixed|solve|"
                       r"solves|solved|better|sense|clear|ok|okay)\b", re.IGNORECASE)


def _acknowledges_an_answer(messages: Sequence[Message], at: int, eligible: set[int]) -> bool:
    """True when a bare "ok"/"yes" at `at` accepts the answer of the person just before it.

    That person's last run of replies must hold an answer, and any question in it must be a
    check-in ("Does that fix it?"): after "Is this stable?" or "can we have a call?" the
    "yes" agrees to something else.
    """
    # A helper's "cheers" to another helper between the answer and the asker's "ok" is a side
    # remark: the "ok" still answers the reply before it.
    k = at - 1
    asker = _who(messages[0])
    while (k > 1 and _who(messages[k]) != asker and k not in eligible
           and is_acknowledgement(messages[k].text)):
        k -= 1
    author, last = _who(messages[k]), k
    run: list[int] = []
    while k > 0 and _who(messages[k]) == author:
        run.append(k)
        k -= 1
    asked = [s for k in run for s in _sentences(_prose(messages[k].text)) if s.endswith("?")]
    return (bool(eligible.intersection(run)) and (last in eligible or bool(asked))
            and all(_CHECK_IN.search(s) for s in asked))


# "ok straight away", "yeah, looks like VPN is the option to go": the asker says yes to an
# answer and says what they will do with it. A yes and anything else ("yeah. I'm using the osx
# client", "Right, if you wrote the loop by hand...") is chat; a "but" is a reservation.
_ACCEPTS = re.compile(r"^\W*(ok|okay|oke|yeah|yes|yep|yup|alright|right|cool|great|i see|"
                      r"ah ok|oh ok)\b[\s,.!]+\w", re.IGNORECASE)
_WILL_DO = re.compile(r"\b(i'?ll|i will|will do|let me|going to|gonna|go with|(the|an|one) "
                      r"(option|way) to go|the way to go|straight away|right away|on it)\b",
                      re.IGNORECASE)
_BUT = re.compile(r"\b(but|though|however|although|except|unless)\b", re.IGNORECASE)


def _accepts(text: str) -> bool:
    prose = _prose(text).strip()
    return (len(prose) < 100 and "?" not in prose and bool(_ACCEPTS.match(prose))
            and bool(_WILL_DO.search(prose))
            and not _BUT.search(prose) and not _ALREADY.match(prose))


# The asker posting the problem again, or "anyone?", after a thanks: it was not solved.
_ANYONE = re.compile(r"^\W*(anyone|anybody|any ?one|someone|somebody|any (ideas|help|"
                     r"suggestions|clues?)|bump|help|please)\W*$", re.IGNORECASE)


def _asks_again(messages: Sequence[Message], at: int) -> bool:
    prose = " ".join(_prose(messages[at].text).lower().split())
    root = " ".join(_prose(messages[0].text).lower().split())
    return bool(_ANYONE.match(prose)) or (len(root) >= 40 and prose[:80] == root[:80])


_BARE_THANKS = re.compile(r"^\W*(thanks|thank you|thank u|thx|ty|tks|cheers)\W*$", re.IGNORECASE)


def _helped_elsewhere(messages: Sequence[Message]) -> list[int]:
    """The replies of people whose first word in the thread is a bare "Thanks." to someone.

    Chat that was split into conversations by machine (or a channel read without threads)
    merges one person's conversation into another's: "Thanks. If lists were supported, I
    could do..." goes on with help that person got elsewhere; it answers nobody here.
    """
    asker = _who(messages[0])
    first: dict[str, int] = {}
    for i, message in enumerate(messages[1:], 1):
        first.setdefault(_who(message), i)
    elsewhere = set()
    for who, i in first.items():
        sentences = _sentences(_prose(messages[i].text))
        if who != asker and sentences and _BARE_THANKS.match(sentences[0]):
            elsewhere.add(who)
    return [i for i in range(1, len(messages)) if _who(messages[i]) in elsewhere]


def _chatter(text: str) -> bool:
    """A short remark with nothing of a fix in it ("I think I've used it in the past")."""
    prose = _prose(text).strip()
    return (_thin(text) and not _FIX_WORDS.search(prose) and not _SUGGESTION.match(prose)
            and not _VERSION.search(prose))


def _signals(
    messages: Sequence[Message], eligible: set[int], rules: ResolutionRules
) -> tuple[list[_Signal], set[_Signal]]:
    """Every sign that the thread was resolved, in order, and those the asker took back."""
    asker = _who(messages[0])
    wanted = set(rules.reactions)
    signals: list[_Signal] = []
    failures = [i for i in range(1, len(messages))
                if _who(messages[i]) == asker and (
                    (_FAILURE.search(_prose(messages[i].text))
                     and not _has_phrase(messages[i].text,
                                         ("works now", "working now", "it worked")))
                    or _asks_again(messages, i))]
    marked: set[int] = set()
    if wanted.intersection(messages[0].reactions):
        signals.append(_Signal(0, None, "resolution reaction on the root", ASKER_SIDE))
        marked.add(0)
    window_start = max(1, len(messages) - rules.last_replies)
    for i in range(1, len(messages)):
        text = messages[i].text
        reacted = bool(wanted.intersection(messages[i].reactions))
        from_asker = _who(messages[i]) == asker
        if i in eligible:
            if reacted:
                signals.append(_Signal(i, i, f"resolution reaction on reply {i}",
                                       MARKED_ANSWER))
                marked.add(i)
            elif from_asker:
                signals.append(_Signal(i, i, f"the asker says how they solved it at reply {i}",
                                       ASKER_SIDE))
            elif i >= window_start and has_closing_phrase(text, rules.phrases):
                signals.append(_Signal(i, i, f"closing phrase in the answer at reply {i}",
                                       HELPER_SIDE))
            continue
        # "how can I fix it? tks u so much" thanks ahead for help still to come; "great,
        # thanks. Could you also add it to the docs?" thanks first, then asks for more.
        asking = _asks(text) and not _thanks_before_asking(text, rules)
        # A bare "ok cool" acknowledges only the answer right before it; after "can we have
        # a call?" or "can you share the logs?" it agrees to something else.
        prose = _prose(text)
        thanks = from_asker and not asking and not _FAILURE.search(prose) and (
            (says_thanks(text, rules) and not _reservation(text))
            or ((is_acknowledgement(text, rules) or _accepts(text))
                and not _NEGATIVE.search(prose)
                and _acknowledges_an_answer(messages, i, eligible))
            or (i >= window_start and has_closing_phrase(prose, rules.phrases)))
        if not (reacted or thanks):
            continue
        target, how = _pointer(messages, i, eligible, rules)
        what = "resolution reaction on" if reacted else "the asker's thanks or confirmation at"
        if target is None and not reacted:
            continue  # thanks for nothing in this thread: an answer given elsewhere
        pointing = f" (it {how}: reply {target})" if target is not None else ""
        signals.append(_Signal(i, target, f"{what} reply {i}{pointing}", ASKER_SIDE))
        if reacted:
            marked.add(i)
    # An unmarked thanks followed by the asker saying it still fails is taken back; a
    # deliberate resolution reaction is not.
    superseded = {s for s in signals
                  if s.at not in marked and any(f > s.at for f in failures)}
    return signals, superseded


# ---- helpdesk tickets ----------------------------------------------------------------------

# Text that helpdesks post on their own or from macros when a ticket closes: it tells the
# requester about the ticket, not about the fix.
_HELPDESK_BOILERPLATE = re.compile(
    r"this (ticket|request|case) (has been|was|is being|will be) (closed|solved|resolved|"
    r"marked (as )?(solved|resolved|closed))"
    r"|\bclosing:? (resolution|reason)\b|\bresolution:\s*(fixed|won'?t fix|duplicate|"
    r"invalid|works for me)\s*\.?\s*$"
    r"|how would you rate|rate (our|the) (support|service)|satisfaction survey|"
    r"were you satisfied|please take a moment to (rate|answer|tell)"
    r"|(this is an )?auto(mated|matic)[- ]?(reply|response|message)|we have received your "
    r"(request|message|email)|we'?ve received your (request|message)|out of (the )?office"
    r"|do not reply to this (email|message)|reply above this line",
    re.IGNORECASE,
)


def is_helpdesk_boilerplate(text: str) -> bool:
    """A closing macro, satisfaction survey or auto-reply: never a ticket's resolution."""
    return bool(_HELPDESK_BOILERPLATE.search(text))


def ticket_fix(comments: Sequence[Message], rules: ResolutionRules = DEFAULT_RULES) -> int | None:
    """Index of the comment that carries a solved ticket's fix, or None when none does.

    The last public comment by an agent that is not a closing macro, a survey, an
    auto-reply or a bare acknowledgement ("Glad it works!"). `comments` are the candidate
    comments in order (public agent replies).
    """
    for index in range(len(comments) - 1, -1, -1):
        text = comments[index].text
        if text.strip() and not is_helpdesk_boilerplate(text) and not is_acknowledgement(
                text, rules):
            return index
    return None
