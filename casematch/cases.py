"""The case model every part of casematch shares, and its neutral JSONL form.

A `Case` is one past support conversation: a Slack swarm thread, a helpdesk ticket, or a
line of JSONL. Sources produce cases; the index stores them; a search returns `Match`es
that point at them. All three are frozen so they can be cached and shared freely.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    """One cleaned message of a case (a Slack reply, a ticket comment).

    Attributes:
        text: plain text (markup cleaned).
        author: display name; author_id: the source's user id.
        created_at: when it was posted (UTC), if known.
        public: False for helpdesk internal notes, which are never displayed.
        is_bot: posted by a bot or integration.
        reactions: reaction names on it (Slack).
        ts: the source's message id (a Slack ts, a comment id).
    """

    text: str
    author: str = ""
    author_id: str = ""
    created_at: datetime | None = None
    # False for helpdesk internal notes: they may help matching but are never displayed.
    public: bool = True
    is_bot: bool = False
    reactions: tuple[str, ...] = ()
    ts: str = ""


@dataclass(frozen=True, slots=True)
class Visibility:
    """Who may see a case. Private cases keep the member ids of their channel.

    Attributes:
        private: the case comes from a private channel (or is otherwise restricted).
        members: the user ids that could read it at the source.
    """

    private: bool = False
    members: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"private": self.private, "members": list(self.members)}


PUBLIC = Visibility()


@dataclass(frozen=True, slots=True)
class Case:
    """A past support case: what was asked, and what fixed it.

    Attributes:
        id: stable id (`slack:<channel>:<thread_ts>`, `zendesk:<subdomain>:<id>`, `jsonl:...`
            or as given); re-reading the same thread updates the same case.
        problem: what was asked (required).
        source: "slack", "zendesk", "jsonl"...
        title: a short title (the first sentence of the problem when empty).
        resolution: the message(s) that fixed it; empty for unresolved cases.
        resolved: only resolved cases are suggested.
        url: permalink to the thread or ticket.
        created_at, resolved_at: UTC datetimes, if known.
        channel: the Slack channel or helpdesk group.
        visibility: who may see it (`Visibility`).
        tags: free-form labels (filterable).
        messages: the cleaned conversation.
        hidden_text: text that helps matching but is never shown (internal notes).
        extra: anything else the source had (status, priority...).
    """

    id: str
    problem: str
    source: str = "jsonl"
    title: str = ""
    resolution: str = ""
    resolved: bool = False
    url: str = ""
    created_at: datetime | None = None
    resolved_at: datetime | None = None
    channel: str = ""
    visibility: Visibility = PUBLIC
    tags: tuple[str, ...] = ()
    messages: tuple[Message, ...] = ()
    # Text that helps matching but must never be shown (e.g. ticket internal notes).
    hidden_text: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def display_title(self) -> str:
        return self.title or first_sentence(self.problem)

    def search_text(self) -> str:
        """What the encoder and the lexical index see for this case."""
        parts = [self.title] if self.title and not self.problem.startswith(self.title) else []
        parts += [self.problem, self.resolution, self.hidden_text]
        return "\n\n".join(p for p in parts if p)

    def content_hash(self) -> str:
        """Changes exactly when the text the index depends on changes."""
        # surrogatepass: a case that escaped cleaning still hashes instead of crashing a run.
        text = self.search_text().encode("utf-8", "surrogatepass")
        return hashlib.sha256(text).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        return case_to_dict(self)


@dataclass(frozen=True, slots=True)
class Match:
    """One search result. `rank` starts at 1; `score` is higher for closer cases.

    Attributes:
        case: the past case.
        score: fused similarity in cosine units (dense cosine plus a bounded lexical bonus).
        rank: 1 for the best match.
        snippet: a short, displayable resolution.
        duplicates: ids of near-identical cases folded into this one (a recurring incident).
        last_seen: when the latest of those happened, for "seen N times".
    """

    case: Case
    score: float
    rank: int
    snippet: str = ""
    # Near-identical cases folded into this one (the same recurring incident).
    duplicates: tuple[str, ...] = ()
    last_seen: datetime | None = None

    @property
    def url(self) -> str:
        return self.case.url

    @property
    def seen(self) -> int:
        return 1 + len(self.duplicates)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "score": round(self.score, 4),
            "id": self.case.id,
            "title": self.case.display_title,
            "snippet": self.snippet,
            "url": self.url,
            "seen": self.seen,
            "last_seen": _iso(self.last_seen),
            "duplicates": list(self.duplicates),
            "case": case_to_dict(self.case, public_only=True),
        }


@dataclass(frozen=True, slots=True)
class LabelledQuery:
    """A labelled query (`casematch eval`, `casematch tune --labels`, Slack votes): its text,
    the ids of the cases that answer it, and ids to leave out of its ranking (leave-one-out
    sets, where the query is itself a case)."""

    query: str
    relevant: tuple[str, ...]
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Filters:
    """Restrict a search. Values within one field are ORed; fields are ANDed.

    Filters apply inside both retrievers, so a filter never empties a result list while
    matching cases exist.

    Attributes:
        sources: case sources ("slack", "zendesk", ...).
        channels: channel or group names.
        tags: case tags.
        since, until: bounds on `created_at` (inclusive).
        resolved_only: suggest only resolved cases (the default).
        exclude: case ids searched as if they were not indexed (`casematch eval` leaves a
            query's own case out this way, before fusion sees its scores).
    """

    sources: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    resolved_only: bool = True
    exclude: tuple[str, ...] = ()

    @property
    def narrows(self) -> bool:
        return bool(self.sources or self.channels or self.tags or self.since or self.until
                    or self.exclude)

    def sql_args(self) -> dict[str, Any]:
        return {
            "resolved_only": self.resolved_only,
            "sources": self.sources,
            "channels": self.channels,
            "tags": self.tags,
            "since": self.since.timestamp() if self.since else None,
            "until": self.until.timestamp() if self.until else None,
            "exclude": self.exclude,
        }


def first_sentence(text: str, limit: int = 120) -> str:
    """The first sentence or line of `text`, cut to `limit` characters on a word boundary."""
    line = text.strip().split("\n", 1)[0].strip()
    for stop in (". ", "? ", "! "):
        cut = line.find(stop)
        if 0 < cut < limit:
            line = line[: cut + 1]
    if len(line) > limit:
        line = line[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return line


# ---- cleaning text from the outside world ----------------------------------------------

# Lone UTF-16 surrogates (a truncated emoji) cannot be stored or encoded as UTF-8; C0 control
# characters other than tab and newlines, and DEL, only garble text. Both are dropped.
_UNSAFE = re.compile(r"[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> tuple[str, int]:
    """`text` without lone surrogates and control characters, and how many were removed."""
    cleaned, count = _UNSAFE.subn("", text)
    return cleaned, count


def _clean_value(value: Any) -> tuple[Any, int]:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, tuple | list):
        items = [_clean_value(v) for v in value]
        return type(value)(v for v, _ in items), sum(n for _, n in items)
    if isinstance(value, Mapping):
        pairs = [(_clean_value(k), _clean_value(v)) for k, v in value.items()]
        return ({k: v for (k, _), (v, _) in pairs},
                sum(a + b for (_, a), (_, b) in pairs))
    if isinstance(value, Message | Visibility):
        return _clean_fields(value)
    return value, 0


def _clean_fields(obj: Any) -> tuple[Any, int]:
    changes: dict[str, Any] = {}
    total = 0
    for f in fields(obj):
        value, count = _clean_value(getattr(obj, f.name))
        if count:
            changes[f.name] = value
            total += count
    return (dataclasses.replace(obj, **changes) if changes else obj), total


def _strings(case: Case) -> Iterator[str]:
    yield from (case.id, case.problem, case.source, case.title, case.resolution, case.url,
                case.channel, case.hidden_text, *case.tags, *case.visibility.members)
    for message in case.messages:
        yield from (message.text, message.author, message.author_id, message.ts,
                    *message.reactions)


def clean_case(case: Case) -> tuple[Case, int]:
    """`case` with every text field cleaned (see `clean_text`), and the characters removed."""
    # Nearly every case is clean: look before rebuilding anything (this runs on every case
    # of every run, unchanged ones included).
    try:
        # One search over all the text instead of one per field ('\n' is not unsafe).
        clean = _UNSAFE.search("\n".join(_strings(case))) is None
    except TypeError:  # a field that is not a string: clean it field by field
        clean = False
    if clean:
        if not case.extra:
            return case, 0
        if all(type(k) is str and type(v) is str for k, v in case.extra.items()) and \
                _UNSAFE.search("\n".join([*case.extra, *case.extra.values()])) is None:
            return case, 0
        extra, count = _clean_value(case.extra)
        return (dataclasses.replace(case, extra=extra) if count else case), count
    cleaned, count = _clean_fields(case)
    return cleaned, count


# ---- the neutral JSONL case format -------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def parse_datetime(value: Any) -> datetime | None:
    """ISO 8601 strings, Unix seconds (int, float or numeric string) -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"not a date: {value!r}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _message_to_dict(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"text": message.text}
    for f in fields(Message):
        value = getattr(message, f.name)
        if f.name == "text" or value == f.default:
            continue
        out[f.name] = _iso(value) if isinstance(value, datetime) else (
            list(value) if isinstance(value, tuple) else value
        )
    return out


def case_to_dict(case: Case, *, public_only: bool = False) -> dict[str, Any]:
    """The JSONL form of a case. `public_only` drops what must never be displayed."""
    messages = [m for m in case.messages if m.public or not public_only]
    out: dict[str, Any] = {
        "id": case.id,
        "source": case.source,
        "title": case.title,
        "problem": case.problem,
        "resolution": case.resolution,
        "resolved": case.resolved,
        "url": case.url,
        "created_at": _iso(case.created_at),
        "resolved_at": _iso(case.resolved_at),
        "channel": case.channel,
        "visibility": case.visibility.to_dict(),
        "tags": list(case.tags),
        "messages": [_message_to_dict(m) for m in messages],
    }
    if case.hidden_text and not public_only:
        out["hidden_text"] = case.hidden_text
    if case.extra:
        out["extra"] = dict(case.extra)
    return out


def case_from_dict(data: Mapping[str, Any], *, id_prefix: str = "") -> Case:
    """Build a case from its JSONL form. Raises ValueError naming a missing or bad field."""
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    for key in ("id", "problem"):
        if key not in data or data[key] in (None, ""):
            raise ValueError(f"missing required field {key!r}")
    if isinstance(data["id"], bool) or not isinstance(data["id"], str | int):
        raise ValueError(f"field 'id' must be a string or an integer, not {data['id']!r:.40}")
    for key in ("problem", "resolution", "title", "hidden_text", "url", "channel", "source"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            raise ValueError(f"field {key!r} must be a string, not "
                             f"{type(data[key]).__name__} (case {data['id']})")
    if "resolved" in data and data["resolved"] is not None \
            and not isinstance(data["resolved"], bool):
        raise ValueError(f"field 'resolved' must be true or false, not {data['resolved']!r:.40} "
                         f"(case {data['id']})")
    resolution = str(data.get("resolution") or "")
    visibility = data.get("visibility") or {}
    if isinstance(visibility, str):
        visibility = {"private": visibility == "private"}
    if not isinstance(visibility, Mapping):
        raise ValueError(f"field 'visibility' must be an object (case {data['id']})")
    raw_messages = data.get("messages") or ()
    if not isinstance(raw_messages, list | tuple) or not all(
            isinstance(m, Mapping) and isinstance(m.get("text", ""), str) for m in raw_messages):
        raise ValueError(f"field 'messages' must be a list of objects with a string 'text' "
                         f"(case {data['id']})")
    messages = tuple(
        Message(
            text=str(m.get("text", "")),
            author=str(m.get("author", "")),
            author_id=str(m.get("author_id", "")),
            created_at=parse_datetime(m.get("created_at")),
            public=bool(m.get("public", True)),
            is_bot=bool(m.get("is_bot", False)),
            reactions=tuple(m.get("reactions", ())),
            ts=str(m.get("ts", "")),
        )
        for m in raw_messages
    )
    return Case(
        id=f"{id_prefix}{data['id']}",
        source=str(data.get("source") or "jsonl"),
        title=str(data.get("title") or ""),
        problem=data["problem"],
        resolution=resolution,
        resolved=data["resolved"] if isinstance(data.get("resolved"), bool) else bool(resolution),
        url=str(data.get("url") or ""),
        created_at=parse_datetime(data.get("created_at")),
        resolved_at=parse_datetime(data.get("resolved_at")),
        channel=str(data.get("channel") or data.get("group") or ""),
        visibility=Visibility(
            private=bool(visibility.get("private", False)),
            members=tuple(str(m) for m in visibility.get("members", ())),
        ),
        tags=tuple(str(t) for t in data.get("tags") or ()),
        messages=messages,
        hidden_text=str(data.get("hidden_text") or ""),
        extra=dict(data.get("extra") or {}),
    )


def case_to_json(case: Case) -> str:
    return json.dumps(case_to_dict(case), ensure_ascii=False)
