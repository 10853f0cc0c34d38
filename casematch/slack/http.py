"""The responder's HTTP endpoint: every Slack request (events, commands, clicks) at one path."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from slack_bolt import App, BoltRequest

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"


class _Handler(BaseHTTPRequestHandler):
    app: App  # set on the subclass made per server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        if urlsplit(self.path).path != EVENTS_PATH:
            self._send(404, {}, "not found")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8")
        headers: dict[str, str | Sequence[str]] = {
            k.lower(): v for k, v in self.headers.items()}
        response = self.app.dispatch(
            BoltRequest(body=body, query=urlsplit(self.path).query, headers=headers))
        self._send(response.status, response.headers, response.body)

    def do_GET(self) -> None:
        self._send(200 if self.path == "/healthz" else 404, {}, "ok")

    def _send(self, status: int, headers: dict[str, Any], body: str) -> None:
        data = (body or "").encode("utf-8")
        self.send_response(status)
        for name, values in headers.items():
            if name.lower() == "content-length":
                continue
            for value in values if isinstance(values, list) else [values]:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        try:
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            log.warning("client went away before the response to %s", self.path)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def http_server(app: App, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """A threaded server taking every Slack request (events, commands, clicks) at one path."""
    handler = type("CasematchHandler", (_Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_http(app: App, port: int, host: str = "0.0.0.0") -> None:
    server = http_server(app, port, host)
    log.info("listening on http://%s:%d%s", host, server.server_address[1], EVENTS_PATH)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def start_http(app: App, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve on a background thread (tests, benchmarks); `server.shutdown()` stops it."""
    server = http_server(app, port, host)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
