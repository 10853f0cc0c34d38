"""Prometheus metrics of one responder, served at GET /metrics.

Each responder has its own registry (not prometheus_client's global one), so two apps in
one process (tests, a benchmark) count separately.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REPLY_OUTCOMES = ("posted", "updated", "deleted", "failed")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter("casematch_slack_events_received", "Slack requests received, "
                              "by kind (message, reaction, mention, command, action).",
                              ["kind"], registry=self.registry)
        self.deduplicated = Counter("casematch_slack_events_deduplicated",
                                    "Deliveries dropped as retries or a twin replica's.",
                                    ["kind"], registry=self.registry)
        self.replies = Counter("casematch_slack_replies", "Threaded replies, by outcome.",
                               ["outcome"], registry=self.registry)
        for outcome in REPLY_OUTCOMES:
            self.replies.labels(outcome)
        self.search_seconds = Histogram(
            "casematch_slack_search_seconds", "Time to search and filter one query.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry)
        self.queue_depth = Gauge("casematch_slack_queue_depth",
                                 "Jobs queued or running on the work queue.",
                                 registry=self.registry)
        self.index_generation = Gauge("casematch_index_generation",
                                      "Number of the index generation being served.",
                                      registry=self.registry)
        self.index_age = Gauge("casematch_index_age_seconds",
                               "Seconds since the served generation was built.",
                               registry=self.registry)

    def watch(self, depth: Callable[[], int], generation: Callable[[], tuple[str, str]]
              ) -> None:
        """Gauges read at scrape time: queue depth, and (name, built_at) of the index."""
        self.queue_depth.set_function(depth)
        self.index_generation.set_function(lambda: _generation_number(generation()[0]))
        self.index_age.set_function(lambda: _age_s(generation()[1]))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _generation_number(name: str) -> float:
    digits = "".join(ch for ch in name if ch.isdigit())
    return float(digits) if digits else -1.0


def _age_s(built_at: str) -> float:
    try:
        return max(0.0, time.time() - datetime.fromisoformat(built_at).timestamp())
    except (TypeError, ValueError):
        return -1.0
