"""Wiring: settings -> Bolt app; served over HTTP (`casematch.slack.http`) or Socket Mode.

Bolt (slack_bolt) supplies what would otherwise be hand-written: signature verification
with the 5-minute replay window, url_verification, ssl_check, acks, routing by event /
command / action, and running listeners on worker threads after the ack.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from casematch import render
from casematch.encoders import Encoder
from casematch.index import serve_queries_on_one_thread
from casematch.slack.capture import Capturer
from casematch.slack.http import HttpLimits, SlackGate
from casematch.slack.responder import Responder
from casematch.slack.settings import SlackSettings
from casematch.slack.state import SlackState
from casematch.slack.suggest import LiveIndex, Suggester
from casematch.sources.slack_api import web_client as slack_web_client

log = logging.getLogger(__name__)


def web_client(slack: SlackSettings) -> WebClient:
    """The responder's Web API client (the same factory as the Slack API source's)."""
    return slack_web_client(slack.bot_token, slack.api_base_url)


@dataclass
class Responders:
    """A built app and the parts tests and benchmarks look at."""

    app: App
    responder: Responder
    index: LiveIndex
    state: SlackState
    slack: SlackSettings
    ready: bool = False

    def gate(self, limits: HttpLimits | None = None) -> SlackGate:
        """The WSGI app serving this responder over HTTP (`casematch.slack.http`)."""
        return SlackGate(self.app, self.slack.signing_secret, ready=lambda: self.ready,
                         limits=limits or HttpLimits())


def build_app(slack: SlackSettings, *, encoder: Encoder | None = None,
              client: WebClient | None = None, workers: int = 4) -> Responders:
    client = client or web_client(slack)
    settings = slack.settings
    serve_queries_on_one_thread()  # a responder answers one short query at a time
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
    built = Responders(app, responder, index, state, slack)
    # The first reply must not wait for the model: load it before reporting ready.
    index.get().encoder.encode(["warm up"])
    built.ready = True
    return built


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

    for action_id in (render.HELPFUL_ACTION, render.NOT_RELEVANT_ACTION):
        @app.action(action_id)
        def feedback(ack: Any, body: dict[str, Any], client: Any) -> None:
            ack()
            later(responder.on_feedback, body, client)


# ---- Socket Mode -----------------------------------------------------------------------------


def socket_mode_handler(app: App, app_token: str) -> Any:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, app_token=app_token)


def serve_socket_mode(app: App, app_token: str) -> None:
    socket_mode_handler(app, app_token).start()
