"""A local HTTP server that answers like Slack's Web API, for the Slack API source tests.

It keeps a tiny workspace in memory (channels, messages, users), paginates every list
with a small page size so that cursors are exercised, records each request, and can
answer the next call of a method with a 429 and a Retry-After header.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

Json = dict[str, Any]


class LocalServer:
    """Serves `handle(method, path, query, body, headers) -> (status, headers, body)`."""

    def __init__(self, handle: Callable[..., tuple[int, dict[str, str], bytes]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                status, headers, payload = handle(self.command, url.path, query, body,
                                                  dict(self.headers))
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class FakeSlack:
    token: str = "xoxb-test-token"
    page_size: int = 2
    channels: list[Json] = field(default_factory=list)
    messages: dict[str, list[Json]] = field(default_factory=dict)
    users: list[Json] = field(default_factory=list)
    requests: list[tuple[str, Json]] = field(default_factory=list)
    # method name -> Retry-After seconds, answered once with a 429
    rate_limit: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.server = LocalServer(self._handle)
        self.url = self.server.url + "/api/"

    def close(self) -> None:
        self.server.close()

    # ---- building the workspace --------------------------------------------------------

    def add_channel(self, cid: str, name: str, *, private: bool = False, member: bool = True,
                    members: tuple[str, ...] = ()) -> None:
        self.channels.append({"id": cid, "name": name, "is_private": private,
                              "is_member": member, "members": list(members)})
        self.messages.setdefault(cid, [])

    def add_user(self, uid: str, display_name: str) -> None:
        self.users.append({"id": uid, "name": uid.lower(),
                           "profile": {"display_name": display_name}})

    def post(self, channel: str, ts: str, text: str, user: str = "U1", *,
             thread_ts: str | None = None, reactions: tuple[str, ...] = ()) -> None:
        message: Json = {"type": "message", "ts": ts, "user": user, "text": text}
        if thread_ts:
            message["thread_ts"] = thread_ts
        if reactions:
            message["reactions"] = [{"name": r, "count": 1, "users": ["U9"]} for r in reactions]
        self.messages[channel].append(message)

    def react(self, channel: str, ts: str, name: str) -> None:
        """Add a reaction to a message (in a thread, the root does not change)."""
        message = next(m for m in self.messages[channel] if m["ts"] == ts)
        message.setdefault("reactions", []).append({"name": name, "count": 1, "users": ["U9"]})

    def delete(self, channel: str, ts: str) -> None:
        """As Slack does: a root with replies becomes a tombstone, anything else vanishes."""
        messages = self.messages[channel]
        has_replies = any(m.get("thread_ts") == ts and m["ts"] != ts for m in messages)
        for index, message in enumerate(messages):
            if message["ts"] == ts:
                if has_replies and message.get("thread_ts", ts) == ts:
                    messages[index] = {"type": "message", "subtype": "tombstone", "ts": ts,
                                       "thread_ts": ts, "text": "This message was deleted.",
                                       "hidden": True, "user": "USLACKBOT"}
                else:
                    del messages[index]
                return

    def calls(self, method: str) -> list[Json]:
        return [params for name, params in self.requests if name == method]

    # ---- answering -----------------------------------------------------------------------

    def _handle(self, verb: str, path: str, query: Json, body: bytes,
                headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        method = path.rsplit("/", 1)[-1]
        params = dict(query)
        if body:
            try:
                params.update(json.loads(body))
            except ValueError:
                params.update({k: v[-1] for k, v in parse_qs(body.decode()).items()})
        self.requests.append((method, params))
        if method in self.rate_limit:
            retry = self.rate_limit.pop(method)
            return 429, {"Retry-After": str(retry)}, b'{"ok": false, "error": "ratelimited"}'
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if auth != f"Bearer {self.token}":
            return 200, {}, json.dumps({"ok": False, "error": "invalid_auth"}).encode()
        answer = getattr(self, "_" + method.replace(".", "_"), None)
        if answer is None:
            return 200, {}, json.dumps({"ok": False, "error": "unknown_method"}).encode()
        return 200, {}, json.dumps({"ok": True, **answer(params)}).encode()

    def _page(self, items: list[Any], key: str, params: Json) -> Json:
        start = int(params.get("cursor") or 0)
        end = start + self.page_size
        more = end < len(items)
        return {key: items[start:end],
                "response_metadata": {"next_cursor": str(end) if more else ""}}

    def _conversations_list(self, params: Json) -> Json:
        public = [{k: v for k, v in c.items() if k != "members"} for c in self.channels]
        return self._page(public, "channels", params)

    def _conversations_members(self, params: Json) -> Json:
        channel = next(c for c in self.channels if c["id"] == params["channel"])
        return self._page(channel["members"], "members", params)

    def _conversations_history(self, params: Json) -> Json:
        messages = self.messages[params["channel"]]
        oldest = Decimal(str(params.get("oldest") or 0))
        roots = []
        for message in messages:
            ts = message["ts"]
            if message.get("thread_ts", ts) != ts or Decimal(ts) < oldest:
                continue
            root = dict(message)
            replies = [m for m in messages if m.get("thread_ts") == ts and m["ts"] != ts]
            if replies:
                root["thread_ts"] = ts
                root["reply_count"] = len(replies)
                root["latest_reply"] = max(m["ts"] for m in replies)
            roots.append(root)
        roots.sort(key=lambda m: Decimal(m["ts"]), reverse=True)  # newest first, as Slack
        return self._page(roots, "messages", params)

    def _conversations_replies(self, params: Json) -> Json:
        ts = params["ts"]
        thread = [m for m in self.messages[params["channel"]]
                  if m["ts"] == ts or m.get("thread_ts") == ts]
        thread.sort(key=lambda m: Decimal(m["ts"]))
        return self._page(thread, "messages", params)

    def _users_list(self, params: Json) -> Json:
        return self._page(self.users, "members", params)

    def _users_info(self, params: Json) -> Json:
        user = next((u for u in self.users if u["id"] == params["user"]), None)
        return {"user": user or {"id": params["user"], "name": params["user"]}}
