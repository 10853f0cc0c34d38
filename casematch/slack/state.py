"""The responder's own state: `slack.sqlite` at the index root, beside the generations.

It lives outside every generation on purpose: a reindex replaces generations, and the
record of which events were handled, which replies exist and what agents said about them
must survive that. WAL mode lets several replicas and threads read and write it at once;
an insert that does nothing on a primary-key conflict is the atomic claim that makes a
reply happen once.

The SQL is kept portable (`INSERT ... ON CONFLICT`, no SQLite-only statements outside
`_db`), and every access goes through `SlackState`'s methods, so another database can
take its place behind the same methods.

Work is at least once, replies exactly once: a claimed event is stored in `pending` with
its whole request (what is needed to redo it) until its work is done. A responder that
dies mid-work finds the row at its next start and redoes it (`pending_work`); a reply that
may already have been posted is looked for in the thread before posting again.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

STATE_FILE = "slack.sqlite"
# Slack retries an event for about an hour; a day of event ids is plenty.
EVENT_MEMORY_S = 24 * 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, seen_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    id TEXT PRIMARY KEY,          -- the event id (or a command's trigger id)
    kind TEXT NOT NULL,           -- message, reaction, mention, command, action
    body TEXT NOT NULL,           -- the request as JSON: deleted once the work is done
    created_at REAL NOT NULL,
    taken_at REAL,                -- when its owner last said it is still at it
    owner TEXT                    -- the SlackState (process) that took the work on
);
CREATE TABLE IF NOT EXISTS queries (
    id TEXT PRIMARY KEY,          -- "<channel>:<ts>" for a root, a random id otherwise
    channel TEXT NOT NULL,
    ts TEXT NOT NULL DEFAULT '',  -- the root, or the thread an ephemeral query was asked in
    text TEXT NOT NULL,
    reply_ts TEXT,                -- our reply; NULL while being decided, '' for none
    created_at REAL NOT NULL,
    edit_ts TEXT,                 -- the newest edit applied (edit_key), NULL before any
    text_hash TEXT                -- sha256 of text: outlives the text (unfurl edits)
);
CREATE TABLE IF NOT EXISTS feedback (
    query_id TEXT NOT NULL,
    query_text TEXT NOT NULL,
    case_id TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('helpful', 'not_relevant')),
    user TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (query_id, case_id, user)   -- a changed mind replaces the first vote
);
"""


@dataclass(frozen=True, slots=True)
class Query:
    id: str
    channel: str
    ts: str
    text: str
    reply_ts: str | None
    text_hash: str | None = None


def root_id(channel: str, ts: str) -> str:
    return f"{channel}:{ts}"


def edit_key(ts: str) -> str:
    """A Slack ts as a fixed-width string, so that any database orders edits correctly
    by comparing text ("999.5" < "1000.1" as numbers, not as strings)."""
    try:
        return f"{Decimal(ts):024.6f}"
    except (InvalidOperation, ValueError):
        return "0" * 24


# Columns added since the first release: (table, column, type). Added on open.
_ADDED_COLUMNS = (("queries", "edit_ts", "TEXT"), ("queries", "text_hash", "TEXT"),
                  ("pending", "taken_at", "REAL"), ("pending", "owner", "TEXT"))
PRUNE_EVERY_S = 3600.0
# Query text is kept this long for feedback votes, then blanked (`prune`).
DEFAULT_RETENTION_DAYS = 30.0


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SlackState:
    """Short transactions on `slack.sqlite`; safe from many threads and processes."""

    def __init__(self, path: Path, *, retention_days: float = DEFAULT_RETENTION_DAYS) -> None:
        self.path = path
        self.retention_s = retention_days * 86400
        self._pruned_at = time.time()
        self.owner = uuid.uuid4().hex  # this process's name on the pending work it holds
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            for table, column, kind in _ADDED_COLUMNS:
                have = {d[0] for d in db.execute(f"SELECT * FROM {table} LIMIT 0").description}
                if column not in have:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        # A connection per operation: cheap next to a Slack round trip, and no sharing of
        # one connection across the listener threads.
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            # WAL with synchronous=NORMAL: a commit survives the process being killed
            # (what pending work must survive), without an fsync per commit, which on a
            # busy disk capped the whole responder at a few events a second.
            db.execute("PRAGMA synchronous=NORMAL")
            # Erased text is overwritten with zeros in the file, not just unlinked.
            db.execute("PRAGMA secure_delete=ON")
            yield db
        finally:
            db.close()

    def _scrub(self, db: sqlite3.Connection) -> None:
        """Push erased text out of the write-ahead log too (SQLite-specific: the WAL keeps
        old page images until a checkpoint)."""
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @classmethod
    def at_index(cls, index_root: Path, *,
                 retention_days: float = DEFAULT_RETENTION_DAYS) -> SlackState:
        return cls(Path(index_root) / STATE_FILE, retention_days=retention_days)

    # ---- exactly once -----------------------------------------------------------------------

    def claim_event(self, event_id: str, kind: str = "", body: str = "") -> bool:
        """True for the first delivery of `event_id` anywhere; False for a retry or a twin.

        With `kind` and `body`, the claim also records the work as pending, in the same
        transaction: a claimed event is never without a way to redo it.
        """
        if not event_id:
            return True
        now = time.time()
        with self._db() as db:
            db.execute("BEGIN")
            inserted = db.execute(
                "INSERT INTO events (event_id, seen_at) VALUES (?, ?) "
                "ON CONFLICT (event_id) DO NOTHING", (event_id, now)).rowcount == 1
            if inserted and kind:
                db.execute("INSERT INTO pending (id, kind, body, created_at, taken_at, owner) "
                           "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                           (event_id, kind, body, now, now, self.owner))
            db.execute("COMMIT")
        if inserted and now - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = now
            self.prune(now)
        return inserted

    def prune(self, now: float | None = None) -> None:
        """Forget old event ids and blank query text older than the retention period.
        What stays of an old query is what dedup and edits need: ids, ts and a hash."""
        now = time.time() if now is None else now
        with self._db() as db:
            db.execute("DELETE FROM events WHERE seen_at < ?", (now - EVENT_MEMORY_S,))
            db.execute("DELETE FROM pending WHERE created_at < ?", (now - EVENT_MEMORY_S,))
            blanked = db.execute("UPDATE queries SET text = '' WHERE created_at < ? "
                                 "AND text <> ''", (now - self.retention_s,)).rowcount
            if blanked:
                self._scrub(db)

    def erase_text(self, query_id: str) -> None:
        """The message was deleted: its text goes from the queries and the feedback."""
        with self._db() as db:
            db.execute("UPDATE queries SET text = '' WHERE id = ?", (query_id,))
            db.execute("UPDATE feedback SET query_text = '' WHERE query_id = ?", (query_id,))
            self._scrub(db)

    def done(self, event_id: str) -> None:
        """The work of `event_id` is finished (or given up): forget its request."""
        with self._db() as db:
            db.execute("DELETE FROM pending WHERE id = ?", (event_id,))

    def pending_work(self, max_age_s: float,
                     grace_s: float = 0.0) -> list[tuple[str, str, str]]:
        """(id, kind, body) of unfinished work younger than `max_age_s`, oldest first,
        taken on by this process. Older work is dropped: an answer that late would be noise.

        With `grace_s`, only work whose owner has not said for `grace_s` seconds that it is
        still at it (`keep_pending`): a replica sharing the store takes over the work of
        one that died, not of one still at it. Each row is taken by one caller (a
        conditional update), so two replicas looking at once do not both redo it.
        """
        now = time.time()
        cutoff = now - grace_s
        with self._db() as db:
            db.execute("DELETE FROM pending WHERE created_at < ?", (now - max_age_s,))
            rows = list(db.execute(
                "SELECT id, kind, body FROM pending "
                "WHERE COALESCE(taken_at, created_at) <= ? ORDER BY created_at", (cutoff,)))
            return [(str(i), str(k), str(b)) for i, k, b in rows if db.execute(
                "UPDATE pending SET taken_at = ?, owner = ? WHERE id = ? "
                "AND COALESCE(taken_at, created_at) <= ?",
                (now, self.owner, i, cutoff)).rowcount == 1]

    def keep_pending(self) -> None:
        """Say that this process is still at the work it holds (queued or running), so
        that no replica takes it over; called more often than the takeover grace."""
        with self._db() as db:
            db.execute("UPDATE pending SET taken_at = ? WHERE owner = ?",
                       (time.time(), self.owner))

    def claim_root(self, channel: str, ts: str, text: str, *, resuming: bool = False) -> bool:
        """True if this process is the one to answer the root message (channel, ts).

        `resuming` (redoing pending work after a restart) also takes a root whose first
        answer was never decided: the process that claimed it died before replying.
        """
        with self._db() as db:
            if db.execute(
                "INSERT INTO queries (id, channel, ts, text, text_hash, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (root_id(channel, ts), channel, ts, text, text_hash(text), time.time()),
            ).rowcount == 1:
                return True
            if not resuming:
                return False
            row = db.execute("SELECT reply_ts FROM queries WHERE id = ?",
                             (root_id(channel, ts),)).fetchone()
            return row is not None and row[0] is None

    def add_query(self, query_id: str, channel: str, text: str, thread_ts: str = "") -> None:
        """A query asked ephemerally; `thread_ts` when asked inside a thread."""
        with self._db() as db:
            db.execute("INSERT INTO queries (id, channel, ts, text, text_hash, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                       "channel = excluded.channel, ts = excluded.ts, text = excluded.text, "
                       "text_hash = excluded.text_hash",
                       (query_id, channel, thread_ts, text, text_hash(text), time.time()))

    def set_reply(self, channel: str, ts: str, reply_ts: str | None) -> None:
        with self._db() as db:
            db.execute("UPDATE queries SET reply_ts = ? WHERE id = ?",
                       (reply_ts, root_id(channel, ts)))

    def apply_edit(self, channel: str, ts: str, text: str, edited_ts: str) -> bool:
        """Record an edit of root (channel, ts) if it is newer than the last one applied.

        False for an edit older than (or the same as) one already applied: edits can arrive
        out of order, and the reply must end up showing the newest text's matches.
        """
        key = edit_key(edited_ts)
        with self._db() as db:
            return db.execute(
                "UPDATE queries SET text = ?, text_hash = ?, edit_ts = ? "
                "WHERE id = ? AND (edit_ts IS NULL OR edit_ts < ?)",
                (text, text_hash(text), key, root_id(channel, ts), key)).rowcount == 1

    def latest_edit(self, channel: str, ts: str) -> str | None:
        with self._db() as db:
            row = db.execute("SELECT edit_ts FROM queries WHERE id = ?",
                             (root_id(channel, ts),)).fetchone()
        return row[0] if row else None

    def settled(self, query_id: str, timeout: float = 5.0) -> Query | None:
        """The query once its first answer is decided (reply posted or silence chosen).

        An edit or delete can arrive while the first reply is still in flight; waiting a
        little (bounded) lets it act on that reply instead of missing it.
        """
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            found = self.query(query_id)
            if found is None or found.reply_ts is not None or time.monotonic() > deadline:
                return found
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def query(self, query_id: str) -> Query | None:
        with self._db() as db:
            row = db.execute("SELECT id, channel, ts, text, reply_ts, text_hash FROM queries "
                             "WHERE id = ?",
                             (query_id,)).fetchone()
        return Query(*row) if row else None

    # ---- feedback -----------------------------------------------------------------------------

    def add_feedback(self, query_id: str, case_id: str, verdict: str, user: str) -> bool:
        """Store a vote; False when the query is unknown (e.g. state from another index)."""
        found = self.query(query_id)
        if found is None:
            return False
        with self._db() as db:
            db.execute("INSERT INTO feedback (query_id, query_text, case_id, verdict, user, at) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (query_id, case_id, user) "
                       "DO UPDATE SET verdict = excluded.verdict, at = excluded.at, "
                       "query_text = excluded.query_text",
                       (query_id, found.text, case_id, verdict, user, time.time()))
        return True

    def feedback_rows(self) -> list[tuple[str, str, str, str, str, float]]:
        with self._db() as db:
            return list(db.execute(
                "SELECT query_id, query_text, case_id, verdict, user, at FROM feedback "
                "ORDER BY at"))


def open_state(where: str | Path, *,
               retention_days: float = DEFAULT_RETENTION_DAYS) -> SlackState:
    """The responder's state store: PostgreSQL for a `postgresql://` URL (`[slack]
    state_url`, shared by several responder processes), else `slack.sqlite` in the index
    folder `where`."""
    text = str(where)
    if text.startswith(("postgresql://", "postgres://")):
        from casematch.slack.state_postgres import PostgresState

        return PostgresState(text, retention_days=retention_days)
    return SlackState.at_index(Path(where), retention_days=retention_days)
