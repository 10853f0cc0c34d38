"""Zendesk tickets -> cases, from API pages, incremental export pages or NDJSON exports.

Accepted shapes (detected by content, not by file name):

- an API page ``{"tickets": [...], "next_page": ...}``, optionally with side-loaded
  ``users``, ``groups`` and ``comments`` (each comment carrying ``ticket_id``);
- an incremental export page ``{"tickets": [...], "after_cursor": ..., "end_of_stream": ...}``;
- NDJSON, one ticket per line, each with its ``comments`` (the full JSON export);
- a single ticket ``{"ticket": {...}}``, a bare ticket object, or a JSON list of tickets;
- a folder of any of these. Beside the ticket files, ``users.json``, ``groups.json``,
  ``<stem>.comments.json`` and ``comments/<ticket_id>.json`` (the response of
  ``GET /api/v2/tickets/{id}/comments.json``) add users, group names and comments.

Every file is read before the first case is built: incremental pages repeat a ticket each
time it changes (the newest ``updated_at`` wins) and side-loaded data may sit in any file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from casematch.cases import PUBLIC, Case, Message, parse_datetime
from casematch.errors import InputError
from casematch.resolution import ticket_fix
from casematch.sources import InputMemo, ReadOptions, ReadReport, Unchanged
from casematch.text import html_to_text, strip_email_noise
from casematch.version import __version__

RESOLVED_STATUSES = frozenset({"solved", "closed"})
AGENT_ROLES = frozenset({"agent", "admin"})
FALLBACK_SUBDOMAIN = "zendesk"
_SUFFIXES = (".json", ".ndjson", ".jsonl")
_SIDE_NAMES = frozenset({"users.json", "groups.json"})
# Keys only a ticket has; a comments-only or users-only document has none of them.
_TICKET_KEYS = frozenset({"subject", "raw_subject", "description", "status", "requester_id"})
_EXPECTED = 'not a Zendesk ticket file: expected {"tickets": [...]} or one ticket per line'

Json = dict[str, Any]
_EPOCH = datetime.min.replace(tzinfo=UTC)
# NDJSON lines (bytes of JSON) whose parsed tickets are kept from the first reading, so
# that they are not parsed again; tickets past it are read again when their case is built.
# A fixed amount, so memory stays flat however large the export is.
PARSED_BUDGET = 16 * 1024 * 1024
# Part of every ticket's input fingerprint (with the casematch version): change it whenever
# the way a ticket becomes a case changes, so that a re-run builds every ticket again.
CASE_RULES = "zendesk-case-1"


def read_zendesk(path: Path, *, options: ReadOptions, report: ReadReport,
                 memo: InputMemo | None = None) -> Iterator[Case | Unchanged]:
    """Yield one case per ticket (resolved or not); bad tickets and lines go to `report`.

    With `memo`, a ticket of an NDJSON file whose input is unchanged since the index stored
    it (its line's bytes, the side files, the read options, `CASE_RULES`) is yielded as the
    memo's `Unchanged` instead of being built again.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or directory")
    if path.is_dir():
        ticket_files, side_files = _folder_files(path)
        if not ticket_files:
            raise InputError(path, "no Zendesk ticket files (*.json, *.ndjson, *.jsonl) here")
    else:
        ticket_files, side_files = [path], _sibling_files(path)
    collected = _Collected(memo=memo)
    try:
        for file in side_files:
            collected.read_file(file, report, alone=False, side=True)
        for number, file in enumerate(ticket_files):
            collected.read_file(file, report, alone=len(ticket_files) == 1, side=False,
                                number=number)
        yield from collected.cases(options, report)
    finally:
        collected.tickets.close()


def _folder_files(folder: Path) -> tuple[list[Path], list[Path]]:
    tickets: list[Path] = []
    side: list[Path] = []
    for file in sorted(folder.iterdir()):
        if file.is_file() and file.suffix in _SUFFIXES:
            is_side = file.name in _SIDE_NAMES or file.name.endswith(".comments.json")
            (side if is_side else tickets).append(file)
    if (folder / "comments").is_dir():
        side += sorted((folder / "comments").glob("*.json"))
    return tickets, side


def _sibling_files(file: Path) -> list[Path]:
    names = [*sorted(_SIDE_NAMES), f"{file.stem}.comments.json"]
    side = [file.parent / name for name in names if name != file.name]
    side = [f for f in side if f.is_file()]
    if (file.parent / "comments").is_dir():
        side += sorted((file.parent / "comments").glob("*.json"))
    return side


def _comments_owner(file: Path) -> str | None:
    """A comments file's ticket id from its name: comments/123.json, 123.comments.json."""
    stem = file.name.removesuffix(".json").removesuffix(".comments")
    return stem if stem.isdigit() else None


@dataclass
class _Collected:
    """Everything read from the files, before any case is built."""

    # "<subdomain>:<ticket id>" -> where its latest copy is, in order of first sight.
    tickets: _Tickets = field(default_factory=lambda: _Tickets())
    users: dict[str, Json] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    # ticket id -> comment id -> comment, so the same comment from two files counts once.
    comments: dict[str, dict[str, Json]] = field(default_factory=dict)
    # NDJSON ticket files are not held in memory: a ticket there is kept as its place in
    # the file and read again, alone, when its case is built. (file number, line) while
    # reading one.
    streamed: dict[int, Path] = field(default_factory=dict)
    _position: tuple[int, int] | None = None
    _ordinal: int = 0
    # The second reading: (file, line, ordinal) -> (key, input fingerprint) of the tickets
    # to pick up from the line being read.
    _replay: dict[tuple[int, int, int], tuple[str, str]] | None = None
    _found: list[tuple[str, Json]] = field(default_factory=list)
    _found_at: list[tuple[int, int, int]] = field(default_factory=list)
    # (file, line, ordinal) -> (ticket, its line's length): parsed tickets kept within
    # PARSED_BUDGET; `_line_size` is the length of the line being read.
    _parsed: dict[tuple[int, int, int], tuple[Json, int]] = field(default_factory=dict)
    _parsed_bytes: int = 0
    _line_size: int = 0
    # Input fingerprints (read_zendesk's `memo`): a digest of every side file's bytes, the
    # digest of the line being read, and whether side data came from anywhere else (a
    # ticket file's side-loaded users), which turns fingerprints off for the read.
    memo: InputMemo | None = None
    _side_digest: Any = field(default_factory=lambda: hashlib.blake2b(digest_size=16))
    _line_digest: bytes = b""
    _reading_side: bool = False
    _side_untracked: bool = False

    def read_file(self, file: Path, report: ReadReport, *, alone: bool, side: bool,
                  number: int = -1) -> None:
        stream = not side and number >= 0 and file.suffix in (".ndjson", ".jsonl")
        if stream:
            self.streamed[number] = file
        self._reading_side = side
        try:
            values = self._values(file, report, self._side_digest if side else None,
                                  digests=self.memo is not None)
            kinds: set[str] = set()
            count = 0
            whole = False
            # NDJSON is consumed line by line: only the tickets kept stay in memory.
            for line, value in values:
                count += 1
                self._line_size = getattr(values, "size", 0)
                self._line_digest = getattr(values, "digest", b"")
                whole = whole or not line
                where = f"{file}:{line}" if line else str(file)
                self._position, self._ordinal = ((number, line) if stream else None), 0
                kind = self._add_document(value, where, _comments_owner(file), report)
                kinds.add(kind)
                if kind == "unknown" and line and not side:
                    report.problem(where, "not a ticket object; line skipped")
        except UnicodeDecodeError as exc:
            problem = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
            if alone:
                raise InputError(file, problem) from exc
            report.problem(file, problem + "; file skipped")
            return
        except OSError as exc:
            if alone:
                raise InputError(file, f"cannot read: {exc.strerror or exc}") from exc
            report.problem(file, f"cannot read: {exc.strerror or exc}")
            return
        except _Unparsable:
            return
        finally:
            self._position = None
        # A file that holds no ticket at all is the wrong input, not a damaged one; in a
        # folder, a users-only or comments-only file under another name is fine.
        if "tickets" in kinds:
            return
        if alone and not side:
            raise InputError(file, _EXPECTED if count else "empty file")
        if "unknown" in kinds and whole:
            expected = "expected users, groups or comments" if side else _EXPECTED
            report.problem(file, f"{expected}; file skipped")

    @staticmethod
    def _values(file: Path, report: ReadReport, side_digest: Any,
                *, digests: bool) -> Iterator[tuple[int, Any]]:
        if file.suffix in (".ndjson", ".jsonl") and side_digest is None:
            return _stream_ndjson(file, report, digests=digests)
        data = file.read_bytes()
        if side_digest is not None:
            side_digest.update(f"{file.name}\0{len(data)}\0".encode())
            side_digest.update(data)
        values = _parse_json_or_ndjson(data.decode("utf-8-sig"), file, report)
        if values is None:
            raise _Unparsable
        return iter(values)

    def _add_document(self, doc: Any, where: str, owner: str | None, report: ReadReport) -> str:
        kind = _document_kind(doc)
        if kind == "unknown":
            return kind
        if isinstance(doc, list):
            for index, ticket in enumerate(doc):
                self._add_ticket(ticket, f"{where} [{index}]", report)
            return kind
        self._add_side_data(doc, where, owner, report)
        if isinstance(doc.get("tickets"), list):
            for index, ticket in enumerate(doc["tickets"]):
                self._add_ticket(ticket, f"{where} tickets[{index}]", report)
        elif isinstance(doc.get("ticket"), dict):
            self._add_ticket(doc["ticket"], where, report)
        elif kind == "tickets":
            self._add_ticket(doc, where, report)
        return kind

    def _add_ticket(self, ticket: Any, where: str, report: ReadReport) -> None:
        spot = None
        if self._position is not None:
            spot = (*self._position, self._ordinal)
            self._ordinal += 1
        if not isinstance(ticket, dict):
            report.problem(where, "ticket is not a JSON object; skipped")
            report.skip("invalid ticket")
            return
        if ticket.get("id") in (None, ""):
            report.problem(where, "ticket has no id; skipped")
            report.skip("no ticket id")
            return
        if isinstance(ticket["id"], bool) or not isinstance(ticket["id"], str | int):
            report.problem(where, f"ticket id {str(ticket['id'])[:40]!r} is not a string or an "
                                  "integer; ticket skipped, fix its id")
            report.skip("invalid ticket id")
            return
        wrong = [k for k in ("subject", "raw_subject", "description", "status")
                 if ticket.get(k) is not None and not isinstance(ticket[k], str)]
        if wrong:
            report.problem(where, f"ticket {ticket['id']}: {wrong[0]!r} is a "
                                  f"{type(ticket[wrong[0]]).__name__}, not a string; ticket "
                                  "skipped, fix the field")
            report.skip("invalid ticket")
            return
        key = f"{_subdomain(ticket.get('url'))}:{ticket['id']}"
        if self._replay is not None:
            if spot is not None and self._replay.get(spot, ("", ""))[0] == key:
                self._found.append((key, ticket))
                self._found_at.append(spot)
            return
        # Incremental exports repeat a ticket on every change: `_Tickets` keeps the newest.
        updated = _date(ticket.get("updated_at"))
        if spot is None:
            self.tickets.add_held(key, updated, ticket)
        else:
            self.tickets.add_streamed(key, updated, spot, self._line_digest)
            if self._parsed_bytes + self._line_size <= PARSED_BUDGET:
                self._parsed[spot] = (ticket, self._line_size)
                self._parsed_bytes += self._line_size
        if self.tickets.full():
            for lost in self.tickets.flush():
                self._drop_parsed(lost)

    def _drop_parsed(self, spot: tuple[int, int, int]) -> None:
        dropped = self._parsed.pop(spot, None)
        self._parsed_bytes -= dropped[1] if dropped else 0

    def _add_side_data(self, doc: Json, where: str, owner: str | None, report: ReadReport) -> None:
        if not self._reading_side and self._has_side_data(doc):
            self._side_untracked = True
        for user in _objects(doc.get("users")):
            self.users[str(user.get("id"))] = user
        for group in _objects(doc.get("groups")):
            self.groups[str(group.get("id"))] = str(group.get("name") or "")
        comments = doc.get("comments")
        if isinstance(comments, list) and not (_TICKET_KEYS & doc.keys()):
            by_ticket: dict[str, list[Any]] = {}
            for comment in _objects(comments):
                ticket_id = comment.get("ticket_id") or owner
                if ticket_id is None:
                    report.problem(where, "comment without ticket_id; name the file "
                                          "comments/<ticket_id>.json")
                    report.skip("comment without ticket")
                    continue
                by_ticket.setdefault(str(ticket_id), []).append(comment)
            for ticket_id, found in by_ticket.items():
                self._add_comments(ticket_id, found)
        elif comments is None and _is_comments_by_ticket(doc):
            # {"123": [...]} or {"123": {"comments": [...]}}: one entry per ticket.
            for ticket_id, value in doc.items():
                items = value.get("comments") if isinstance(value, dict) else value
                self._add_comments(ticket_id, _objects(items))

    @staticmethod
    def _has_side_data(doc: Json) -> bool:
        if _objects(doc.get("users")) or _objects(doc.get("groups")):
            return True
        comments = doc.get("comments")
        if isinstance(comments, list) and not (_TICKET_KEYS & doc.keys()):
            return bool(_objects(comments))
        return comments is None and _is_comments_by_ticket(doc)

    def _fingerprints(self, options: ReadOptions) -> Any:
        """A hash seeded with everything but the line that shapes a ticket's case, or None
        when fingerprints are off for this read."""
        if self.memo is None or self._side_untracked:
            return None
        seed = hashlib.blake2b(digest_size=16)
        seed.update(f"{CASE_RULES}\0{__version__}\0{options!r}\0".encode())
        seed.update(self._side_digest.digest())
        return seed

    def _add_comments(self, ticket_id: str, comments: list[Any]) -> None:
        _merge_comments(self.comments.setdefault(ticket_id, {}), comments)

    def cases(self, options: ReadOptions, report: ReadReport) -> Iterator[Case | Unchanged]:
        for lost in self.tickets.flush():
            self._drop_parsed(lost)
        seed = self._fingerprints(options)
        for key, spot, digest, ticket in self.tickets.newest():
            if spot is None:
                if ticket is not None:
                    yield from self._case(key, ticket, options, report)
                continue
            fingerprint = ""
            if seed is not None and self.memo is not None and digest:
                # Unchanged input: neither parsed again nor built.
                print_ = seed.copy()
                print_.update(digest + spot[2].to_bytes(4, "little"))
                fingerprint = print_.hexdigest()
                unchanged = self.memo.recall(f"zendesk:{key}", fingerprint)
                if unchanged is not None:
                    self._drop_parsed(spot)
                    yield unchanged
                    continue
            parsed = self._parsed.pop(spot, None)
            if parsed is None:
                self.tickets.defer(spot, key, fingerprint)
            else:
                yield from self._case(key, parsed[0], options, report, fingerprint)
        self._parsed_bytes = 0
        # The newest copy of each streamed ticket not kept parsed, read again: only the
        # lines that hold one are parsed, in file order.
        try:
            for number, file in self.streamed.items():
                for line, value in _stream_ndjson(file, ReadReport(),
                                                  self._deferred_lines(number)):
                    self._position, self._ordinal = (number, line), 0
                    self._add_document(value, "", _comments_owner(file), ReadReport())
                    found, self._found = self._found, []
                    found_at, self._found_at = self._found_at, []
                    replay = self._replay or {}
                    for (key, ticket), spot in zip(found, found_at, strict=True):
                        yield from self._case(key, ticket, options, report, replay[spot][1])
        finally:
            self._replay, self._position = None, None

    def _deferred_lines(self, number: int) -> Iterator[int]:
        """The lines of streamed file `number` to read again, in order; while one is read,
        `_replay` holds the tickets to pick up from it."""
        for line, picks in self.tickets.deferred(number):
            self._replay = {(number, line, ordinal): pick for ordinal, pick in picks.items()}
            yield line
        self._replay = {}

    def _case(self, key: str, ticket: Json, options: ReadOptions,
              report: ReadReport, fingerprint: str = "") -> Iterator[Case]:
        if ticket.get("status") == "deleted":
            report.skip("deleted")
            return
        # Side-loaded comments plus those embedded in the (newest) ticket object.
        merged = dict(self.comments.get(str(ticket["id"]), {}))
        _merge_comments(merged, ticket.get("comments"))
        comments = list(merged.values())
        try:
            case = _ticket_case(key, ticket, comments, self, options)
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            # One ticket with a field of an unexpected shape: skip it, read the rest.
            report.problem(f"ticket {key}", f"unusable ticket ({type(exc).__name__}: "
                                            f"{str(exc)[:80]}); skipped, fix the ticket")
            report.skip("invalid ticket")
            return
        if case is None:
            report.skip("no description")
            return
        if fingerprint and self.memo is not None:
            self.memo.note(case.id, fingerprint)
        yield case


class _Unparsable(Exception):
    """A whole-document file that is not JSON (already reported)."""


class _Lines:
    """(line number, value) of each JSON line of an NDJSON file, read as it goes; bad lines
    are reported. `size` is the length of the line last yielded; with `wanted` (ascending,
    asked for the next one only once the line before it has been handled), only those line
    numbers are parsed."""

    def __init__(self, file: Path, report: ReadReport, wanted: Iterator[int] | None = None,
                 *, digests: bool = False) -> None:
        self.size = 0
        # A digest of the line last yielded (with `digests`): the raw bytes shaping its case.
        self.digest = b""
        self._digests = digests
        self._values = self._read(file, report, wanted)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        return self._values

    def __next__(self) -> tuple[int, Any]:
        return next(self._values)

    def _read(self, file: Path, report: ReadReport,
              wanted: Iterator[int] | None) -> Iterator[tuple[int, Any]]:
        upcoming = 0
        with file.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if wanted is not None:
                    if upcoming < number:
                        upcoming = next(wanted, 0)
                        if not upcoming:
                            return
                    if number < upcoming:
                        continue
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    report.problem(f"{file}:{number}", f"not UTF-8 text ({exc.reason} at "
                                                       f"byte {exc.start}); line skipped")
                    report.skip("invalid line")
                    continue
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    report.problem(f"{file}:{number}",
                                   f"invalid JSON ({exc.msg}, column {exc.colno}); line skipped")
                    report.skip("invalid line")
                    continue
                except RecursionError:
                    report.problem(f"{file}:{number}", "invalid JSON: nested too deeply; line "
                                                       "skipped")
                    report.skip("invalid line")
                    continue
                self.size = len(raw)
                if self._digests:
                    self.digest = hashlib.blake2b(raw, digest_size=16).digest()
                yield number, value


def _stream_ndjson(file: Path, report: ReadReport, wanted: Iterator[int] | None = None,
                   *, digests: bool = False) -> _Lines:
    return _Lines(file, report, wanted, digests=digests)


def _parse_json_or_ndjson(
    text: str, file: Path, report: ReadReport
) -> list[tuple[int, Any]] | None:
    """[(line, value)]: line 0 for a whole JSON document, else the NDJSON line number."""
    if file.suffix not in (".ndjson", ".jsonl"):
        try:
            return [(0, json.loads(text))] if text.strip() else []
        except RecursionError:
            report.problem(file, "invalid JSON: nested too deeply to be a Zendesk export; "
                                 "file skipped")
            return None
        except json.JSONDecodeError as whole:
            if not _looks_like_ndjson(text):
                report.problem(f"{file}:{whole.lineno}",
                               f"invalid JSON ({whole.msg}, column {whole.colno}); file skipped")
                return None
    values: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            report.problem(f"{file}:{number}",
                           f"invalid JSON ({exc.msg}, column {exc.colno}); line skipped")
            report.skip("invalid line")
        except RecursionError:
            report.problem(f"{file}:{number}", "invalid JSON: nested too deeply; line skipped")
            report.skip("invalid line")
    return values


def _merge_comments(known: dict[str, Json], comments: Any) -> None:
    for comment in _objects(comments):
        known[str(comment.get("id") or f"#{len(known)}")] = comment


def _looks_like_ndjson(text: str) -> bool:
    # Pretty-printed JSON has at most a stray line that parses on its own (a last, compact
    # list item); NDJSON starts with one, or has many even when its first line is damaged.
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and _parses_as_object(lines[0]):
        return True
    return sum(1 for line in lines[:50] if _parses_as_object(line)) >= 2


def _parses_as_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (json.JSONDecodeError, RecursionError):
        return False


def _document_kind(doc: Any) -> str:
    """'tickets' (holds tickets), 'side' (users/groups/comments only) or 'unknown'."""
    if isinstance(doc, list):
        return "tickets" if doc and all(isinstance(t, dict) and _TICKET_KEYS & t.keys()
                                        for t in doc) else "unknown"
    if not isinstance(doc, dict):
        return "unknown"
    if isinstance(doc.get("tickets"), list) or isinstance(doc.get("ticket"), dict):
        return "tickets"
    if _TICKET_KEYS & doc.keys():
        return "tickets"
    if any(isinstance(doc.get(k), list) for k in ("users", "groups", "comments")):
        return "side"
    return "side" if _is_comments_by_ticket(doc) else "unknown"


def _is_comments_by_ticket(doc: Json) -> bool:
    return bool(doc) and all(
        key.isdigit() and isinstance(value, list | dict) for key, value in doc.items()
    )


def _objects(value: Any) -> list[Json]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _mapping(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _subdomain(url: Any) -> str:
    """'https://acme.zendesk.com/api/v2/tickets/1.json' -> 'acme'; anything else -> fallback."""
    host = urlparse(url).hostname if isinstance(url, str) else None
    if host and host.endswith(".zendesk.com") and host.count(".") == 2:
        return host.split(".", 1)[0]
    return FALLBACK_SUBDOMAIN


def _date(value: Any) -> datetime | None:
    # Zendesk writes ISO 8601 ("2024-03-01T09:00:00Z"): parsed directly, without first
    # trying it as a number as parse_datetime must (no number has '-' as its fifth character
    # and also reads as an ISO date).
    if isinstance(value, str) and value[4:5] == "-":
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        return parse_datetime(value)
    except (ValueError, TypeError, OverflowError):
        return None


# Copies of tickets resolved against `_Tickets`' table at a time.
TICKET_BATCH = 2048
# Pages of that table kept in memory (KiB); beyond it SQLite spills them to its file.
_TICKETS_CACHE_KIB = 8192
_TICKETS_SCHEMA = """
PRAGMA journal_mode = OFF;
CREATE TABLE tickets (
    seq INTEGER PRIMARY KEY,    -- first sight: the order cases are built in
    key TEXT NOT NULL UNIQUE,
    updated_at REAL,            -- NULL: none that parses
    file INTEGER NOT NULL,      -- -1: a ticket held in memory, `line` its number there
    line INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    digest BLOB NOT NULL
);
CREATE TABLE deferred (
    file INTEGER NOT NULL,
    line INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (file, line, ordinal)
) WITHOUT ROWID;
"""
# (key, updated_at timestamp, file, line, ordinal, line digest) of one copy of a ticket.
_Copy = tuple[str, float | None, int, int, int, bytes]


class _Tickets:
    """Where the newest copy of each ticket is, by key, kept in a private temporary SQLite
    database rather than in memory: an incremental export repeats a ticket on every change,
    and a large export holds a few hundred thousand of them.

    A copy from a streamed NDJSON file is its place there (file, line, ordinal) and its
    line's digest; a ticket from a whole-JSON file, in memory anyway, stays in `held`.
    SQLite deletes the database when it is closed, and unlinks its file as soon as it
    creates it, so a killed run leaves nothing behind. Copies wait in a batch of up to
    `TICKET_BATCH` and are resolved together, in the order they were read.
    """

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None  # opened with the first flush
        self.held: dict[int, Json] = {}
        self._held_next = 0
        self._batch: list[_Copy] = []
        self._deferred: list[tuple[int, int, int, str, str]] = []

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect("")
            self._db.execute(f"PRAGMA cache_size = -{_TICKETS_CACHE_KIB}")
            self._db.executescript(_TICKETS_SCHEMA)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def add_streamed(self, key: str, updated_at: datetime | None, spot: tuple[int, int, int],
                     digest: bytes) -> None:
        """A copy of ticket `key` at `spot` (file, line, ordinal) of a streamed file."""
        self._batch.append((key, _timestamp(updated_at), *spot, digest))

    def add_held(self, key: str, updated_at: datetime | None, ticket: Json) -> None:
        """A copy of ticket `key` read from a whole-JSON file."""
        self.held[self._held_next] = ticket
        self._batch.append((key, _timestamp(updated_at), -1, self._held_next, 0, b""))
        self._held_next += 1

    def full(self) -> bool:
        return len(self._batch) >= TICKET_BATCH

    def flush(self) -> list[tuple[int, int, int]]:
        """Resolve the copies waiting; returns the places of streamed copies that lost."""
        if not self._batch:
            return []
        db = self._open()
        batch, self._batch = self._batch, []
        keys = json.dumps([copy[0] for copy in batch])
        known: dict[str, _Copy] = {
            row[0]: row for row in db.execute(
                "SELECT key, updated_at, file, line, ordinal, digest FROM tickets"
                " WHERE key IN (SELECT value FROM json_each(?))", (keys,))}
        winners: dict[str, _Copy] = {}
        lost: list[tuple[int, int, int]] = []
        for copy in batch:
            previous = known.get(copy[0])
            # On equal or missing timestamps the later copy wins, as it would in the API.
            if previous is not None and _is_older(copy[1], previous[1]):
                loser: _Copy | None = copy
            else:
                loser, known[copy[0]] = previous, copy
                winners[copy[0]] = copy
            if loser is None:
                continue
            if loser[2] < 0:
                self.held.pop(loser[3], None)
            else:
                lost.append((loser[2], loser[3], loser[4]))
        # An upsert keeps a known ticket's place in the order of first sight.
        db.executemany(
            "INSERT INTO tickets (key, updated_at, file, line, ordinal, digest)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
            " updated_at = excluded.updated_at, file = excluded.file, line = excluded.line,"
            " ordinal = excluded.ordinal, digest = excluded.digest", list(winners.values()))
        return lost

    def newest(self) -> Iterator[tuple[str, tuple[int, int, int] | None, bytes, Json | None]]:
        """(key, place in a streamed file, line digest, ticket held) of each ticket's
        newest copy, in the order tickets were first seen."""
        if self._db is None:
            return
        rows = self._db.execute("SELECT key, file, line, ordinal, digest FROM tickets"
                                " ORDER BY seq")
        for key, file, line, ordinal, digest in rows:
            if file < 0:
                yield key, None, b"", self.held.pop(line)
            else:
                yield key, (file, line, ordinal), digest, None

    def defer(self, spot: tuple[int, int, int], key: str, fingerprint: str) -> None:
        """Read the copy at `spot` again once every other case is built (`deferred`)."""
        self._deferred.append((*spot, key, fingerprint))
        if len(self._deferred) >= TICKET_BATCH:
            self._write_deferred()

    def _write_deferred(self) -> None:
        self._open().executemany("INSERT INTO deferred VALUES (?, ?, ?, ?, ?)", self._deferred)
        self._deferred = []

    def deferred(self, file: int) -> Iterator[tuple[int, dict[int, tuple[str, str]]]]:
        """(line, {ordinal: (key, fingerprint)}) of the copies deferred in streamed `file`,
        by line."""
        if self._deferred:
            self._write_deferred()
        if self._db is None:
            return
        rows = self._db.execute("SELECT line, ordinal, key, fingerprint FROM deferred"
                                " WHERE file = ? ORDER BY line, ordinal", (file,))
        for line, picks in itertools.groupby(rows, key=lambda row: int(row[0])):
            yield line, {int(ordinal): (key, fingerprint)
                         for _, ordinal, key, fingerprint in picks}


def _timestamp(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _is_older(new_at: float | None, old_at: float | None) -> bool:
    return new_at is not None and old_at is not None and new_at < old_at


def _str_id(value: Any) -> str:
    return "" if value is None else str(value)


def _ticket_case(
    key: str, ticket: Json, comments: list[Json], data: _Collected, options: ReadOptions
) -> Case | None:
    subdomain, ticket_id = key.rsplit(":", 1)
    requester = _str_id(ticket.get("requester_id"))
    # Each comment's date is parsed once: for the order and for its message.
    dated = [(_date(c.get("created_at")), c) for c in comments]
    if dated and all(when for when, _ in dated):
        dated.sort(key=lambda pair: pair[0] or _EPOCH)

    def is_agent(author_id: str) -> bool:
        role = data.users.get(author_id, {}).get("role")
        if role:
            return role in AGENT_ROLES
        # Roles unknown (no users side-loaded): whoever is not the requester answered.
        return bool(author_id) and author_id != requester

    messages: list[Message] = []
    for created_at, comment in dated:
        author_id = _str_id(comment.get("author_id"))
        via = _mapping(comment.get("via"))
        # Requesters write from mail clients (quotes, signatures); agents' web replies are
        # left alone so their code samples ('> ' prompts, '--' flags) survive.
        emailish = not is_agent(author_id) or via.get("channel") == "email"
        messages.append(Message(
            text=_comment_text(comment, email=emailish),
            author=str(data.users.get(author_id, {}).get("name") or ""),
            author_id=author_id,
            created_at=created_at,
            public=comment.get("public") is not False,
            ts=_str_id(comment.get("id")),
        ))
    public = [m for m in messages if m.public and m.text]
    if comments:
        # The description is the first comment's text, even when that comment is an
        # internal note, so with comments at hand it is never used on its own.
        problem = public[0].text if public else ""
    else:
        problem = _clean(str(ticket.get("description") or ""), email=True)
        if problem:
            messages.append(Message(problem, author_id=requester, ts="",
                                    author=str(data.users.get(requester, {}).get("name") or ""),
                                    created_at=_date(ticket.get("created_at"))))
    if not problem:
        return None

    status = ticket.get("status")
    resolved = status in RESOLVED_STATUSES
    # Only a solved ticket's last agent reply is "what fixed it"; an open ticket's is a
    # question in progress. Never the problem message itself, never an internal note, and
    # never a closing macro, survey or auto-reply: with no real answer the case is still
    # found by its problem, with no resolution to show.
    answers = [m for m in public[1:] if is_agent(m.author_id)]
    fix = ticket_fix(answers, options.rules) if resolved else None
    resolution = answers[fix].text if fix is not None else ""
    resolved_at = None
    if resolved:
        metrics = _mapping(ticket.get("metric_set"))
        resolved_at = _date(ticket.get("solved_at") or metrics.get("solved_at")
                            or ticket.get("updated_at"))
    hidden = ""
    if options.include_internal_notes:
        hidden = "\n\n".join(m.text for m in messages if not m.public and m.text)
    group_id = _str_id(ticket.get("group_id"))
    known = subdomain != FALLBACK_SUBDOMAIN
    return Case(
        id=f"zendesk:{key}",
        source="zendesk",
        title=str(ticket.get("subject") or ticket.get("raw_subject") or ""),
        problem=problem,
        resolution=resolution,
        resolved=resolved,
        url=f"https://{subdomain}.zendesk.com/agent/tickets/{ticket_id}" if known else "",
        created_at=_date(ticket.get("created_at")),
        resolved_at=resolved_at,
        channel=data.groups.get(group_id) or (f"group {group_id}" if group_id else ""),
        visibility=PUBLIC,
        tags=tuple(str(t) for t in ticket.get("tags") or ()),
        messages=tuple(messages),
        hidden_text=hidden,
        extra={k: ticket[k] for k in ("status", "priority", "type") if ticket.get(k) is not None},
    )


def _comment_text(comment: Json, *, email: bool) -> str:
    html = comment.get("html_body")
    if isinstance(html, str) and html.strip():
        return _clean(html_to_text(html), email=email)
    return _clean(str(comment.get("plain_body") or comment.get("body") or ""), email=email)


def _clean(text: str, *, email: bool) -> str:
    text = text.strip()
    if not email:
        return text
    # A message that is nothing but a quote or signature keeps its text rather than vanish.
    return strip_email_noise(text) or text


def ticket_to_case(
    subdomain: str,
    ticket: Json,
    comments: list[Json],
    *,
    options: ReadOptions,
    users: dict[str, Json] | None = None,
    groups: dict[str, str] | None = None,
) -> Case | None:
    """One ticket as the API returns it (plus its comments) -> a case, or None.

    The same rules as an export, so a ticket pulled live and the same ticket exported agree.
    """
    data = _Collected(users=dict(users or {}), groups=dict(groups or {}))
    return _ticket_case(f"{subdomain}:{ticket['id']}", ticket, list(comments), data, options)
