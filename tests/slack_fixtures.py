"""Builders for small Slack workspace exports written into a test's tmp_path."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

USERS = [
    {"id": "U1", "name": "ann", "real_name": "Ann Asker",
     "profile": {"display_name": "Ann", "real_name": "Ann Asker"}},
    {"id": "U2", "name": "bob", "real_name": "Bob Helper",
     "profile": {"display_name": "", "real_name": "Bob Helper"}},
    {"id": "U3", "name": "cy", "profile": {}},
]


def msg(ts: str, text: str = "", user: str = "U1", **extra: Any) -> dict[str, Any]:
    """One message as Slack exports it today."""
    return {"type": "message", "user": user, "text": text, "ts": ts, **extra}


def root(ts: str, text: str, user: str = "U1", replies: int = 1, **extra: Any) -> dict[str, Any]:
    return msg(ts, text, user, thread_ts=ts, reply_count=replies, **extra)


def reply(ts: str, thread_ts: str, text: str, user: str = "U2", poster: str = "U1",
          **extra: Any) -> dict[str, Any]:
    return msg(ts, text, user, thread_ts=thread_ts, parent_user_id=poster, **extra)


def reaction(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "users": ["U1"], "count": 1} for n in names]


def write_export(
    folder: Path,
    days: Mapping[str, Mapping[str, Sequence[Any] | str | bytes]],
    *,
    channels: Sequence[Mapping[str, Any]] | None = None,
    groups: Sequence[Mapping[str, Any]] | None = None,
    users: Sequence[Mapping[str, Any]] | None = USERS,
) -> Path:
    """Write an export: `days` maps channel name -> day (YYYY-MM-DD) -> messages.

    A day given as str or bytes is written as is (for malformed files). Channels not
    listed in `channels`/`groups` get a public entry with id "C" + upper-cased name.
    """
    folder.mkdir(parents=True, exist_ok=True)
    listed = {c["name"] for c in [*(channels or ()), *(groups or ())]}
    public = list(channels or ()) + [
        {"id": "C" + name.upper().replace("-", ""), "name": name, "members": []}
        for name in days if name not in listed
    ]
    (folder / "channels.json").write_text(json.dumps(public))
    if groups is not None:
        (folder / "groups.json").write_text(json.dumps(list(groups)))
    if users is not None:
        (folder / "users.json").write_text(json.dumps(list(users)))
    for name, per_day in days.items():
        (folder / name).mkdir(exist_ok=True)
        for day, content in per_day.items():
            target = folder / name / f"{day}.json"
            if isinstance(content, bytes):
                target.write_bytes(content)
            elif isinstance(content, str):
                target.write_text(content)
            else:
                target.write_text(json.dumps(list(content)))
    return folder


def zip_folder(folder: Path, target: Path, *, prefix: str = "",
               compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """Zip an export folder, optionally under one top-level folder (`prefix`)."""
    with zipfile.ZipFile(target, "w", compression=compression) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
    return target
