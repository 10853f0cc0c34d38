"""The one local stand-in for Slack's Web API, on 127.0.0.1, for every Slack test.

Point `slack_sdk.WebClient(base_url=fake.url)` at it. Calls are recorded in order with
their parameters decoded (form or JSON; `blocks` parsed back into lists). It keeps a tiny
workspace (channels, members, users, messages) that the API source reads through
paginated lists (`page_size`, so cursors are exercised), answers the responder's writes
(chat.*), can answer a method's next calls with a 429 or a 5xx, and checks the bot token
when given one.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

BOT_USER_ID, BOT_ID = "UBOT", "BBOT"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    response: dict[str, Any] = field(default_factory=dict)


Json = dict[str, Any]


class FakeSlackWeb:
    def __init__(self, *, token: str | None = None, page_size: int = 200) -> None:
        # None: any token is accepted; else a call without `Bearer <token>` is invalid_auth.
        self.token = token
        self.page_size = page_size
        self.users: list[Json] = []
        # channel id -> its messages (roots and replies), as history and replies read them
        self.messages: dict[str, list[Json]] = {}
        self.calls: list[Call] = []
        self.threads: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.members: dict[str, list[str]] = {}
        # method -> how many of its next calls answer 429 (Retry-After: 1)
        self.rate_limited: dict[str, int] = {}
        # method -> HTTP statuses its next calls answer with (500, 503: Slack's own errors)
        self.server_errors: dict[str, list[int]] = {}
        # (channel, root ts) -> replies posted through chat.postMessage, as Slack keeps them
        self.replies: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                method = self.path.strip("/").split("/")[-1].split("?")[0]
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = dict(parse_qsl(self.path.partition("?")[2]))
                status, body, headers = fake._answer(
                    method, {**query, **_decode(raw, self.headers)},
                    self.headers.get("Authorization") or "")
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # socketserver's 5 resets connections under load

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- answers ------------------------------------------------------------------------

    def _answer(self, method: str, params: dict[str, Any], auth: str = ""
                ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            if self.rate_limited.get(method, 0) > 0:
                self.rate_limited[method] -= 1
                self.calls.append(Call(method + ":429", params))
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}
            if self.server_errors.get(method):
                status = self.server_errors[method].pop(0)
                self.calls.append(Call(f"{method}:{status}", params))
                return status, {"ok": False, "error": "internal_error"}, {}
            if self.token is not None and auth != f"Bearer {self.token}":
                self.calls.append(Call(method, params))
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            ts = f"{1700000000 + next(self._ts)}.000100"
            handler: Callable[[dict[str, Any], str], dict[str, Any]] = getattr(
                self, "_" + method.replace(".", "_"), lambda p, t: {})
            response = {"ok": True, **handler(params, ts)}
            self.calls.append(Call(method, params, response=response))
            self._changed.notify_all()
        return 200, response, {}

    def _auth_test(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        return {"user_id": BOT_USER_ID, "bot_id": BOT_ID, "team_id": "T1", "user": "casematch"}

    def _chat_postMessage(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        if p.get("thread_ts"):
            self.replies.setdefault((str(p["channel"]), str(p["thread_ts"])), []).append(
                {"type": "message", "ts": ts, "thread_ts": p["thread_ts"], "user": BOT_USER_ID,
                 "bot_id": BOT_ID, "text": p.get("text", "")})
        return {"channel": p.get("channel"), "ts": ts, "message": {"ts": ts}}

    def _chat_update(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        return {"channel": p.get("channel"), "ts": p.get("ts")}

    def _chat_delete(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        return {"channel": p.get("channel"), "ts": p.get("ts")}

    def _chat_postEphemeral(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        return {"message_ts": ts}

    def _page(self, items: list[Any], key: str, params: Json) -> Json:
        start = int(params.get("cursor") or 0)
        end = start + self.page_size
        return {key: items[start:end],
                "response_metadata": {"next_cursor": str(end) if end < len(items) else ""}}

    def _conversations_history(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        messages = self.messages.get(str(p.get("channel")), [])
        oldest = Decimal(str(p.get("oldest") or 0))
        roots = []
        for message in messages:
            mts = message["ts"]
            if message.get("thread_ts", mts) != mts or Decimal(mts) < oldest:
                continue
            root = dict(message)
            replies = [m for m in messages if m.get("thread_ts") == mts and m["ts"] != mts]
            if replies:
                root.update(thread_ts=mts, reply_count=len(replies),
                            latest_reply=max(m["ts"] for m in replies))
            roots.append(root)
        roots.sort(key=lambda m: Decimal(m["ts"]), reverse=True)  # newest first, as Slack
        return self._page(roots, "messages", p)

    def _conversations_replies(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        key = (str(p.get("channel")), str(p.get("ts")))
        workspace = [m for m in self.messages.get(key[0], [])
                     if m["ts"] == key[1] or m.get("thread_ts") == key[1]]
        if workspace:
            workspace.sort(key=lambda m: Decimal(m["ts"]))
            return self._page(workspace, "messages", p)
        for (channel, root), messages in self.threads.items():
            if channel == key[0] and any(m["ts"] == key[1] for m in messages):
                if root != key[1]:
                    # Like Slack: asked for a reply, it answers with that reply only.
                    return {"messages": [m for m in messages if m["ts"] == key[1]]}
                return {"messages": messages, "has_more": False}
        posted = self.replies.get(key)
        if posted:  # a thread that only exists through our replies
            return {"messages": [{"type": "message", "ts": key[1]}, *posted], "has_more": False}
        return {"messages": []}

    def _conversations_info(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        channel = str(p.get("channel"))
        return {"channel": self.channels.get(channel, {"id": channel, "name": channel,
                                                       "is_private": False})}

    def _conversations_list(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        return self._page(list(self.channels.values()), "channels", p)

    def _conversations_members(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        return self._page(self.members.get(str(p.get("channel")), []), "members", p)

    def _users_list(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        return self._page(self.users, "members", p)

    def _users_info(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        user = next((u for u in self.users if u["id"] == p.get("user")), None)
        return {"user": user or {"id": p.get("user"), "name": p.get("user")}}

    # ---- building the workspace (what the API source reads) --------------------------------

    def add_channel(self, cid: str, name: str, *, private: bool = False, member: bool = True,
                    members: tuple[str, ...] = ()) -> None:
        self.channels[cid] = {"id": cid, "name": name, "is_private": private,
                              "is_member": member}
        self.members[cid] = list(members)
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

    # ---- assertions ---------------------------------------------------------------------

    def of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def params(self, method: str) -> list[Json]:
        """The parameters of every answered call of `method`, in order."""
        return [c.params for c in self.of(method)]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Call]:
        """Bounded polling: return once `count` calls of `method` arrived, or fail."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [c for c in self.calls if c.method == method]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{method}: {len(found)} calls after {timeout}s, "
                                         f"wanted {count}; calls: "
                                         f"{[c.method for c in self.calls]}")
                self._changed.wait(left)


def _decode(raw: bytes, headers: Any) -> dict[str, Any]:
    text = raw.decode("utf-8")
    if "json" in (headers.get("Content-Type") or ""):
        params: dict[str, Any] = json.loads(text or "{}")
    else:
        params = dict(parse_qsl(text))
    for key in ("blocks", "attachments"):
        if isinstance(params.get(key), str):
            params[key] = json.loads(params[key])
    return params


# ---- inbound: signed requests to the responder, as Slack sends them ------------------------


def signed_headers(secret: str, body: str, *, timestamp: int | None = None,
                   content_type: str = "application/json", retry: int | None = None
                   ) -> dict[str, str]:
    from slack_sdk.signature import SignatureVerifier

    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": SignatureVerifier(secret).generate_signature(
            timestamp=ts, body=body),
    }
    if retry is not None:
        headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
    return headers


def post(url: str, body: str, headers: dict[str, str]) -> tuple[int, str, float]:
    """POST to the responder; (status, body, seconds to the response)."""
    import urllib.error
    import urllib.request

    started = time.perf_counter()
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), time.perf_counter() - started
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), time.perf_counter() - started


def event_body(event: dict[str, Any], event_id: str) -> str:
    return json.dumps({"token": "legacy", "team_id": "T1", "api_app_id": "A1",
                       "type": "event_callback", "event_id": event_id,
                       "event_time": int(time.time()), "event": event})
