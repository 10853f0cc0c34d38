"""Wiring: settings -> Bolt app; served over HTTP (`casematch.slack.http`) or Socket Mode.

Bolt (slack_bolt) supplies what would otherwise be hand-written: signature verification
with the 5-minute replay window, url_verification, ssl_check, acks, routing by event /
command / action, and running listeners on worker threads after the ack.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from slack_bolt import App
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient

from casematch import render
from casematch.encoders import Encoder
from casematch.errors import ConfigError
from casematch.index import serve_queries_on_one_thread
from casematch.slack.capture import Capturer
from casematch.slack.http import HttpLimits, HttpServer, SlackGate
from casematch.slack.metrics import Metrics
from casematch.slack.responder import Responder
from casematch.slack.settings import SlackSettings
from casematch.slack.state import SlackState, open_state
from casematch.slack.suggest import LiveIndex, Suggester
from casematch.slack.work import WorkQueue
from casematch.sources.slack_api import pages
from casematch.sources.slack_api import web_client as slack_web_client

log = logging.getLogger(__name__)


def web_client(slack: SlackSettings) -> WebClient:
    """The responder's Web API client (the same factory as the Slack API source's)."""
    return slack_web_client(slack.bot_token, slack.api_base_url)


# Pending work older than this is dropped at start rather than answered late.
RESUME_WITHIN_S = 600.0
# With a shared state (`[slack] state_url`), work another replica took on and left
# unfinished this long is taken over: that replica died (or lost its database).
TAKEOVER_AFTER_S = 120.0
# How often a responder checks that Slack's Web API answers (readiness).
SLACK_CHECK_S = 30.0


@dataclass
class Responders:
    """A built app and the parts tests and benchmarks look at."""

    app: App
    responder: Responder
    index: LiveIndex
    state: SlackState
    slack: SlackSettings
    work: WorkQueue
    metrics: Metrics
    ready: bool = False
    # The last Web API check answered (`watch_slack`): a replica cut off from Slack can
    # take events but not answer them, so it should not be sent any.
    slack_reachable: bool = True
    stopped: threading.Event = field(default_factory=threading.Event)

    def is_ready(self) -> bool:
        """Index and model loaded, and Slack answering: what `/readyz` reports."""
        return self.ready and self.slack_reachable

    def watch_slack(self, client: WebClient, every_s: float = SLACK_CHECK_S) -> threading.Thread:
        """Until `stopped`, every `every_s`: check that Slack's Web API answers (auth.test)."""

        def watch() -> None:
            while not self.stopped.wait(every_s):
                try:
                    client.auth_test()
                    reachable = True
                except Exception as exc:  # network, 5xx, a revoked token: all mean "not now"
                    reachable = False
                    log.warning("Slack's Web API did not answer: %s", type(exc).__name__)
                if reachable != self.slack_reachable:
                    log.info("Slack reachable: %s", reachable)
                self.slack_reachable = reachable

        thread = threading.Thread(target=watch, name="casematch-slack-check", daemon=True)
        thread.start()
        return thread

    def gate(self, limits: HttpLimits | None = None) -> SlackGate:
        """The WSGI app serving this responder over HTTP (`casematch.slack.http`)."""
        return SlackGate(self.app, self.slack.signing_secret, ready=self.is_ready,
                         metrics=self.metrics.render, overloaded=self.work.full,
                         limits=limits or HttpLimits())

    def resume(self, within_s: float = RESUME_WITHIN_S,
               grace_s: float = 0.0) -> threading.Thread:
        """Queue again the work a previous process claimed and did not finish (with
        `grace_s`: only work nobody took on for that long, see `SlackState.pending_work`).

        Fed in on a thread of its own as the queue has room (below `maxsize`), so a long
        backlog neither overflows the queue nor crowds out new requests."""
        jobs = self.state.pending_work(within_s, grace_s)
        if jobs:
            log.info("resuming %d unfinished jobs", len(jobs))

        def feed() -> None:
            for key, kind, body in jobs:
                log.debug("resuming %s work %s", kind, key)
                if not self.work.submit_when_room(
                        _job(self, key, kind, json.loads(body), resumed=True)):
                    return

        thread = threading.Thread(target=feed, name="casematch-resume", daemon=True)
        thread.start()
        return thread

    def take_over(self, grace_s: float, every_s: float | None = None,
                  within_s: float = RESUME_WITHIN_S) -> threading.Thread:
        """Until `stopped`, every `every_s`: say this process is still at the work it
        holds (`keep_pending`, so no replica takes queued or running work from a live
        one), and take over the work that replicas sharing the state left unattended for
        `grace_s`. A replica that died mid-post is covered too: a resumed root is claimed
        only while undecided, and its thread is checked for a reply already posted."""
        every = every_s if every_s is not None else max(grace_s / 4, 0.1)

        def watch() -> None:
            while not self.stopped.wait(every):
                try:
                    self.state.keep_pending()
                    self.resume(within_s, grace_s)
                except Exception:  # the database away for a moment: look again later
                    log.warning("looking for unfinished work failed", exc_info=True)

        thread = threading.Thread(target=watch, name="casematch-takeover", daemon=True)
        thread.start()
        return thread

    def serve_http(self, host: str, port: int, *, drain_s: float = 20.0,
                   stop: threading.Event | None = None) -> None:
        """Serve until SIGTERM/SIGINT (or `stop`): then stop accepting, finish the queued
        work within `drain_s`, and return. Unfinished work stays pending for next start."""
        import signal

        stop = stop or threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        server = HttpServer(self.gate(), host, port).start()
        log.info("listening on %s", server.url)
        stop.wait()
        log.info("stopping: no new requests; finishing queued work (up to %.0f s)", drain_s)
        server.stop_accepting()
        self.stopped.set()
        finished = self.work.drain(drain_s)
        server.shutdown(grace_s=1.0)
        log.info("stopped (%s)", "all work finished" if finished else "some work left pending")


def build_app(slack: SlackSettings, *, encoder: Encoder | None = None,
              client: WebClient | None = None, workers: int = 4,
              queue_size: int = 256, resume: bool = True,
              takeover_s: float | None = None) -> Responders:
    """`takeover_s`: take over other replicas' unfinished work after that long; by default
    `TAKEOVER_AFTER_S` with a shared state (`state_url`), never with `slack.sqlite`."""
    if takeover_s is None and slack.state_url:
        takeover_s = TAKEOVER_AFTER_S
    client = client or web_client(slack)
    settings = slack.settings
    serve_queries_on_one_thread()  # a responder answers one short query at a time
    index = LiveIndex(slack.index_path, model=settings.model, encoder=encoder,
                      device=settings.device, runtime=settings.runtime)
    state = open_state(slack.state_url or slack.index_path, retention_days=slack.retention_days)
    state.prune()
    metrics = Metrics()
    responder = Responder(slack, Suggester(index, slack, metrics.search_seconds.observe), state,
                          Capturer(index, settings.read_options), metrics)
    app = App(
        client=client,  # carries the bot token
        signing_secret=slack.signing_secret,
        # Record, then ack: the listener (a claim and a pending row in the state, then a
        # put on the work queue; milliseconds) runs before Bolt answers, so nothing Slack
        # saw acked can be lost by a crash. The searches run after, on the work queue.
        process_before_response=True,
    )
    me = client.auth_test()
    slack = resolve_channels(client, slack)
    responder.slack = responder.suggester.slack = slack
    responder.bot_user_id, responder.bot_id = str(me.get("user_id")), str(me.get("bot_id"))
    built = Responders(app, responder, index, state, slack,
                       WorkQueue(workers=workers, maxsize=queue_size), metrics)
    metrics.watch(built.work.depth,
                  lambda: (index.get().generation, str(index.get().manifest.get("built_at"))))
    register(built)
    # The first reply must not wait for the model: load it before reporting ready.
    index.get().encoder.encode(["warm up"])
    if resume:
        # Beside live replicas, their work in flight is not ours to redo at once.
        built.resume(grace_s=takeover_s or 0.0)
    if takeover_s:
        built.take_over(takeover_s)
    built.watch_slack(client)
    built.ready = True
    return built


_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]+$")  # names are lowercase


def resolve_channels(client: WebClient, slack: SlackSettings) -> SlackSettings:
    """`[slack] channels` and `bot_channels` as ids: names ("#it-help" or "it-help") are
    looked up once at start, and a name the bot cannot see is an error naming it (a
    name left as it is would silently never match an event)."""
    wanted = [c for c in (*slack.channels, *slack.bot_channels) if not _CHANNEL_ID.match(c)]
    if not wanted:
        return slack
    ids: dict[str, str] = {}
    for channel in pages(client, "conversations_list", "channels",
                         types="public_channel,private_channel", exclude_archived=True):
        ids[str(channel.get("name"))] = str(channel.get("id"))

    def resolve(name: str, key: str) -> str:
        if _CHANNEL_ID.match(name):
            return name
        found = ids.get(name.lstrip("#"))
        if found is None:
            raise ConfigError(
                f"[slack] {key}: no channel named {name!r} that the bot can see; check the "
                "name, invite the bot to it (private channels), or give the channel id")
        return found

    return replace(slack, channels=tuple(resolve(c, "channels") for c in slack.channels),
                   bot_channels=tuple(resolve(c, "bot_channels") for c in slack.bot_channels))


def _job(built: Responders, key: str, kind: str, body: dict[str, Any], *,
         resumed: bool = False) -> Callable[[], None]:
    """The work for one request, as a job that marks itself done in the state."""
    responder, client = built.responder, built.app.client

    def run() -> None:
        try:
            if kind == "message":
                responder.on_message(body, client, resumed=resumed)
            elif kind == "reaction":
                responder.on_reaction(body, client)
            elif kind == "mention":
                responder.on_mention(body, client)
            elif kind == "command":
                respond = Respond(response_url=str(body.get("response_url") or ""))
                responder.on_command(body, client, respond)
            elif kind == "action":
                responder.on_feedback(body, client)
        except Exception:  # logged without the request: it may hold message text
            log.error("%s work %s failed", kind, key, exc_info=True)
            built.metrics.replies.labels("failed").inc()
        built.state.done(key)  # done or failed for good: a crash is what resumes

    return run


def register(built: Responders) -> None:
    """Every listener only records its request as pending, queues it and returns; Bolt
    acks after that (process_before_response), so an acked request is always on disk.

    If the listeners also ran the searches, a burst would queue acks behind searches and
    Slack would see timeouts and retry. The searches get a bounded queue of their own
    instead, and the ack waits only for one small write.
    """
    app, state = built.app, built.state

    def accept(kind: str, key: str, body: dict[str, Any]) -> None:
        built.metrics.events.labels(kind).inc()
        if not state.claim_event(key, kind, json.dumps(body)):
            built.metrics.deduplicated.labels(kind).inc()
            return  # a retry, or a twin replica got it first
        built.work.submit(_job(built, key, kind, body))

    def event_key(body: dict[str, Any]) -> str:
        return str(body.get("event_id") or "") or uuid.uuid4().hex

    @app.event("message")
    def message(body: dict[str, Any]) -> None:
        accept("message", event_key(body), body)

    @app.event("reaction_added")
    def reaction(body: dict[str, Any]) -> None:
        accept("reaction", event_key(body), body)

    @app.event("app_mention")
    def mention(body: dict[str, Any]) -> None:
        accept("mention", event_key(body), body)

    @app.command(built.responder.slack.slash_command)
    def command(ack: Any, command: dict[str, Any]) -> None:
        accept("command", "cmd:" + str(command.get("trigger_id") or uuid.uuid4().hex),
               command)
        ack()

    for action_id in (render.HELPFUL_ACTION, render.NOT_RELEVANT_ACTION):
        @app.action(action_id)
        def feedback(ack: Any, body: dict[str, Any]) -> None:
            accept("action", "act:" + uuid.uuid4().hex, body)
            ack()


# ---- Socket Mode -----------------------------------------------------------------------------


def socket_mode_handler(app: App, app_token: str) -> Any:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, app_token=app_token)


def serve_socket_mode(app: App, app_token: str) -> None:
    socket_mode_handler(app, app_token).start()
