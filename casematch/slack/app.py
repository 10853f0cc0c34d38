"""Wiring: settings -> Bolt app -> HTTP server (`POST /slack/events`) or Socket Mode.

Bolt (slack_bolt) supplies what would otherwise be hand-written: signature verification
with the 5-minute replay window, url_verification, ssl_check, acks, routing by event /
command / action, and running listeners on worker threads after the ack.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from casematch.embedding import Encoder
from casematch.slack.capture import Capturer
from casematch.slack.handlers import Responder
from casematch.slack.settings import SlackSettings
from casematch.slack.state import SlackState
from casematch.slack.suggest import LiveIndex, Suggester

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"


def web_client(slack: SlackSettings) -> WebClient:
    """The one Web API client: every call retries on 429 after `Retry-After` seconds."""
    base = slack.api_base_url or WebClient.BASE_URL
    return WebClient(
        token=slack.bot_token or None,
        base_url=base if base.endswith("/") else base + "/",
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2),
                        RateLimitErrorRetryHandler(max_retry_count=5)],
    )


@dataclass
class Responders:
    """A built app and the parts tests and benchmarks look at."""

    app: App
    responder: Responder
    index: LiveIndex
    state: SlackState


def build_app(slack: SlackSettings, *, encoder: Encoder | None = None,
              client: WebClient | None = None, workers: int = 4) -> Responders:
    client = client or web_client(slack)
    settings = slack.settings
    index = LiveIndex(slack.index_path, model=settings.model, encoder=encoder,
                      device=settings.device, runtime=settings.runtime)
    state = SlackState.at_index(slack.index_path)
    responder = Responder(slack, Suggester(index, slack), state,
                          Capturer(index, settings.read_options))
    app = App(
        client=client,  # carries the bot token
        signing_secret=slack.signing_secret,
        # Ack first, work after: listeners run on Bolt's threads once it has answered.
        process_before_response=False,
    )
    me = client.auth_test()
    responder.bot_user_id, responder.bot_id = str(me.get("user_id")), str(me.get("bot_id"))
    register(app, responder, ThreadPoolExecutor(max_workers=workers,
                                                thread_name_prefix="casematch-work"))
    return Responders(app, responder, index, state)


def register(app: App, responder: Responder, work: ThreadPoolExecutor) -> None:
    """Every listener only hands its request to `work` and returns.

    Bolt acks on its own listener threads; if those also ran the searches, a burst would
    queue acks behind searches and Slack would see timeouts and retry. The searches get a
    pool of their own instead, and Bolt's threads are free within milliseconds.
    """

    def later(handler: Any, *args: Any) -> None:
        def run() -> None:
            try:
                handler(*args)
            except Exception:  # logged, not raised: nobody waits on this thread
                log.exception("%s failed", getattr(handler, "__name__", "handler"))
        work.submit(run)

    @app.event("message")
    def message(body: dict[str, Any], client: Any) -> None:
        later(responder.on_message, body, client)

    @app.event("reaction_added")
    def reaction(body: dict[str, Any], client: Any) -> None:
        later(responder.on_reaction, body, client)

    @app.event("app_mention")
    def mention(body: dict[str, Any], client: Any) -> None:
        later(responder.on_mention, body, client)

    @app.command(responder.slack.slash_command)
    def command(ack: Any, command: dict[str, Any], client: Any, respond: Any) -> None:
        ack()
        later(responder.on_command, command, client, respond)

    for action_id in ("casematch_helpful", "casematch_not_relevant"):
        @app.action(action_id)
        def feedback(ack: Any, body: dict[str, Any], client: Any) -> None:
            ack()
            later(responder.on_feedback, body, client)


# ---- HTTP mode ------------------------------------------------------------------------------


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


# ---- Socket Mode -----------------------------------------------------------------------------


def socket_mode_handler(app: App, app_token: str) -> Any:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, app_token=app_token)


def serve_socket_mode(app: App, app_token: str) -> None:
    socket_mode_handler(app, app_token).start()
