"""Live capture: a resolution reaction in a swarm channel puts its thread in the index now.

The thread is fetched with `conversations.replies`, turned into a case by the same code
that reads exports (`thread_to_case`), and upserted as a new generation. A nightly reindex
may hold the index's writer lock at that moment: the capture waits and retries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from casematch.cases import Case, Visibility
from casematch.errors import IndexLockedError
from casematch.slack.suggest import LiveIndex
from casematch.sources import ReadOptions
from casematch.sources.slack_api import pages
from casematch.sources.slack_threads import thread_to_case

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry delays for a locked index: 0.2 s doubling to 10 s, for up to ~10 minutes."""

    first_s: float = 0.2
    max_s: float = 10.0
    total_s: float = 600.0


def fetch_thread(client: Any, channel: str, ts: str) -> list[dict[str, Any]]:
    """Every message of the thread holding `ts` (a root or a reply), root first."""
    messages = pages(client, "conversations_replies", "messages", channel=channel, ts=ts)
    first = next(messages, None)
    if first is None:
        return []
    root = str(first.get("thread_ts") or first.get("ts"))
    if root != ts:  # we were given a reply: read from its root instead
        return list(pages(client, "conversations_replies", "messages", channel=channel, ts=root))
    return [first, *messages]


def channel_visibility(client: Any, channel: str) -> tuple[str, Visibility]:
    """(name, visibility) of a channel; private channels keep their member ids."""
    info = client.conversations_info(channel=channel).get("channel") or {}
    name = str(info.get("name") or channel)
    if not info.get("is_private"):
        return name, Visibility()
    members = tuple(str(m) for m in pages(client, "conversations_members", "members",
                                          channel=channel))
    return name, Visibility(private=True, members=members)


class Capturer:
    """Turns reacted threads into index updates, one writer at a time per process."""

    def __init__(self, index: LiveIndex, options: ReadOptions, *,
                 backoff: Backoff = Backoff(),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.index = index
        self.options = options
        self.backoff = backoff
        self._sleep = sleep
        # Two reactions at once in this process would only fight over the file lock.
        self._write = threading.Lock()

    def case_for(self, client: Any, channel: str, ts: str) -> Case | None:
        name, visibility = channel_visibility(client, channel)
        return thread_to_case(fetch_thread(client, channel, ts), channel_id=channel,
                              channel_name=name, visibility=visibility, options=self.options)

    def capture(self, client: Any, channel: str, ts: str) -> Case | None:
        """Fetch, convert and upsert; returns the case written (None if not a case)."""
        case = self.case_for(client, channel, ts)
        if case is None:
            return None
        self.upsert(case)
        return case

    def upsert(self, case: Case) -> None:
        delay, waited = self.backoff.first_s, 0.0
        with self._write:
            while True:
                try:
                    _, result = self.index.refresh().update([case])
                    break
                except IndexLockedError:
                    if waited >= self.backoff.total_s:
                        raise
                    log.info("index locked (a reindex?); capture of %s retries in %.1f s",
                             case.id, delay)
                    self._sleep(delay)
                    waited += delay
                    delay = min(delay * 2, self.backoff.max_s)
            self.index.refresh()
        log.info("captured %s: %s", case.id, result.to_dict())
