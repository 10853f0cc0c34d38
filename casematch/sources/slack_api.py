"""Slack Web API -> cases, incrementally, through `slack_sdk.WebClient`.

A run reads `conversations.history` of each configured channel from `latest - lookback`
(the whole history on the first run) and re-fetches a thread with `conversations.replies`
only when its root changed since the last run: new, a newer `latest_reply`, another
`reply_count` (a reply deleted), an edit, a reaction, or a tombstone. Threads receive
replies long after they start; the look-back window says how long a thread stays "live".
A root older than the window is not looked at again (raise `lookback_days` to widen it).

A reaction or an edit on a *reply* does not change the root, yet a check mark added to the
reply that fixed it is how most threads become resolved. So a thread that was still
unresolved last time is re-read on every run while it is inside the window
(`recheck_unresolved = false` turns that off, trading those calls for a blind spot).

Deletions come from the source: a root we saw inside the window that history no longer
returns was deleted; a deleted root that still has replies comes back as a tombstone and
the thread is rebuilt from its replies, as the export reader does.

The cursor (JSON in `sync.sqlite`) per channel: the newest ts seen, a short signature of
every root inside the window, and the roots of the unresolved threads among them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from casematch.cases import Visibility
from casematch.errors import ConfigError, InputError
from casematch.sources import ReadOptions, SourceConfig, SyncBatch
from casematch.sources.slack_threads import SKIPPED_SUBTYPES, thread_to_case, ts_key, user_name

DEFAULT_API_URL = "https://slack.com/api/"
DEFAULT_LOOKBACK_DAYS = 30.0
DAY = Decimal(86400)
PAGE_SIZE = 200
AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked",
                         "token_expired", "no_permission"})

Json = dict[str, Any]
Progress = Callable[[int], None]


def web_client(token: str | None, base_url: str | None = None, *,
               timeout: int = 30) -> WebClient:
    """The one way casematch makes a Slack Web API client, for every part that calls Slack.

    Every call retries on 429 after `Retry-After` seconds, on connection errors, and on
    Slack's own 500/503s; the responder and the API source behave the same.
    """
    base = base_url or DEFAULT_API_URL
    return WebClient(
        token=token or None,
        # WebClient joins method names onto the base URL: it must end with a slash.
        base_url=base if base.endswith("/") else base + "/",
        timeout=timeout,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2),
                        RateLimitErrorRetryHandler(max_retry_count=5),
                        ServerErrorRetryHandler(max_retry_count=2)],
    )


def pages(client: WebClient, method: str, key: str, **params: Any) -> Iterator[Json]:
    """Every item of a cursor-paginated Web API method (`response_metadata.next_cursor`)."""
    api = getattr(client, method)
    cursor = ""
    while True:
        response = api(**params, limit=PAGE_SIZE, **({"cursor": cursor} if cursor else {}))
        yield from response.get(key) or ()
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or ""
        if not cursor:
            return


def slack_client(source: SourceConfig) -> WebClient:
    """The Web API client of an API source, or a ConfigError naming the token variable."""
    if not source.credentials.token:
        raise ConfigError(f"{source.label}: set {source.credentials.token_env or 'SLACK_BOT_TOKEN'}"
                          " to the Slack app's bot token (xoxb-...)")
    return web_client(source.credentials.token, source.api_url)


def pull_slack(
    source: SourceConfig,
    cursor: Mapping[str, Any] | None,
    options: ReadOptions,
    *,
    client: WebClient | None = None,
    progress: Progress | None = None,
) -> SyncBatch:
    """The threads of `source.channels` that changed since `cursor` (everything when None)."""
    puller = _Puller(source, client or slack_client(source), options, progress)
    try:
        return puller.pull(cursor or {})
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "error")
        if error in AUTH_ERRORS:
            raise ConfigError(
                f"{source.label}: Slack refused the token in {source.credentials.token_env} "
                f"({error}); set it to the bot token of an app installed in the workspace"
            ) from None
        raise InputError(source.label, f"Slack API error {error!r}"
                         + (" (add the scope to the app and reinstall it)"
                            if error == "missing_scope" else "")) from None
    except (SlackClientError, OSError) as exc:
        raise InputError(source.label, f"cannot reach the Slack API ({type(exc).__name__}: "
                                       f"{exc})") from None


def _signature(root: Mapping[str, Any]) -> str:
    """Changes whenever the root tells us the thread changed."""
    keys = ("text", "subtype", "reply_count", "latest_reply", "edited", "reactions", "files")
    blob = json.dumps({k: root.get(k) for k in keys}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]


class _Puller:
    def __init__(self, source: SourceConfig, client: WebClient, options: ReadOptions,
                 progress: Progress | None) -> None:
        self.source = source
        self.client = client
        self.options = options
        self.progress = progress
        self.lookback = Decimal(str(source.options.get("lookback_days", DEFAULT_LOOKBACK_DAYS)))
        self.include_private = bool(source.options.get("include_private", True))
        self.recheck_unresolved = bool(source.options.get("recheck_unresolved", True))
        self.batch = SyncBatch(complete=False)
        self._names: dict[str, str] | None = None

    def _pages(self, method: str, key: str, **params: Any) -> Iterator[Json]:
        return pages(self.client, method, key, **params)

    def pull(self, cursor: Mapping[str, Any]) -> SyncBatch:
        known = cursor.get("channels") or {}
        state: dict[str, Any] = {}
        for channel_id, name, visibility in self._channels():
            state[channel_id] = self._channel(channel_id, name, visibility,
                                              known.get(channel_id) or {})
        # Channels no longer configured keep no cursor; re-adding one reads it whole again.
        self.batch.cursor = {"channels": state}
        return self.batch

    def _channels(self) -> list[tuple[str, str, Visibility]]:
        wanted = set(self.source.channels)
        found: list[tuple[str, str, Visibility]] = []
        for channel in self._pages("conversations_list", "channels",
                                   types="public_channel,private_channel", exclude_archived=True):
            cid, name = str(channel.get("id")), str(channel.get("name") or "")
            if cid not in wanted and name not in wanted:
                continue
            wanted -= {cid, name}
            private = bool(channel.get("is_private"))
            if private and not (self.include_private and channel.get("is_member")):
                self.batch.report.problem(self.source.label, f"#{name} is private and the bot "
                                          "is not a member (or include_private = false); skipped")
                continue
            members = tuple(str(m) for m in self._pages("conversations_members", "members",
                                                        channel=cid)) if private else ()
            found.append((cid, name, Visibility(private, members)))
        for missing in sorted(wanted):
            self.batch.report.problem(self.source.label, f"channel {missing!r} not found: check "
                                      "the name, or /invite the bot if it is private")
        if not found:
            raise InputError(self.source.label, "none of the configured channels could be read")
        return found

    def _channel(self, channel_id: str, name: str, visibility: Visibility,
                 known: Mapping[str, Any]) -> dict[str, Any]:
        latest = ts_key(known.get("latest", 0))
        oldest = max(Decimal(0), latest - self.lookback * DAY) if latest else Decimal(0)
        seen_roots: dict[str, str] = known.get("threads") or {}
        was_open = set(known.get("unresolved") or ()) if self.recheck_unresolved else set()
        roots: dict[str, str] = {}
        still_open: set[str] = set()
        for raw in self._pages("conversations_history", "messages", channel=channel_id,
                               oldest=str(oldest)):
            ts = str(raw.get("ts") or "")
            if not ts or str(raw.get("thread_ts") or ts) != ts:
                continue  # a reply sent to the channel too: fetched through its root
            if raw.get("subtype") in SKIPPED_SUBTYPES:
                continue
            roots[ts] = signature = _signature(raw)
            latest = max(latest, ts_key(ts), ts_key(raw.get("latest_reply")))
            if seen_roots.get(ts) == signature and ts not in was_open:
                continue  # nothing changed in this thread since the last run
            case_id = f"slack:{channel_id}:{ts}"
            if not raw.get("reply_count"):
                # A message nobody answered is not a case (as in exports); if it was one
                # (its replies were deleted), it is no longer.
                if ts in seen_roots:
                    self.batch.deleted.append(case_id)
                self.batch.report.skip("no replies")
                continue
            thread = list(self._pages("conversations_replies", "messages", channel=channel_id,
                                      ts=ts))
            case = thread_to_case(thread, channel_id=channel_id, channel_name=name,
                                  visibility=visibility, options=self.options,
                                  users=self._users(thread), report=self.batch.report)
            if case is None:  # not (or no longer) a case; the report says why
                self.batch.deleted.append(case_id)
                continue
            if not case.resolved:
                still_open.add(ts)
            self.batch.cases.append(case)
            if self.progress:
                self.progress(len(self.batch.cases))
        # A root we saw inside the window that history no longer returns was deleted.
        for ts in seen_roots:
            if ts not in roots and ts_key(ts) >= oldest:
                self.batch.deleted.append(f"slack:{channel_id}:{ts}")
        # Only roots that the next run's window will cover need remembering.
        horizon = latest - self.lookback * DAY
        return {"latest": str(latest) if latest else "",
                "threads": {ts: sig for ts, sig in roots.items() if ts_key(ts) >= horizon},
                "unresolved": sorted(ts for ts in still_open if ts_key(ts) >= horizon)}

    def _users(self, thread: list[Json]) -> dict[str, str]:
        """Display names (users.list once per run, users.info for the ones it lacks)."""
        if self._names is None:
            self._names = {}
            try:
                for user in self._pages("users_list", "members"):
                    self._names[str(user.get("id"))] = user_name(user) or str(user.get("id"))
            except SlackApiError as exc:
                if exc.response.get("error") in AUTH_ERRORS:
                    raise
                # No users:read on list (or an Enterprise quirk): fall back to users.info.
                self.batch.report.problem(self.source.label, "users.list failed "
                                          f"({exc.response.get('error')}); using users.info")
        for raw in thread:
            user_id = str(raw.get("user") or "")
            if user_id and user_id not in self._names:
                try:
                    user = self.client.users_info(user=user_id).get("user") or {}
                    self._names[user_id] = user_name(user) or user_id
                except SlackApiError:
                    self._names[user_id] = user_id  # cached too: ask once per run
        return self._names
