"""casematch: find the past resolved support cases most like a new one."""

from __future__ import annotations

from casematch.cases import Case, Match, Message, Visibility
from casematch.errors import CasematchError

__version__ = "0.1.0"

__all__ = ["Case", "CasematchError", "Match", "Message", "Visibility", "__version__"]
