"""What the responder does for each kind of Slack request: message, reaction, mention,
command, feedback click. Each handler holds the rules of its event (dedup, edits, privacy)
and calls the suggester, the state and the renderer.

These run on the responder's work queue, after Bolt has acknowledged the request
(`app.register`), so a search never delays the 3-second ack. The listener has already
claimed the event (a retry or a twin replica's copy never gets here) and recorded it as
pending; `resumed` says the work is being redone after a restart.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from typing import Any

from slack_sdk.errors import SlackApiError, SlackObjectFormationError
from slack_sdk.models.blocks import Block

from casematch import render
from casematch.slack.capture import Capturer
from casematch.slack.metrics import Metrics
from casematch.slack.settings import MAX_BLOCKS, SlackSettings
from casematch.slack.state import SlackState, edit_key, root_id, text_hash
from casematch.slack.suggest import Suggester, Suggestions
from casematch.sources.slack_threads import raw_text
from casematch.text import slack_to_text

log = logging.getLogger(__name__)

# Message subtypes that are a person (or an allowed bot) posting something new.
_NEW_POST_SUBTYPES = frozenset({None, "bot_message", "file_share", "thread_broadcast"})
HEADING = "*Similar resolved cases*"
SLACKBOT = "USLACKBOT"


def message_text(message: dict[str, Any]) -> str:
    """Plain text of a message, including what bots put in blocks and attachments."""
    return slack_to_text(raw_text(message)).strip()


class Responder:
    def __init__(self, slack: SlackSettings, suggester: Suggester, state: SlackState,
                 capturer: Capturer, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics()
        self.slack = slack
        self.suggester = suggester
        self.state = state
        self.capturer = capturer
        self.bot_user_id = ""
        self.bot_id = ""
        self._root_locks = [threading.Lock() for _ in range(64)]

    # ---- rendering ------------------------------------------------------------------------

    def _reply(self, query_id: str, found: Suggestions) -> tuple[list[dict[str, Any]], str]:
        values = [json.dumps({"q": query_id, "c": m.case.id}) for m in found.matches]
        blocks = checked_blocks(render.to_blocks_with_feedback(found.matches, values,
                                                              heading=HEADING))
        # The fallback text is mrkdwn too: a case titled "<!channel>" must not ping anyone.
        return blocks, mrkdwn_escape(render.to_fallback_text(found.matches))

    def _is_ours(self, message: dict[str, Any]) -> bool:
        return bool((self.bot_id and message.get("bot_id") == self.bot_id)
                    or (self.bot_user_id and message.get("user") == self.bot_user_id))

    def _wanted_post(self, message: dict[str, Any], channel: str) -> bool:
        if message.get("subtype") not in _NEW_POST_SUBTYPES or self._is_ours(message):
            return False
        if message.get("thread_ts") not in (None, message.get("ts")):
            return False  # a reply in a thread, not a new case
        # Slackbot (reminders, auto-responses) posts as a user without a bot_id.
        bot_id = message.get("bot_id") or (SLACKBOT if message.get("user") == SLACKBOT
                                           else None)
        if bot_id or message.get("subtype") == "bot_message":
            return self.slack.answers_bot(str(bot_id or ""), channel)
        return True

    # ---- events ---------------------------------------------------------------------------

    def on_message(self, body: dict[str, Any], client: Any, *, resumed: bool = False) -> None:
        event = body.get("event") or {}
        channel = str(event.get("channel") or "")
        if channel not in self.slack.channels:
            return
        subtype = event.get("subtype")
        if subtype == "message_deleted":
            self._root_gone(client, channel, str(event.get("deleted_ts") or ""))
        elif subtype == "message_changed":
            message = event.get("message") or {}
            ts = str(message.get("ts") or "")
            if message.get("subtype") == "tombstone":  # a root with replies, deleted
                self._root_gone(client, channel, ts)
            elif self._wanted_post(message, channel):
                edited = (message.get("edited") or {}).get("ts")
                when = str(edited or event.get("event_ts") or event.get("ts") or "")
                self._root_edited(client, channel, ts, message_text(message), when)
        elif self._wanted_post(event, channel):
            self._new_root(client, channel, str(event["ts"]), message_text(event), resumed)

    def _new_root(self, client: Any, channel: str, ts: str, text: str,
                  resumed: bool = False) -> None:
        if not text or not self.state.claim_root(channel, ts, text, resuming=resumed):
            return
        if resumed:
            # We may have posted and died before recording it: the thread says.
            earlier = self._own_reply(client, channel, ts)
            if earlier is not None:
                self.state.set_reply(channel, ts, earlier)
                return
        try:
            found = self.suggester.suggest(text, channel)
            self.state.set_reply(channel, ts, self._post(client, channel, ts, found) or "")
        except BaseException:
            self.state.set_reply(channel, ts, "")  # never leave an edit waiting on us
            raise

    def _own_reply(self, client: Any, channel: str, ts: str) -> str | None:
        """The ts of our reply in the thread of root `ts`, if there is one.

        Only resumed work asks: conversations.replies is rate limited (Tier 3), and a
        first attempt has nothing to find.
        """
        page = client.conversations_replies(channel=channel, ts=ts, limit=50)
        for message in page.get("messages") or ():
            if message.get("ts") != ts and self._is_ours(message):
                return str(message["ts"])
        return None

    def _post(self, client: Any, channel: str, ts: str, found: Suggestions) -> str | None:
        if found.matches:
            blocks, fallback = self._reply(root_id(channel, ts), found)
        elif self.slack.no_match_note:
            blocks, fallback = render.to_note_blocks(render.NO_MATCH_NOTE), render.NO_MATCH_NOTE
        else:
            return None  # silent below the threshold
        try:
            posted = client.chat_postMessage(channel=channel, thread_ts=ts, blocks=blocks,
                                             text=fallback, unfurl_links=False)
        except Exception:
            self.metrics.replies.labels("failed").inc()
            raise
        self.metrics.replies.labels("posted").inc()
        return str(posted["ts"])

    def _root_edited(self, client: Any, channel: str, ts: str, text: str,
                     edited_ts: str) -> None:
        # Two edits of one root in quick succession run one after the other here, and the
        # state refuses an edit older than one applied (this or another process's).
        with self._root_locks[hash(root_id(channel, ts)) % len(self._root_locks)]:
            self._apply_edit(client, channel, ts, text, edited_ts)

    def _apply_edit(self, client: Any, channel: str, ts: str, text: str,
                    edited_ts: str) -> None:
        known = self.state.settled(root_id(channel, ts))
        if known is None:
            return  # posted before we were watching: not a case we answered
        if text_hash(text) == known.text_hash or text == known.text:
            # Slack also sends message_changed for link unfurls and thread bookkeeping:
            # the case is the same, and so is its answer.
            return
        if not self.state.apply_edit(channel, ts, text, edited_ts):
            return  # a newer edit was applied already
        found = self.suggester.suggest(text, channel)
        if self.state.latest_edit(channel, ts) != edit_key(edited_ts):
            return  # a newer edit arrived (in another process) while we searched
        if not known.reply_ts:  # we were silent; the edited case may now have matches
            if found.matches:
                self.state.set_reply(channel, ts, self._post(client, channel, ts, found))
            return
        if found.matches:
            blocks, fallback = self._reply(known.id, found)
        else:
            blocks, fallback = render.to_note_blocks(render.NO_MATCH_NOTE), render.NO_MATCH_NOTE
        try:
            client.chat_update(channel=channel, ts=known.reply_ts, blocks=blocks, text=fallback)
        except Exception:
            self.metrics.replies.labels("failed").inc()
            raise
        self.metrics.replies.labels("updated").inc()

    def _root_gone(self, client: Any, channel: str, ts: str) -> None:
        known = self.state.settled(root_id(channel, ts))
        if known is None:
            return
        self.state.erase_text(known.id)
        if not known.reply_ts:
            return
        try:
            client.chat_delete(channel=channel, ts=known.reply_ts)
            self.metrics.replies.labels("deleted").inc()
        except SlackApiError as exc:
            if exc.response.get("error") != "message_not_found":
                self.metrics.replies.labels("failed").inc()
                raise
        self.state.set_reply(channel, ts, "")

    def on_reaction(self, body: dict[str, Any], client: Any) -> None:
        event = body.get("event") or {}
        item = event.get("item") or {}
        channel = str(item.get("channel") or "")
        if (item.get("type") != "message" or channel not in self.slack.channels
                or event.get("reaction") not in self.slack.capture_reactions):
            return
        self.capturer.capture(client, channel, str(item.get("ts")))

    # ---- ephemeral answers ------------------------------------------------------------------

    def _ephemeral_message(self, channel: str, text: str,
                           thread_ts: str | None = None) -> dict[str, Any]:
        """Results only the asker sees. Private cases follow the channel rule here too."""
        query_id = uuid.uuid4().hex
        self.state.add_query(query_id, channel, text, thread_ts or "")
        found = self.suggester.suggest(text, channel)
        if found.matches:
            blocks, fallback = self._reply(query_id, found)
        else:
            blocks, fallback = render.to_note_blocks(render.NO_MATCH_NOTE), render.NO_MATCH_NOTE
        return {"blocks": blocks, "text": fallback}

    def _ephemeral(self, client: Any, channel: str, user: str, text: str,
                   thread_ts: str | None = None) -> dict[str, Any]:
        message = self._ephemeral_message(channel, text, thread_ts)
        client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, **message)
        return message

    def on_mention(self, body: dict[str, Any], client: Any) -> None:
        event = body.get("event") or {}
        channel, thread_ts = str(event.get("channel") or ""), event.get("thread_ts")
        if not thread_ts and channel in self.slack.channels:
            return  # a new post in a swarm channel: answered in public by on_message
        text = message_text({**event, "text": _without_mentions(str(event.get("text") or ""))})
        if not text and thread_ts:  # "@casematch" alone in a thread: ask about its root
            page = client.conversations_replies(channel=channel, ts=thread_ts, limit=1)
            text = message_text((page.get("messages") or [{}])[0])
        if text:
            self._ephemeral(client, channel, str(event.get("user") or ""), text, thread_ts)

    def on_command(self, command: dict[str, Any], client: Any, respond: Any) -> None:
        """Answer through the command's response_url first: it reaches the user whether
        or not the bot is in the channel, for 30 minutes. chat.postEphemeral is the
        fallback when the response URL fails."""
        text, user = str(command.get("text") or "").strip(), str(command.get("user_id"))
        channel = str(command.get("channel_id") or "")
        if not text:
            respond(response_type="ephemeral",
                    text=f"Usage: {self.slack.slash_command} <describe the case>")
            return
        message = self._ephemeral_message(channel, text)
        try:
            sent = respond(response_type="ephemeral", replace_original=False, **message)
            status = int(getattr(sent, "status_code", 200))
        except Exception as exc:  # the URL expired or was refused: try the Web API
            status, reason = 0, type(exc).__name__
        else:
            reason = f"HTTP {status}"
        if not 200 <= status < 300:
            log.warning("response_url failed (%s); answering with chat.postEphemeral", reason)
            client.chat_postEphemeral(channel=channel, user=user, **message)

    def on_feedback(self, body: dict[str, Any], client: Any) -> None:
        action = (body.get("actions") or [{}])[0]
        verdict = "helpful" if action.get("action_id") == render.HELPFUL_ACTION else "not_relevant"
        try:
            value = json.loads(str(action.get("value") or ""))
        except ValueError:
            return
        user = str((body.get("user") or {}).get("id") or "")
        if not self.state.add_feedback(str(value.get("q")), str(value.get("c")), verdict, user):
            return
        channel = str((body.get("channel") or {}).get("id") or "")
        container = body.get("container") or {}
        if channel and not container.get("is_ephemeral"):
            message = body.get("message") or {}
            client.chat_postEphemeral(
                channel=channel, user=user, text="Thanks, noted.",
                thread_ts=message.get("thread_ts") or container.get("thread_ts"))


def checked_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The blocks through slack_sdk's Block Kit models, which check Slack's limits (text
    lengths, button values, element counts): a violation fails here, with a message
    naming the limit, instead of as an invalid_blocks answer from chat.postMessage."""
    if len(blocks) > MAX_BLOCKS:
        raise SlackObjectFormationError(f"{len(blocks)} blocks: a message holds {MAX_BLOCKS}")
    return [Block.parse(block).to_dict() for block in blocks]  # type: ignore[union-attr]


def mrkdwn_escape(text: str) -> str:
    """Slack's three control characters, escaped as its docs say."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _without_mentions(text: str) -> str:
    return re.sub(r"<@[UW][A-Z0-9]+(\|[^>]*)?>", " ", text).strip()
