"""A local stand-in for Slack's Web API: answers and records every call, on 127.0.0.1.

Point `slack_sdk.WebClient(base_url=fake.url)` at it. Calls are recorded in order with
their parameters decoded (form or JSON; `blocks` parsed back into lists).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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


class FakeSlackWeb:
    def __init__(self) -> None:
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
                status, body, headers = fake._answer(method, _decode(raw, self.headers))
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

    def _answer(self, method: str, params: dict[str, Any]
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

    def _conversations_replies(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        key = (str(p.get("channel")), str(p.get("ts")))
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
        return {"channels": list(self.channels.values()),
                "response_metadata": {"next_cursor": ""}}

    def _conversations_members(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        return {"members": self.members.get(str(p.get("channel")), [])}

    # ---- assertions ---------------------------------------------------------------------

    def of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

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
