"""Log setup for `casematch slack serve`: plain lines, or one JSON object a line."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "message"} (+ "error" with the traceback) per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup(json_lines: bool = False, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Bolt's warnings about unhandled requests carry the whole payload (message text):
    # only its errors are let through.
    logging.getLogger("slack_bolt").setLevel(logging.ERROR)
    # waitress logs each socket error and queue warning at WARNING; keep those.
    logging.getLogger("waitress").setLevel(logging.WARNING)
