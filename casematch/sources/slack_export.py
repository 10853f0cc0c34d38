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

from casematch.cases import Case, Visibility
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
)

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
                workspace.users[str(user["id"])] = user_name(user) or str(user["id"])
    return workspace


def _collect(export: _Export, folder: str, report: ReadReport) -> dict[str, Thread]:
    """Group every message of one channel by thread, across all its day files."""
    threads: dict[str, Thread] = {}
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
            if not raw.get("ts"):
                report.problem(export.label(relative), "a message without 'ts' was skipped")
                report.skip("no ts")
                continue
            ts = str(raw["ts"])
            thread_ts = str(raw.get("thread_ts") or ts)
            skipped = threads.setdefault(thread_ts, Thread()).add(raw, ts, thread_ts)
            if skipped:
                report.skip(skipped)
    return threads


def _channel_cases(
    export: _Export,
    channel: tuple[str, str, Visibility],
    workspace: Workspace,
    options: ReadOptions,
    report: ReadReport,
) -> Iterator[Case]:
    channel_id, channel_name, _ = channel
    # Exports name folders after channels; some tools use the id instead.
    folder = channel_name if export.day_files(channel_name) else channel_id
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
        case = thread_case(thread_ts, thread, channel, workspace, options, report)
        if case is not None:
            yield case


def _conversations(
    standalone: list[str], threads: dict[str, Thread], workspace: Workspace,
    options: ReadOptions, report: ReadReport, alone: str,
) -> Iterator[tuple[str, Thread]]:
    """Conversations recovered from messages without a thread, each as one thread.

    A message that stays alone is no case, unless someone marked it resolved (an old
    export's way to keep a question whose answer lived elsewhere).
    """
    order = sorted(standalone, key=ts_key)
    messages = [to_message(threads[ts].root or {}, workspace) for ts in order]
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
