"""The responder's HTTP endpoint: Bolt's WSGI adapter served by waitress.

Why waitress: it is a production WSGI server that runs in this process (so the loaded
model, the index and the work queue are shared, unlike gunicorn's forked workers), it
buffers requests on its asyncore loop and hands a worker thread only a complete request (a
half-sent body ties up no thread and is dropped after `read_timeout_s`), it caps bodies
(413) and it never sends a traceback. Measured on loopback, a burst of 200 simultaneous
signed events: waitress 0 errors, p99 174-223 ms; Bolt's ASGI adapter under uvicorn 0
errors, p99 174-242 ms; the ASGI adapter also runs Bolt's synchronous dispatch on the
event loop, so waitress was kept.

`SlackGate` stands in front of Bolt and answers what Bolt should never see: bodies over the
cap, malformed requests (400: not UTF-8, a timestamp that is not an integer, a signature
that is not ASCII, JSON that is not an object), requests with a bad signature (401, logged
without their body; Bolt would log the whole body at INFO), and the probes `/healthz`,
`/readyz` and `/metrics`.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"
# Slack's largest payloads (a message with many blocks, a modal) stay well under 1 MB.
MAX_BODY_BYTES = 1 << 20

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class HttpLimits:
    max_body_bytes: int = MAX_BODY_BYTES
    # A connection that sends nothing for this long is closed (half-sent requests included).
    read_timeout_s: int = 10
    # Listen backlog: a burst waits in the kernel instead of being reset.
    backlog: int = 2048
    threads: int = 8
    # Open connections handled at once; more wait in the backlog (not refused).
    connection_limit: int = 1000


class SlackGate:
    """WSGI app: probes, request hygiene, then Bolt's own WSGI adapter."""

    def __init__(self, app: App, signing_secret: str, *,
                 ready: Callable[[], bool] = lambda: True,
                 metrics: Callable[[], tuple[bytes, str]] | None = None,
                 overloaded: Callable[[], bool] = lambda: False,
                 limits: HttpLimits = HttpLimits()) -> None:
        self.bolt = SlackRequestHandler(app, EVENTS_PATH)
        self.verifier = SignatureVerifier(signing_secret)
        self.ready = ready
        self.metrics = metrics
        self.overloaded = overloaded
        self.limits = limits
        # Bolt logs the full body of a request whose signature fails; ours never get there,
        # and this keeps it so should a path ever reach Bolt unchecked.
        logging.getLogger("slack_bolt.RequestVerification").setLevel(logging.WARNING)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        try:
            return self._route(environ, start_response)
        except Exception:  # never a traceback to the client, never the body in the log
            log.error("request to %s failed", environ.get("PATH_INFO"), exc_info=True)
            return _reply(start_response, 500, "internal error")

    def _route(self, environ: dict[str, Any], start_response: StartResponse
               ) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if method == "GET":
            if path == "/healthz":
                return _reply(start_response, 200, "ok")
            if path == "/readyz":
                ok = self.ready()
                return _reply(start_response, 200 if ok else 503, "ready" if ok else "loading")
            if path == "/metrics" and self.metrics is not None:
                data, content_type = self.metrics()
                start_response("200 OK", [("Content-Type", content_type),
                                          ("Content-Length", str(len(data)))])
                return [data]
            return _reply(start_response, 404, "not found")
        if path != EVENTS_PATH:
            return _reply(start_response, 404, "not found")
        if method != "POST":
            return _reply(start_response, 405, "method not allowed")
        return self._slack(environ, start_response)

    def _slack(self, environ: dict[str, Any], start_response: StartResponse
               ) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _reply(start_response, 400, "bad Content-Length")
        if length < 0:
            return _reply(start_response, 400, "bad Content-Length")
        if length > self.limits.max_body_bytes:
            return _reply(start_response, 413, "body too large")
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _reply(start_response, 400, "body is not UTF-8")
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        if not timestamp.isascii() or not timestamp.isdigit():
            return _reply(start_response, 400, "X-Slack-Request-Timestamp is not an integer")
        if not signature.isascii():
            return _reply(start_response, 400, "X-Slack-Signature is not ASCII")
        if not self.verifier.is_valid(body, timestamp, signature):
            log.info("rejected a request with a bad or stale signature (%d bytes)", len(raw))
            return _reply(start_response, 401, "invalid request")
        payload = _payload(body, environ.get("CONTENT_TYPE", ""))
        if payload is None:
            return _reply(start_response, 400, "body is not a Slack payload")
        if payload.get("type") == "event_callback" and self.overloaded():
            # Back-pressure: Slack redelivers an event answered 503 (commands and clicks
            # are not redelivered, so they are always taken).
            return _reply(start_response, 503, "busy", [("Retry-After", "5")])
        environ["wsgi.input"] = io.BytesIO(raw)
        return self.bolt(environ, start_response)


def _payload(body: str, content_type: str) -> dict[str, Any] | None:
    """The request as a dict, or None when it is not one (Bolt would raise on it)."""
    try:
        if content_type.startswith("application/json") or body.startswith("{"):
            parsed = json.loads(body)
            return parsed if isinstance(parsed, dict) else None
        form = parse_qs(body, keep_blank_values=True)
        if "payload" in form:
            parsed = json.loads(form["payload"][0])
            return parsed if isinstance(parsed, dict) else None
        return {k: v[0] for k, v in form.items()} if form else None
    except ValueError:
        return None


def _reply(start_response: StartResponse, status: int, text: str,
           headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = text.encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
              405: "Method Not Allowed", 413: "Payload Too Large", 500: "Internal Server Error",
              503: "Service Unavailable"}.get(status, "")
    start_response(f"{status} {reason}", [("Content-Type", "text/plain; charset=utf-8"),
                                          ("Content-Length", str(len(data))), *(headers or [])])
    return [data]


class HttpServer:
    """waitress serving a `SlackGate`; `run()` in the foreground or `start()` on a thread."""

    def __init__(self, gate: SlackGate, host: str = "127.0.0.1", port: int = 0) -> None:
        from waitress.server import create_server

        limits = gate.limits
        self.gate = gate
        self._server: Any = create_server(
            gate, host=host, port=port, threads=limits.threads, backlog=limits.backlog,
            connection_limit=limits.connection_limit, channel_timeout=limits.read_timeout_s,
            cleanup_interval=max(1, limits.read_timeout_s // 2),
            max_request_body_size=limits.max_body_bytes, expose_tracebacks=False,
            ident="casematch", clear_untrusted_proxy_headers=True)
        self.server_address = (self._server.effective_host, self._server.effective_port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}{EVENTS_PATH}"

    def run(self) -> None:
        self._server.run()

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self.run, name="casematch-http", daemon=True)
        self._thread.start()
        return self

    def stop_accepting(self) -> None:
        """Close the listening socket; requests already received are still answered."""
        self._server.accepting = False
        self._server.del_channel()
        self._server.socket.close()

    def shutdown(self, grace_s: float = 2.0) -> None:
        """Stop accepting, give open requests `grace_s` to finish, then close everything."""
        from waitress import wasyncore

        self.stop_accepting()
        deadline = time.monotonic() + grace_s
        while self._server.active_channels and time.monotonic() < deadline:
            time.sleep(0.02)
        self._server.task_dispatcher.shutdown(timeout=max(0.1, deadline - time.monotonic()))
        self._server.trigger.close()
        wasyncore.close_all(self._server._map)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

