"""The responder's state in PostgreSQL, for several responder processes on several hosts.

`[slack] state_url = "postgresql://..."` selects it (`open_state` in `casematch.slack.state`);
SQLite at the index root stays the default. The tables and their meaning are those of
`slack.sqlite`; `INSERT ... ON CONFLICT DO NOTHING` on a primary key is the atomic claim, so
a Slack event delivered to two replicas (or retried to the other one) is handled once.

Keep the password out of the URL: libpq reads it from PGPASSWORD or ~/.pgpass, so the
config file holds no secret. psycopg 3 is an optional extra: `pip install "casematch[postgres]"`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from casematch.errors import ConfigError, MissingDependencyError
from casematch.slack.state import (
    DEFAULT_RETENTION_DAYS,
    EVENT_MEMORY_S,
    PRUNE_EVERY_S,
    Query,
    SlackState,
    edit_key,
    root_id,
    text_hash,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS casematch_events (
    event_id TEXT PRIMARY KEY,
    seen_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS casematch_pending (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    taken_at DOUBLE PRECISION,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS casematch_queries (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    ts TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    reply_ts TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
-- Added since the first release; a database made by it gains them on open.
ALTER TABLE casematch_queries ADD COLUMN IF NOT EXISTS edit_ts TEXT;
ALTER TABLE casematch_queries ADD COLUMN IF NOT EXISTS text_hash TEXT;
CREATE TABLE IF NOT EXISTS casematch_feedback (
    query_id TEXT NOT NULL,
    query_text TEXT NOT NULL,
    case_id TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('helpful', 'not_relevant')),
    "user" TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (query_id, case_id, "user")
);
"""
# Two replicas starting at once would race on CREATE TABLE IF NOT EXISTS (it is not atomic
# in PostgreSQL); a transaction-scoped advisory lock on this key orders them.
_SCHEMA_LOCK = 0x6361_7365_6D61  # "casema"


def redact(url: str) -> str:
    """`url` without a password, for messages and logs."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
    except ImportError:
        return "<state_url>"
    try:
        params = conninfo_to_dict(url)
    except Exception:  # psycopg raises ProgrammingError; the message may quote the URL
        return "<unparsable state_url>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


class PostgresState(SlackState):
    """`SlackState`'s public methods on a PostgreSQL database; safe from threads and hosts.

    A subclass so that the responder takes either store; every method that touches the
    database is overridden, and `_db` (the SQLite connection) refuses, so a method added to
    `SlackState` but not ported here fails loudly instead of writing to the wrong store.
    """

    def __init__(self, url: str, *, connect_timeout: float = 10.0,
                 retention_days: float = DEFAULT_RETENTION_DAYS) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise MissingDependencyError(
                f"[slack] state_url needs psycopg 3 ({exc}): pip install "
                "\"casematch[postgres]\"") from exc
        self._psycopg: Any = psycopg
        self.url = url
        self.retention_s = retention_days * 86400
        self._pruned_at = time.time()
        self.owner = uuid.uuid4().hex
        self._connect_timeout = connect_timeout
        # One connection per thread: a psycopg connection serialises its commands, and the
        # listener answers events on several threads.
        self._local = threading.local()
        with self._pg() as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            db.execute(SCHEMA)

    def __repr__(self) -> str:
        return f"PostgresState({redact(self.url)})"

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.url, autocommit=True,
                                         connect_timeout=max(1, int(self._connect_timeout)))
        except self._psycopg.Error as exc:
            raise ConfigError(
                f"[slack] state_url: cannot connect to PostgreSQL at {redact(self.url)}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}; check "
                "the URL, that the server runs, and PGPASSWORD or ~/.pgpass") from exc

    @contextmanager
    def _pg(self) -> Iterator[Any]:
        db = getattr(self._local, "db", None)
        if db is None or db.closed or db.broken:
            db = self._local.db = self._connect()
        try:
            yield db
        except self._psycopg.OperationalError:
            # A dropped connection (server restart, failover): the next call reconnects.
            db.close()
            self._local.db = None
            raise

    @contextmanager
    def _db(self) -> Iterator[Any]:
        raise NotImplementedError("this SlackState method is not ported to PostgreSQL "
                                  "(casematch/slack/state_postgres.py)")
        yield  # pragma: no cover

    @classmethod
    def at_index(cls, index_root: Any, *,
                 retention_days: float = DEFAULT_RETENTION_DAYS) -> SlackState:
        raise TypeError("PostgresState is opened from a URL: use open_state(state_url)")

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # ---- exactly once -----------------------------------------------------------------------
    # The SQL mirrors SlackState's, method for method; see there for what each rule is for.

    def claim_event(self, event_id: str, kind: str = "", body: str = "") -> bool:
        if not event_id:
            return True
        now = time.time()
        with self._pg() as db, db.transaction():
            inserted = db.execute(
                "INSERT INTO casematch_events (event_id, seen_at) VALUES (%s, %s) "
                "ON CONFLICT (event_id) DO NOTHING", (event_id, now)).rowcount == 1
            if inserted and kind:
                db.execute(
                    "INSERT INTO casematch_pending "
                    "(id, kind, body, created_at, taken_at, owner) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                    (event_id, kind, body, now, now, self.owner))
        if inserted and now - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = now
            self.prune(now)
        return bool(inserted)

    def prune(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._pg() as db, db.transaction():
            db.execute("DELETE FROM casematch_events WHERE seen_at < %s",
                       (now - EVENT_MEMORY_S,))
            db.execute("DELETE FROM casematch_pending WHERE created_at < %s",
                       (now - EVENT_MEMORY_S,))
            # Blanked rows leave dead tuples until autovacuum reclaims them: PostgreSQL
            # has no equivalent of SQLite's secure_delete to overwrite them at once.
            db.execute("UPDATE casematch_queries SET text = '' WHERE created_at < %s "
                       "AND text <> ''", (now - self.retention_s,))

    def erase_text(self, query_id: str) -> None:
        with self._pg() as db, db.transaction():
            db.execute("UPDATE casematch_queries SET text = '' WHERE id = %s", (query_id,))
            db.execute("UPDATE casematch_feedback SET query_text = '' WHERE query_id = %s",
                       (query_id,))

    def done(self, event_id: str) -> None:
        with self._pg() as db:
            db.execute("DELETE FROM casematch_pending WHERE id = %s", (event_id,))

    def pending_work(self, max_age_s: float,
                     grace_s: float = 0.0) -> list[tuple[str, str, str]]:
        now = time.time()
        cutoff = now - grace_s
        with self._pg() as db, db.transaction():
            db.execute("DELETE FROM casematch_pending WHERE created_at < %s",
                       (now - max_age_s,))
            # One statement takes the rows: a row another replica is taking at the same
            # moment is skipped (locked), not taken twice.
            rows = db.execute(
                "UPDATE casematch_pending SET taken_at = %s, owner = %s WHERE id IN ("
                "SELECT id FROM casematch_pending WHERE COALESCE(taken_at, created_at) <= %s "
                "FOR UPDATE SKIP LOCKED) RETURNING id, kind, body, created_at",
                (now, self.owner, cutoff)).fetchall()
        return [(str(i), str(k), str(b)) for i, k, b, _ in sorted(rows, key=lambda r: r[3])]

    def keep_pending(self) -> None:
        with self._pg() as db:
            db.execute("UPDATE casematch_pending SET taken_at = %s WHERE owner = %s",
                       (time.time(), self.owner))

    def claim_root(self, channel: str, ts: str, text: str, *, resuming: bool = False) -> bool:
        with self._pg() as db:
            if db.execute(
                "INSERT INTO casematch_queries (id, channel, ts, text, text_hash, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (root_id(channel, ts), channel, ts, text, text_hash(text), time.time()),
            ).rowcount == 1:
                return True
            if not resuming:
                return False
            row = db.execute("SELECT reply_ts FROM casematch_queries WHERE id = %s",
                             (root_id(channel, ts),)).fetchone()
        return row is not None and row[0] is None

    def add_query(self, query_id: str, channel: str, text: str, thread_ts: str = "") -> None:
        with self._pg() as db:
            db.execute(
                "INSERT INTO casematch_queries (id, channel, ts, text, text_hash, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "channel = EXCLUDED.channel, ts = EXCLUDED.ts, text = EXCLUDED.text, "
                "text_hash = EXCLUDED.text_hash",
                (query_id, channel, thread_ts, text, text_hash(text), time.time()))

    def set_reply(self, channel: str, ts: str, reply_ts: str | None) -> None:
        with self._pg() as db:
            db.execute("UPDATE casematch_queries SET reply_ts = %s WHERE id = %s",
                       (reply_ts, root_id(channel, ts)))

    def apply_edit(self, channel: str, ts: str, text: str, edited_ts: str) -> bool:
        key = edit_key(edited_ts)
        with self._pg() as db:
            return bool(db.execute(
                "UPDATE casematch_queries SET text = %s, text_hash = %s, edit_ts = %s "
                "WHERE id = %s AND (edit_ts IS NULL OR edit_ts < %s COLLATE \"C\")",
                (text, text_hash(text), key, root_id(channel, ts), key)).rowcount == 1)

    def latest_edit(self, channel: str, ts: str) -> str | None:
        with self._pg() as db:
            row = db.execute("SELECT edit_ts FROM casematch_queries WHERE id = %s",
                             (root_id(channel, ts),)).fetchone()
        return row[0] if row else None

    def query(self, query_id: str) -> Query | None:
        with self._pg() as db:
            row = db.execute(
                "SELECT id, channel, ts, text, reply_ts, text_hash FROM casematch_queries "
                "WHERE id = %s", (query_id,)).fetchone()
        return Query(*row) if row else None

    # ---- feedback -----------------------------------------------------------------------------

    def add_feedback(self, query_id: str, case_id: str, verdict: str, user: str) -> bool:
        found = self.query(query_id)
        if found is None:
            return False
        with self._pg() as db:
            db.execute(
                'INSERT INTO casematch_feedback (query_id, query_text, case_id, verdict, '
                '"user", at) VALUES (%s, %s, %s, %s, %s, %s) '
                'ON CONFLICT (query_id, case_id, "user") DO UPDATE SET '
                'query_text = EXCLUDED.query_text, verdict = EXCLUDED.verdict, at = EXCLUDED.at',
                (query_id, found.text, case_id, verdict, user, time.time()))
        return True

    def feedback_rows(self) -> list[tuple[str, str, str, str, str, float]]:
        with self._pg() as db:
            return [tuple(row) for row in db.execute(
                'SELECT query_id, query_text, case_id, verdict, "user", at '
                "FROM casematch_feedback ORDER BY at")]
