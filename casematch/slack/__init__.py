"""The Slack responder: answers new cases in swarm channels, captures resolved threads.

Built on Bolt for Python (`slack_bolt`); `casematch slack serve` is the entry point.
Importing this package does not import Bolt: `casematch.slack.app` does.

What the responder stores, all in `slack.sqlite` beside the index generations:

- `events`: Slack event ids and when they arrived (dedup of retries and twin replicas);
  forgotten after a day.
- `pending`: the whole request of work claimed and not yet finished (message text
  included), so a restarted responder can redo it; deleted when the work is done, dropped
  after a day (work older than 10 minutes is not resumed).
- `queries`: one row per answered root message (channel, ts, our reply's ts, the newest
  edit's ts, a SHA-256 of the text) and per ephemeral question (/casematch, @mention). The
  text itself is kept for feedback votes only for `[slack] retention_days` (default 30),
  then blanked; it is blanked at once when the message is deleted.
- `feedback`: each Helpful / Not relevant vote (query id, case id, verdict, voter's user
  id) with the query text it was cast on, which is what `casematch eval --from-feedback`
  learns from; the text is blanked when the message is deleted.

Blanked text is overwritten in the file (`secure_delete`) and checkpointed out of the
write-ahead log. Logs never carry message text at INFO or above.
"""

from __future__ import annotations

from casematch.slack.feedback import feedback_queries
from casematch.slack.settings import SlackSettings

__all__ = ["SlackSettings", "feedback_queries"]
