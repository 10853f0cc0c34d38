"""The Slack responder: answers new cases in swarm channels, captures resolved threads.

Built on Bolt for Python (`slack_bolt`); `casematch slack serve` is the entry point.
Importing this package does not import Bolt: `casematch.slack.app` does.
"""

from __future__ import annotations

from casematch.slack.feedback import feedback_queries
from casematch.slack.settings import SlackSettings

__all__ = ["SlackSettings", "feedback_queries"]
