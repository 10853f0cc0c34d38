"""Slack workspace export (a folder or a .zip) -> one `Case` per resolved-or-not thread.

An export holds `channels.json` (public), `groups.json` (private), `users.json` and one
folder per channel with a JSON file per day. A thread's replies can land in later day files
than its root, so a channel is read whole before its threads are built; channels are read
one at a time so memory follows the largest channel, not the export.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from casematch.cases import Case, Message, Visibility
from casematch.errors import InputError
from casematch.resolution import resolve_thread
from casematch.sources import ReadOptions, ReadReport
from casematch.text import attachments_to_text, blocks_to_text, slack_to_text

# Housekeeping messages that are never part of a conversation.
SKIPPED_SUBTYPES = frozenset({
    "channel_join", "channel_leave", "bot_add", "bot_remove", "channel_topic",
    "channel_purpose", "channel_name", "channel_archive", "channel_unarchive",
    "group_join", "group_leave", "group_topic", "group_purpose", "group_name",
    "pinned_item", "unpinned_item", "reminder_add", "message_deleted", "message_changed",
})
_DAY_FILE = re.compile(r"\d{4}-\d{2}-\d{2}\.json")


# ---- the export container: a folder or a zip, read one member at a time ------------------


class _Export:
    """Uniform, lazy access to the files of a folder or a zip export."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""
        self._folders: dict[str, list[str]] = {}
        if path.is_dir():
            return
        if not path.is_file():
            raise InputError(path, "no such file or directory")
        if not zipfile.is_zipfile(path):
            raise InputError(path, "not a Slack export: expected a folder or a .zip file "
                                   "(the zip may be truncated; download it again)")
        try:
            self._zip = zipfile.ZipFile(path)
            names = [n for n in self._zip.namelist() if not n.startswith("__MACOSX/")]
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(path, f"cannot open the zip ({exc}); download it again") from exc
        self._prefix = _zip_prefix(names)
        for name in names:
            relative = name[len(self._prefix):] if name.startswith(self._prefix) else name
            folder, _, base = relative.rpartition("/")
            if folder and "/" not in folder and _DAY_FILE.fullmatch(base):
                self._folders.setdefault(folder, []).append(base)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def label(self, relative: str) -> str:
        """How a member is named in problems: the file path, or zip path + member."""
        if self._zip is None:
            return str(self.path / relative)
        return f"{self.path}!{self._prefix}{relative}"

    def exists(self, relative: str) -> bool:
        if self._zip is None:
            return (self.path / relative).is_file()
        try:
            self._zip.getinfo(self._prefix + relative)
        except KeyError:
            return False
        return True

    def day_files(self, folder: str) -> list[str]:
        if self._zip is None:
            directory = self.path / folder
            if not directory.is_dir():
                return []
            names = [p.name for p in directory.iterdir() if _DAY_FILE.fullmatch(p.name)]
        else:
            names = self._folders.get(folder, [])
        return [f"{folder}/{name}" for name in sorted(names)]

    def read_json(self, relative: str) -> Any:
        """Parse one member. Raises ValueError with a readable reason for any bad content."""
        try:
            if self._zip is None:
                raw = (self.path / relative).read_bytes()
            else:
                raw = self._zip.read(self._prefix + relative)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ValueError(f"corrupt zip member ({exc})") from exc
        except OSError as exc:
            raise ValueError(f"cannot read ({exc.strerror or exc})") from exc
        try:
            return json.loads(raw.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise ValueError(f"invalid JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
                             ) from exc


def _zip_prefix(names: list[str]) -> str:
    # Zips made by hand from an unpacked export have one folder around everything.
    if any(n in ("channels.json", "groups.json") for n in names):
        return ""
    for name in names:
        folder, _, base = name.rpartition("/")
        if base in ("channels.json", "groups.json") and "/" not in folder:
            return folder + "/"
    return ""


# ---- workspace metadata -------------------------------------------------------------------


@dataclass
class _Workspace:
    users: dict[str, str] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)  # id -> name, for <#C...>
    # (id, name, visibility) in listing order
    listing: list[tuple[str, str, Visibility]] = field(default_factory=list)


def _user_name(user: Mapping[str, Any]) -> str:
    profile = user.get("profile") or user.get("user_profile") or {}
    return str(profile.get("display_name") or profile.get("real_name")
               or user.get("real_name") or user.get("name") or "")


def _load_workspace(export: _Export, report: ReadReport) -> _Workspace:
    found = [n for n in ("channels.json", "groups.json") if export.exists(n)]
    if not found:
        raise InputError(export.path, "not a Slack export: neither channels.json nor "
                                      "groups.json found at its top level")
    workspace = _Workspace()
    for name in found:
        try:
            entries = export.read_json(name)
        except ValueError as exc:
            raise InputError(export.label(name), f"{exc}; the export cannot be read without "
                                                 "its channel list") from exc
        if not isinstance(entries, list):
            raise InputError(export.label(name), "expected a JSON list of channels")
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("id"):
                continue
            cid, cname = str(entry["id"]), str(entry.get("name") or entry["id"])
            private = name == "groups.json" or bool(entry.get("is_private"))
            members = tuple(str(m) for m in entry.get("members") or ()) if private else ()
            workspace.channels[cid] = cname
            workspace.listing.append((cid, cname, Visibility(private, members)))
    if export.exists("users.json"):
        try:
            users = export.read_json("users.json")
        except ValueError as exc:
            report.problem(export.label("users.json"), f"{exc}; showing user ids instead")
            users = []
        for user in users if isinstance(users, list) else ():
            if isinstance(user, dict) and user.get("id"):
                workspace.users[str(user["id"])] = _user_name(user) or str(user["id"])
    return workspace


# ---- messages ------------------------------------------------------------------------------


def _ts_key(ts: str) -> Decimal:
    # Decimal, not float: 16 significant digits sit at the edge of float precision.
    try:
        return Decimal(ts)
    except InvalidOperation:
        return Decimal(0)


def _time(ts: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(ts), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _raw_text(raw: Mapping[str, Any]) -> str:
    text = str(raw.get("text") or "")
    if not text.strip() and isinstance(raw.get("blocks"), list):
        text = blocks_to_text(raw["blocks"])
    if not text.strip() and isinstance(raw.get("attachments"), list):
        text = attachments_to_text(raw["attachments"])
    for item in raw.get("files") or ():
        if isinstance(item, dict) and (item.get("title") or item.get("name")):
            text += f"\n[file: {item.get('title') or item.get('name')}]"
    return text


def _message(raw: Mapping[str, Any], workspace: _Workspace) -> Message:
    ts = str(raw["ts"])
    author_id = str(raw.get("user") or raw.get("bot_id") or "")
    bot = raw.get("bot_profile") or {}
    author = (workspace.users.get(author_id) or _user_name(raw)
              or str(raw.get("username") or bot.get("name") or author_id))
    return Message(
        text=slack_to_text(_raw_text(raw), workspace.users, workspace.channels),
        author=author,
        author_id=author_id,
        created_at=_time(ts),
        public=True,
        is_bot=bool(raw.get("bot_id")) or raw.get("subtype") == "bot_message",
        reactions=tuple(str(r.get("name")) for r in raw.get("reactions") or ()
                        if isinstance(r, dict) and r.get("name")),
        ts=ts,
    )


@dataclass
class _Thread:
    root: dict[str, Any] | None = None
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)  # by ts: counted once
    deleted_root: bool = False
    poster: str = ""


def _collect(export: _Export, folder: str, report: ReadReport) -> dict[str, _Thread]:
    """Group every message of one channel by thread, across all its day files."""
    threads: dict[str, _Thread] = {}
    for relative in export.day_files(folder):
        try:
            day = export.read_json(relative)
        except ValueError as exc:
            report.problem(export.label(relative), str(exc))
            report.skip("unreadable day file")
            continue
        if not isinstance(day, list):
            report.problem(export.label(relative), "invalid JSON: expected a list of messages")
            report.skip("unreadable day file")
            continue
        for raw in day:
            if not isinstance(raw, dict):
                report.skip("not a message")
                continue
            subtype = raw.get("subtype")
            if not raw.get("ts"):
                report.problem(export.label(relative), "a message without 'ts' was skipped")
                report.skip("no ts")
                continue
            ts = str(raw["ts"])
            thread_ts = str(raw.get("thread_ts") or ts)
            thread = threads.setdefault(thread_ts, _Thread())
            if subtype == "tombstone" or (raw.get("hidden") and raw.get("thread_ts") == ts):
                # A deleted root: its replies may still describe and solve the case.
                thread.deleted_root = True
                report.skip("deleted message")
            elif subtype in SKIPPED_SUBTYPES or raw.get("hidden"):
                report.skip(str(subtype or "hidden"))
            elif ts == thread_ts:
                thread.root = raw
            else:
                thread.replies[ts] = raw
                thread.poster = thread.poster or str(raw.get("parent_user_id") or "")
    return threads


# ---- threads -> cases ----------------------------------------------------------------------


def _permalink(domain: str | None, channel_id: str, ts: str) -> str:
    if not domain:
        return ""
    host = re.sub(r"^https?://", "", domain.strip()).strip("/").lower()
    host = host.removesuffix(".slack.com")
    return f"https://{host}.slack.com/archives/{channel_id}/p{ts.replace('.', '')}"


def _thread_case(
    thread_ts: str,
    thread: _Thread,
    channel: tuple[str, str, Visibility],
    workspace: _Workspace,
    options: ReadOptions,
) -> Case | None:
    channel_id, channel_name, visibility = channel
    replies = [_message(thread.replies[ts], workspace)
               for ts in sorted(thread.replies, key=_ts_key)]
    if thread.root is not None:
        root = _message(thread.root, workspace)
        shown = [root, *replies]
    else:
        # Root deleted or outside the export: stand in for it so the poster's follow-ups
        # still count as the problem.
        root = Message(text="", author_id=thread.poster, created_at=_time(thread_ts),
                       ts=thread_ts)
        shown = replies
    verdict = resolve_thread([root, *replies], options.rules)
    if not verdict.problem:
        return None
    return Case(
        id=f"slack:{channel_id}:{thread_ts}",
        source="slack",
        problem=verdict.problem,
        title=verdict.title,
        resolution=verdict.resolution,
        resolved=verdict.resolved,
        url=_permalink(options.slack_domain, channel_id, thread_ts),
        created_at=_time(thread_ts),
        resolved_at=verdict.resolved_at,
        channel=channel_name,
        visibility=visibility,
        messages=tuple(m for m in shown if m.text),
    )


def _channel_cases(
    export: _Export,
    channel: tuple[str, str, Visibility],
    workspace: _Workspace,
    options: ReadOptions,
    report: ReadReport,
) -> Iterator[Case]:
    channel_id, channel_name, _ = channel
    # Exports name folders after channels; some tools use the id instead.
    folder = channel_name if export.day_files(channel_name) else channel_id
    threads = _collect(export, folder, report)
    # Exports from before threads (2016) have none: every message stands alone, and only
    # one someone marked as resolved is worth keeping.
    threaded = any(t.replies for t in threads.values())
    wanted = set(options.rules.reactions)
    for thread_ts in sorted(threads, key=_ts_key):
        thread = threads[thread_ts]
        if not thread.replies:
            if thread.root is None:
                continue  # only skipped messages; already counted
            reacted = any(r.get("name") in wanted for r in thread.root.get("reactions") or ()
                          if isinstance(r, dict))
            if threaded or not reacted:
                report.skip("no replies" if threaded else "unthreaded message")
                continue
        case = _thread_case(thread_ts, thread, channel, workspace, options)
        if case is None:
            report.skip("thread root missing, no problem text")
            continue
        yield case


def read_slack_export(
    path: Path, *, options: ReadOptions, report: ReadReport
) -> Iterator[Case]:
    """Yield one case per thread of a Slack export folder or zip (resolved or not).

    DMs and group DMs (dms.json, mpims.json) are not swarm channels and are not read.
    Raises InputError when the export as a whole cannot be read; a bad day file is
    reported in `report.problems` and the rest is read.
    """
    export = _Export(Path(path))
    try:
        workspace = _load_workspace(export, report)
        for channel in workspace.listing:
            yield from _channel_cases(export, channel, workspace, options, report)
    finally:
        export.close()


def raw_text(message: Mapping[str, Any]) -> str:
    """A message's mrkdwn, from `text` or else its blocks/attachments (bot posts), + files."""
    return _raw_text(message)


def thread_to_case(
    messages: list[dict[str, Any]],
    *,
    channel_id: str,
    channel_name: str = "",
    visibility: Visibility | None = None,
    options: ReadOptions,
    users: Mapping[str, str] | None = None,
) -> Case | None:
    """One thread as the Web API returns it (`conversations.replies`) -> a case, or None.

    The same rules as an export: skipped subtypes, deleted roots, resolution. Used by live
    capture so a thread captured from Slack and the same thread read from an export agree.
    """
    thread = _Thread()
    for raw in messages:
        if not isinstance(raw, dict) or not raw.get("ts"):
            continue
        ts = str(raw["ts"])
        thread_ts = str(raw.get("thread_ts") or ts)
        if raw.get("subtype") == "tombstone":
            thread.deleted_root = True
        elif raw.get("subtype") in SKIPPED_SUBTYPES or raw.get("hidden"):
            continue
        elif ts == thread_ts:
            thread.root = raw
        else:
            thread.replies[ts] = raw
            thread.poster = thread.poster or str(raw.get("parent_user_id") or "")
    roots = [str(m.get("thread_ts") or m.get("ts")) for m in messages if isinstance(m, dict)]
    if not roots:
        return None
    workspace = _Workspace(users=dict(users or {}))
    channel = (channel_id, channel_name or channel_id, visibility or Visibility())
    return _thread_case(min(roots, key=_ts_key), thread, channel, workspace, options)
