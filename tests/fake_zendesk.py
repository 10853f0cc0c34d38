"""A local HTTP server that answers like Zendesk's incremental ticket export and comments API."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
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
class FakeZendesk:
    email: str = "agent@acme.test"
    token: str = "zd-secret-api-token-0001"
    page_size: int = 2
    tickets: dict[int, Json] = field(default_factory=dict)
    comments: dict[int, list[Json]] = field(default_factory=dict)
    users: list[Json] = field(default_factory=list)
    requests: list[tuple[str, Json]] = field(default_factory=list)
    # path -> Retry-After seconds, answered once with a 429
    rate_limit: dict[str, int] = field(default_factory=dict)
    _seq: int = 0
    _changed: dict[int, int] = field(default_factory=dict)  # ticket id -> change sequence

    def __post_init__(self) -> None:
        self.server = LocalServer(self._handle)
        self.url = self.server.url
        self.users += [{"id": 1, "name": "Rita Requester", "role": "end-user"},
                       {"id": 2, "name": "Sam Agent", "role": "agent"}]

    def close(self) -> None:
        self.server.close()

    def ticket(self, ticket_id: int, subject: str, status: str = "open",
               comments: tuple[tuple[int, str], ...] = ()) -> None:
        """Create or change a ticket; its comments are (author id, text) pairs."""
        self._seq += 1
        self._changed[ticket_id] = self._seq
        self.tickets[ticket_id] = {
            "id": ticket_id, "subject": subject, "status": status, "requester_id": 1,
            "url": f"https://acme.zendesk.com/api/v2/tickets/{ticket_id}.json",
            "updated_at": f"2026-05-01T10:00:{self._seq:02d}Z",
            "created_at": "2026-05-01T09:00:00Z",
        }
        if comments:
            self.comments[ticket_id] = [
                {"id": ticket_id * 100 + n, "author_id": author, "body": text, "public": True,
                 "created_at": f"2026-05-01T09:{n:02d}:00Z"}
                for n, (author, text) in enumerate(comments)
            ]

    def paths(self, prefix: str) -> list[Json]:
        return [params for path, params in self.requests if path.startswith(prefix)]

    def _handle(self, verb: str, path: str, query: Json, body: bytes,
                headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        self.requests.append((path, query))
        if path in self.rate_limit:
            retry = self.rate_limit.pop(path)
            return 429, {"Retry-After": str(retry)}, b'{"error": "TooManyRequests"}'
        expected = base64.b64encode(f"{self.email}/token:{self.token}".encode()).decode()
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if auth != f"Basic {expected}":
            return 401, {}, b'{"error": "Couldn\'t authenticate you"}'
        if path == "/api/v2/incremental/tickets/cursor.json":
            return 200, {}, json.dumps(self._export(query)).encode()
        if path.startswith("/api/v2/tickets/") and path.endswith("/comments.json"):
            ticket_id = int(path.split("/")[4])
            return 200, {}, json.dumps(self._comments(ticket_id, query)).encode()
        return 404, {}, b'{"error": "InvalidEndpoint"}'

    def _export(self, query: Json) -> Json:
        after = int(query["cursor"]) if "cursor" in query else 0
        changed = sorted((seq, tid) for tid, seq in self._changed.items() if seq > after)
        page = changed[: self.page_size]
        last = page[-1][0] if page else after
        return {"tickets": [self.tickets[tid] for _, tid in page], "after_cursor": str(last),
                "after_url": f"{self.url}/api/v2/incremental/tickets/cursor.json?cursor={last}",
                "end_of_stream": len(changed) <= self.page_size}

    def _comments(self, ticket_id: int, query: Json) -> Json:
        items = self.comments.get(ticket_id, [])
        start = int(query.get("page") or 0)
        end = start + self.page_size
        next_page = (f"{self.url}/api/v2/tickets/{ticket_id}/comments.json?page={end}"
                     if end < len(items) else None)
        return {"comments": items[start:end], "next_page": next_page, "users": self.users}
