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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from casematch.cases import Case, Message, Visibility
from casematch.errors import InputError
from casematch.sources import ReadOptions, ReadReport
from casematch.sources.conversations import split_conversations
from casematch.sources.slack_threads import (
    Thread,
    Workspace,
    thread_case,
    to_message,
    ts_key,
    user_name,
    valid_ts,
)

_DAY_FILE = re.compile(r"\d{4}-\d{2}-\d{2}\.json")
# A zip member is decompressed whole into memory: a day file or channel list above this, or
# one that expands more than MAX_RATIO times, is a damaged or hostile archive, not an export.
MAX_MEMBER_BYTES = 256 * 1024 * 1024
MAX_RATIO = 200


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
        self._check_sizes()
        self._prefix = _zip_prefix(names)
        for name in names:
            relative = name[len(self._prefix):] if name.startswith(self._prefix) else name
            folder, _, base = relative.rpartition("/")
            if folder and "/" not in folder and _DAY_FILE.fullmatch(base):
                self._folders.setdefault(folder, []).append(base)

    def _check_sizes(self) -> None:
        assert self._zip is not None
        for info in self._zip.infolist():
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > MAX_MEMBER_BYTES or (ratio > MAX_RATIO and
                                                     info.file_size > 1024 * 1024):
                raise InputError(self.path, f"member {info.filename!r} expands to "
                                            f"{info.file_size} bytes ({ratio:.0f}x): more than "
                                            f"{MAX_MEMBER_BYTES} bytes or {MAX_RATIO}x is not "
                                            "a Slack export; unpack it and check the file")

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
        """The day files of a channel folder. Raises OSError when the folder is unreadable."""
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
                with self._zip.open(self._prefix + relative) as member:
                    # The header's size can lie: never read past the cap.
                    raw = member.read(MAX_MEMBER_BYTES + 1)
                if len(raw) > MAX_MEMBER_BYTES:
                    raise ValueError(f"expands past {MAX_MEMBER_BYTES} bytes; not a day file")
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
        except RecursionError as exc:
            raise ValueError("invalid JSON: nested too deeply to be a Slack export file") from exc


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


def _load_workspace(export: _Export, report: ReadReport) -> Workspace:
    found = [n for n in ("channels.json", "groups.json") if export.exists(n)]
    if not found:
        raise InputError(export.path, "not a Slack export: neither channels.json nor "
                                      "groups.json found at its top level")
    workspace = Workspace()
    for name in found:
        try:
            entries = export.read_json(name)
        except ValueError as exc:
            raise InputError(export.label(name), f"{exc}; the export cannot be read without "
                                                 "its channel list") from exc
        if not isinstance(entries, list):
            raise InputError(export.label(name), "expected a JSON list of channels")
        if not entries:
            report.problem(export.label(name), "lists no channels; nothing was read from "
                                               "it (nothing is deleted on its account)")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str | int) \
                    or isinstance(entry.get("id"), bool) or entry.get("id") == "":
                report.problem(export.label(name), f"a channel entry without a usable id was "
                                                   f"skipped: {str(entry)[:60]}")
                continue
            cid, cname = str(entry["id"]), str(entry.get("name") or entry["id"])
            private = name == "groups.json" or bool(entry.get("is_private"))
            listed = entry.get("members")
            members = tuple(str(m) for m in listed) if private and isinstance(listed, list) \
                else ()
            workspace.channels[cid] = cname
            workspace.listing.append((cid, cname, Visibility(private, members)))
    if export.exists("users.json"):
        try:
            users = export.read_json("users.json")
        except ValueError as exc:
            report.problem(export.label("users.json"), f"{exc}; showing user ids instead",
                           lost=False)
            users = []
        for user in users if isinstance(users, list) else ():
            if isinstance(user, dict) and user.get("id"):
                workspace.users[str(user["id"])] = user_name(user) or str(user["id"])
    return workspace


def _collect(export: _Export, folder: str, report: ReadReport) -> dict[str, Thread]:
    """Group every message of one channel by thread, across all its day files."""
    threads: dict[str, Thread] = {}
    try:
        day_files = export.day_files(folder)
    except OSError as exc:
        report.problem(export.label(folder), f"cannot read the channel folder "
                                             f"({exc.strerror or exc}); fix its permissions")
        report.skip("unreadable channel folder")
        return threads
    for relative in day_files:
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
        for number, raw in enumerate(day):
            if not isinstance(raw, dict):
                report.skip("not a message")
                continue
            if not raw.get("ts"):
                report.problem(export.label(relative), "a message without 'ts' was skipped")
                report.skip("no ts")
                continue
            wrong = _wrong_field(raw)
            if wrong:
                report.problem(export.label(relative), f"message {number}: {wrong}; "
                                                       "message skipped, fix or remove it")
                report.skip("invalid message")
                continue
            ts = str(raw["ts"])
            thread_ts = str(raw.get("thread_ts") or ts)
            skipped = threads.setdefault(thread_ts, Thread()).add(raw, ts, thread_ts)
            if skipped:
                report.skip(skipped)
    return threads


def _wrong_field(raw: dict[str, Any]) -> str:
    """Why a message's fields cannot be used ('' when they can)."""
    for key in ("ts", "thread_ts"):
        if key in raw and raw[key] is not None and not valid_ts(raw[key]):
            return f"{key!r} is {str(raw[key])[:40]!r}, not a positive Slack timestamp"
    if raw.get("text") is not None and not isinstance(raw["text"], str):
        return f"'text' is a {type(raw['text']).__name__}, not a string"
    return ""


def _safe_folder(name: str) -> bool:
    # Channel names come from channels.json: never let one point outside the export.
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0") \
        and not Path(name).is_absolute() and ":" not in name


def _channel_cases(
    export: _Export,
    channel: tuple[str, str, Visibility],
    workspace: Workspace,
    options: ReadOptions,
    report: ReadReport,
) -> Iterator[Case]:
    channel_id, channel_name, _ = channel
    if not _safe_folder(channel_name) or not _safe_folder(channel_id):
        report.problem(export.label("channels.json"), f"channel {channel_name[:60]!r} "
                                                      "is not a folder name inside the export; "
                                                      "channel skipped")
        report.skip("unsafe channel name")
        return
    # Exports name folders after channels; some tools use the id instead.
    try:
        folder = channel_name if export.day_files(channel_name) else channel_id
    except OSError:
        folder = channel_name  # _collect reports it
    threads = _collect(export, folder, report)
    # Messages nobody answered in a thread: in exports from before threads (2016) and in
    # channels that talk in the channel itself, conversations hide among them.
    standalone = [ts for ts, t in threads.items() if not t.replies and t.root is not None]
    alone = "no replies" if any(t.replies for t in threads.values()) else "unthreaded message"
    for thread_ts, thread in _conversations(standalone, threads, workspace, options,
                                            report, alone):
        threads[thread_ts] = thread
    for thread_ts in sorted(threads, key=ts_key):
        thread = threads[thread_ts]
        if thread.root is None and not thread.replies:
            continue  # only skipped messages; already counted
        try:
            case = thread_case(thread_ts, thread, channel, workspace, options, report)
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            # One thread with a field of an unexpected shape: skip it, read the rest.
            report.problem(export.label(folder), f"thread {thread_ts}: unusable "
                                                 f"({type(exc).__name__}: {str(exc)[:80]}); "
                                                 "skipped, fix the messages")
            report.skip("invalid thread")
            continue
        if case is not None:
            yield case


def _message_or_blank(raw: dict[str, Any], ts: str, workspace: Workspace) -> Message:
    # A message of an odd shape joins no conversation; thread_case reports it on its own.
    try:
        return to_message(raw, workspace)
    except (TypeError, ValueError, AttributeError, OverflowError):
        return Message(text="", ts=ts)


def _conversations(
    standalone: list[str], threads: dict[str, Thread], workspace: Workspace,
    options: ReadOptions, report: ReadReport, alone: str,
) -> Iterator[tuple[str, Thread]]:
    """Conversations recovered from messages without a thread, each as one thread.

    A message that stays alone is no case, unless someone marked it resolved (an old
    export's way to keep a question whose answer lived elsewhere).
    """
    order = sorted(standalone, key=ts_key)
    messages = [_message_or_blank(threads[ts].root or {}, ts, workspace) for ts in order]
    wanted = set(options.rules.reactions)
    for group in split_conversations(messages):
        members = [order[i] for i in group]
        people = {messages[i].author_id or messages[i].author for i in group}
        if len(group) > 1 and len(people) > 1:
            merged = Thread(root=threads[members[0]].root)
            for ts in members[1:]:
                reply = threads.pop(ts).root
                if reply is not None:
                    merged.replies[ts] = reply
            yield members[0], merged
            continue
        for index in group:
            if not wanted.intersection(messages[index].reactions):
                report.skip(alone)
                threads.pop(order[index])


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
