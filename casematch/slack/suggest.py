"""Text of a new case -> the few resolved cases worth showing in one channel.

`LiveIndex` keeps the responder on the newest generation: a nightly reindex or a live
capture writes a new one and switches CURRENT; the responder notices within a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from casematch.cases import Match
from casematch.encoders import Encoder
from casematch.index import CaseIndex
from casematch.slack.privacy import may_show, visible_matches
from casematch.slack.settings import MAX_RESULTS, SlackSettings

# Extra candidates fetched so the privacy filter rarely leaves fewer than max_results.
_HEADROOM = 7
RELOAD_CHECK_S = 1.0


class LiveIndex:
    """The current generation of an index, reopened when CURRENT names a new one."""

    def __init__(self, root: Path, *, model: str | None = None,
                 encoder: Encoder | None = None, device: str = "cpu",
                 runtime: str = "auto") -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._index = CaseIndex.open(self.root, model=model, encoder=encoder, device=device,
                                     runtime=runtime)
        self._checked = time.monotonic()

    def get(self) -> CaseIndex:
        """The newest generation; at most one stat + read of CURRENT per second."""
        now = time.monotonic()
        if now - self._checked < RELOAD_CHECK_S:
            return self._index
        with self._lock:
            if now - self._checked >= RELOAD_CHECK_S:
                self._checked = now
                self._reload_if_changed()
            return self._index

    def refresh(self) -> CaseIndex:
        """Reopen now if a new generation exists (after our own capture, say)."""
        with self._lock:
            self._checked = time.monotonic()
            self._reload_if_changed()
            return self._index

    def _reload_if_changed(self) -> None:
        if self._index.is_current():
            return
        # The loaded encoder is reused: reopening must not reload the model. The old
        # generation is left to the garbage collector, since a search in another thread
        # may still be reading it.
        self._index = CaseIndex.open(self.root, encoder=self._index.encoder)


@dataclass(frozen=True, slots=True)
class Suggestions:
    matches: list[Match]


class Suggester:
    """One library call for every handler: search, keep what the channel may see, cut."""

    def __init__(self, index: LiveIndex, slack: SlackSettings,
                 observe: Callable[[float], None] | None = None) -> None:
        self.index = index
        self.slack = slack
        self._observe = observe  # gets each search's seconds (the latency histogram)

    def suggest(self, text: str, channel: str, *, min_score: float | None = None) -> Suggestions:
        started = time.perf_counter()
        try:
            return self._suggest(text, channel, min_score)
        finally:
            if self._observe is not None:
                self._observe(time.perf_counter() - started)

    def _suggest(self, text: str, channel: str, min_score: float | None) -> Suggestions:
        floor = self.slack.min_score if min_score is None else min_score
        wanted = min(self.slack.max_results, MAX_RESULTS)  # what one message can show
        index = self.index.get()
        matches = index.search(text, k=wanted + _HEADROOM)
        shown = [self._without_hidden_duplicates(index, m, channel)
                 for m in visible_matches(matches, channel, self.slack.private_cases)]
        kept = [m for m in shown if m.score >= floor][:wanted]
        return Suggestions([replace(m, rank=n) for n, m in enumerate(kept, 1)])

    def _without_hidden_duplicates(self, index: CaseIndex, match: Match, channel: str) -> Match:
        """A private case folded into a public one as a duplicate must not be counted.

        Nor dated: "seen 3 times, last on <date>" would tell the channel when the private
        case happened, so `last_seen` is taken again over the cases that stay.
        """
        if not match.duplicates:
            return match
        kept, dates = [], [match.case.created_at]
        for dup in match.duplicates:
            case = index.get(dup)
            if case is None or may_show(case, channel, self.slack.private_cases):
                kept.append(dup)
                dates.append(case.created_at if case is not None else None)
        if tuple(kept) == match.duplicates:
            return match
        known = [d for d in dates if d is not None]
        return replace(match, duplicates=tuple(kept),
                       last_seen=max(known) if kept and known else None)
