"""Slack messages -> `Case`: the one place that turns a thread into a case.

The export reader, the Web API source and the responder's live capture all assemble a
thread's raw messages (as Slack's export files and `conversations.replies` give them) and
hand them here, so the same thread becomes the same case whichever way it arrived.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from casematch.cases import Case, Message, Visibility
from casematch.resolution import SUPPORT, resolve_thread
from casematch.sources import ReadOptions, ReadReport
from casematch.text import attachments_to_text, blocks_to_text, slack_to_text

# Housekeeping messages that are never part of a conversation.
SKIPPED_SUBTYPES = frozenset({
    "channel_join", "channel_leave", "bot_add", "bot_remove", "channel_topic",
    "channel_purpose", "channel_name", "channel_archive", "channel_unarchive",
    "group_join", "group_leave", "group_topic", "group_purpose", "group_name",
    "pinned_item", "unpinned_item", "reminder_add", "message_deleted", "message_changed",
})


@dataclass
class Workspace:
    """Names a thread's messages refer to: user ids and channel ids."""

    users: dict[str, str] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)  # id -> name, for <#C...>
    # (id, name, visibility) in listing order
    listing: list[tuple[str, str, Visibility]] = field(default_factory=list)


def user_name(user: Mapping[str, Any]) -> str:
    """The display name Slack shows for a user object (users.json, users.list, a message)."""
    profile = user.get("profile") or user.get("user_profile") or {}
    if not isinstance(profile, Mapping):
        profile = {}
    return str(profile.get("display_name") or profile.get("real_name")
               or user.get("real_name") or user.get("name") or "")


def ts_key(ts: Any) -> Decimal:
    """A Slack ts as a number to sort and compare by (0 when it is not one)."""
    # Decimal, not float: 16 significant digits sit at the edge of float precision.
    try:
        value = Decimal(str(ts))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    # NaN does not order; infinities and NaN would break a sort.
    return value if value.is_finite() else Decimal(0)


def valid_ts(ts: Any) -> bool:
    """A Slack ts is a finite positive number, as a string ("1700000000.000100") or a number."""
    if isinstance(ts, bool) or not isinstance(ts, str | int | float):
        return False
    try:
        value = Decimal(str(ts).strip())
    except (InvalidOperation, ValueError):
        return False
    # Beyond year 9999 no datetime holds it; Slack's own ts are about 1.7e9.
    return value.is_finite() and 0 < value < Decimal("253402300799")


def ts_time(ts: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(ts), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def raw_text(raw: Mapping[str, Any]) -> str:
    """A message's mrkdwn, from `text` or else its blocks/attachments (bot posts), + files."""
    value = raw.get("text")
    text = value if isinstance(value, str) else ""
    if not text.strip() and isinstance(raw.get("blocks"), list):
        text = blocks_to_text(raw["blocks"])
    if not text.strip() and isinstance(raw.get("attachments"), list):
        text = attachments_to_text(raw["attachments"])
    for item in raw.get("files") or ():
        if isinstance(item, dict) and (item.get("title") or item.get("name")):
            text += f"\n[file: {item.get('title') or item.get('name')}]"
    return text


def to_message(raw: Mapping[str, Any], workspace: Workspace) -> Message:
    ts = str(raw["ts"])
    author_id = str(raw.get("user") or raw.get("bot_id") or "")
    bot = raw.get("bot_profile")
    if not isinstance(bot, Mapping):
        bot = {}
    author = (workspace.users.get(author_id) or user_name(raw)
              or str(raw.get("username") or bot.get("name") or author_id))
    return Message(
        text=slack_to_text(raw_text(raw), workspace.users, workspace.channels),
        author=author,
        author_id=author_id,
        created_at=ts_time(ts),
        public=True,
        is_bot=bool(raw.get("bot_id")) or raw.get("subtype") == "bot_message",
        reactions=tuple(str(r.get("name")) for r in raw.get("reactions") or ()
                        if isinstance(r, dict) and r.get("name")),
        ts=ts,
    )


@dataclass
class Thread:
    """The raw messages of one thread, gathered from wherever they came."""

    root: dict[str, Any] | None = None
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)  # by ts: counted once
    deleted_root: bool = False
    poster: str = ""

    def add(self, raw: dict[str, Any], ts: str, thread_ts: str) -> str | None:
        """Take one message; returns why it was skipped, or None when it was kept."""
        if raw.get("subtype") == "tombstone" or (raw.get("hidden") and raw.get("thread_ts") == ts):
            # A deleted root: its replies may still describe and solve the case.
            self.deleted_root = True
            return "deleted message"
        if raw.get("subtype") in SKIPPED_SUBTYPES or raw.get("hidden"):
            return str(raw.get("subtype") or "hidden")
        if ts == thread_ts:
            self.root = raw
        else:
            self.replies[ts] = raw
            self.poster = self.poster or str(raw.get("parent_user_id") or "")
        return None


def permalink(domain: str | None, channel_id: str, ts: str) -> str:
    if not domain:
        return ""
    host = re.sub(r"^https?://", "", domain.strip()).strip("/").lower()
    host = host.removesuffix(".slack.com")
    return f"https://{host}.slack.com/archives/{channel_id}/p{ts.replace('.', '')}"


def thread_case(
    thread_ts: str,
    thread: Thread,
    channel: tuple[str, str, Visibility],
    workspace: Workspace,
    options: ReadOptions,
    report: ReadReport,
) -> Case | None:
    """The case a thread holds, or None (reported with why) when it is not a case."""
    channel_id, channel_name, visibility = channel
    case_id = f"slack:{channel_id}:{thread_ts}"
    replies = [to_message(thread.replies[ts], workspace)
               for ts in sorted(thread.replies, key=ts_key)]
    if thread.root is not None:
        root = to_message(thread.root, workspace)
        shown = [root, *replies]
    else:
        # Root deleted or outside the export: stand in for it so the poster's follow-ups
        # still count as the problem.
        root = Message(text="", author_id=thread.poster, created_at=ts_time(thread_ts),
                       ts=thread_ts)
        shown = replies
    verdict = resolve_thread([root, *replies], options.rules, channel=channel_name)
    if not verdict.problem:
        report.pass_over(case_id, "thread root missing, no problem text")
        return None
    if verdict.kind != SUPPORT:
        # Announcements, polls, welcome posts, bot notices: not cases, even with a check mark.
        report.pass_over(case_id, f"not a support thread ({verdict.kind})", verdict.reason)
        return None
    return Case(
        id=case_id,
        source="slack",
        problem=verdict.problem,
        title=verdict.title,
        resolution=verdict.resolution,
        resolved=verdict.resolved,
        url=permalink(options.slack_domain, channel_id, thread_ts),
        created_at=ts_time(thread_ts),
        resolved_at=verdict.resolved_at,
        channel=channel_name,
        visibility=visibility,
        messages=tuple(m for m in shown if m.text),
    )


def thread_to_case(
    messages: list[dict[str, Any]],
    *,
    channel_id: str,
    channel_name: str = "",
    visibility: Visibility | None = None,
    options: ReadOptions,
    users: Mapping[str, str] | None = None,
    report: ReadReport | None = None,
) -> Case | None:
    """One thread as the Web API returns it (`conversations.replies`) -> a case, or None.

    The same rules as an export: skipped subtypes, deleted roots, resolution. Used by live
    capture so a thread captured from Slack and the same thread read from an export agree.
    """
    thread = Thread()
    for raw in messages:
        if not isinstance(raw, dict) or not raw.get("ts"):
            continue
        ts = str(raw["ts"])
        thread.add(raw, ts, str(raw.get("thread_ts") or ts))
    roots = [str(m.get("thread_ts") or m.get("ts")) for m in messages if isinstance(m, dict)]
    if not roots:
        return None
    workspace = Workspace(users=dict(users or {}))
    channel = (channel_id, channel_name or channel_id, visibility or Visibility())
    return thread_case(min(roots, key=ts_key), thread, channel, workspace, options,
                       report if report is not None else ReadReport())
