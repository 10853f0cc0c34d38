"""Zendesk API -> cases, incrementally: the cursor-based incremental ticket export.

`GET /api/v2/incremental/tickets/cursor.json?start_time=T` starts the stream; every page
returns an `after_cursor` to continue from (`?cursor=C`) until `end_of_stream`. The last
`after_cursor` is the sync cursor: the next run asks only for tickets changed since. Each
changed ticket's comments come from `GET /api/v2/tickets/{id}/comments.json` (users
side-loaded for their roles). A ticket in status `deleted` is deleted from the index.

HTTP goes through httpx: connection reuse across the many comment requests, timeouts, and
basic auth (`{email}/token:{api_token}`) without hand-written headers. A 429 (or a 503 with
Retry-After) waits the time Zendesk asks for, then retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from casematch.errors import ConfigError, InputError
from casematch.sources import ReadOptions, SourceConfig, SyncBatch
from casematch.sources.zendesk import ticket_to_case

EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
MAX_RETRIES = 5
# Zendesk asks for up to a minute or so; anything longer is a misconfigured proxy.
MAX_WAIT_SECONDS = 300.0

Json = dict[str, Any]
Progress = Callable[[int], None]


class ZendeskClient:
    """GET JSON from one Zendesk account, honouring Retry-After, never logging the token."""

    def __init__(self, source: SourceConfig, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, timeout: float = 30.0) -> None:
        credentials = source.credentials
        if not credentials.user or not credentials.token:
            raise ConfigError(f"{source.label}: set {credentials.user_env} (the agent's email) "
                              f"and {credentials.token_env} (an API token)")
        self.label = source.label
        self._credentials = credentials
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=source.api_url,
            auth=httpx.BasicAuth(f"{credentials.user}/token", credentials.token),
            headers={"Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def get(self, url: str, params: Mapping[str, Any] | None = None) -> Json:
        for attempt in range(MAX_RETRIES + 1):
            try:
                response = self._http.get(url, params=params)
            except httpx.HTTPError as exc:
                raise InputError(self.label, f"cannot reach Zendesk ({type(exc).__name__}: "
                                             f"{exc})") from None
            retry_after = response.headers.get("Retry-After")
            if response.status_code == 429 or (response.status_code == 503 and retry_after):
                if attempt == MAX_RETRIES:
                    break
                self._sleep(_wait_seconds(retry_after, attempt))
                continue
            if response.status_code in (401, 403):
                raise ConfigError(
                    f"{self.label}: Zendesk refused the credentials in "
                    f"{self._credentials.user_env} / {self._credentials.token_env} "
                    f"(HTTP {response.status_code}); check the email and the API token, "
                    "and that token access is enabled"
                )
            if response.status_code >= 400:
                raise InputError(self.label, f"GET {response.url.path} answered HTTP "
                                             f"{response.status_code}")
            try:
                data = response.json()
            except ValueError:
                raise InputError(self.label, f"GET {response.url.path}: not JSON") from None
            if not isinstance(data, dict):
                raise InputError(self.label, f"GET {response.url.path}: not a JSON object")
            return data
        raise InputError(self.label, f"still rate limited after {MAX_RETRIES} retries; "
                                     "run again later")


def _wait_seconds(retry_after: str | None, attempt: int) -> float:
    try:
        seconds = float(retry_after) if retry_after else 2.0 ** attempt
    except ValueError:
        seconds = 2.0 ** attempt  # an HTTP date: rare from Zendesk, back off instead
    return min(max(seconds, 0.0), MAX_WAIT_SECONDS)


def pull_zendesk(
    source: SourceConfig,
    cursor: Mapping[str, Any] | None,
    options: ReadOptions,
    *,
    client: ZendeskClient | None = None,
    progress: Progress | None = None,
) -> SyncBatch:
    """Tickets changed since `cursor` (from `start_time`, default 0, when None)."""
    own = client is None
    client = client or ZendeskClient(source)
    try:
        return _pull(client, source, cursor or {}, options, progress)
    finally:
        if own:
            client.close()


def _pull(client: ZendeskClient, source: SourceConfig, cursor: Mapping[str, Any],
          options: ReadOptions, progress: Progress | None) -> SyncBatch:
    batch = SyncBatch(complete=False)
    params: dict[str, Any] = {"per_page": int(source.options.get("per_page", 1000))}
    after = cursor.get("after_cursor")
    if after:
        params["cursor"] = after
    else:
        params["start_time"] = int(source.options.get("start_time", 0))
    tickets: dict[str, Json] = {}
    users: dict[str, Json] = {}
    groups: dict[str, str] = {}
    while True:
        page = client.get(EXPORT_PATH, params)
        for ticket in page.get("tickets") or ():
            if isinstance(ticket, dict) and ticket.get("id") is not None:
                # A ticket changed twice appears twice: the later page holds the newer one.
                tickets[str(ticket["id"])] = ticket
        _side_load(page, users, groups)
        after = page.get("after_cursor") or after
        if page.get("end_of_stream") or not page.get("after_cursor"):
            break
        params = {"cursor": after, "per_page": params["per_page"]}
    for ticket_id, ticket in tickets.items():
        case_id = f"zendesk:{source.subdomain}:{ticket_id}"
        if ticket.get("status") == "deleted":
            batch.deleted.append(case_id)
            continue
        comments = _comments(client, ticket_id, users)
        case = ticket_to_case(source.subdomain, ticket, comments, options=options,
                              users=users, groups=groups)
        if case is None:
            batch.report.skip("no description")
            continue
        batch.cases.append(case)
        if progress:
            progress(len(batch.cases))
    batch.cursor = {"after_cursor": after} if after else dict(cursor) or None
    return batch


def _side_load(page: Json, users: dict[str, Json], groups: dict[str, str]) -> None:
    for user in page.get("users") or ():
        if isinstance(user, dict):
            users[str(user.get("id"))] = user
    for group in page.get("groups") or ():
        if isinstance(group, dict):
            groups[str(group.get("id"))] = str(group.get("name") or "")


def _comments(client: ZendeskClient, ticket_id: str, users: dict[str, Json]) -> list[Json]:
    comments: list[Json] = []
    url: str | None = f"/api/v2/tickets/{ticket_id}/comments.json"
    params: dict[str, Any] | None = {"include": "users"}
    while url:
        page = client.get(url, params)
        comments += [c for c in page.get("comments") or () if isinstance(c, dict)]
        _side_load(page, users, {})
        # next_page is a full URL carrying its own query string.
        url, params = page.get("next_page") or None, None
    return comments
