"""casematch: find the past resolved support cases most like a new one."""

from __future__ import annotations

__version__ = "0.1.0"

from casematch.cases import Case, Match, Message, Visibility
from casematch.config import Settings
from casematch.errors import (
    CasematchError,
    ConfigError,
    IndexFormatError,
    IndexLockedError,
    InputError,
    MissingDependencyError,
    ModelMismatchError,
)
from casematch.index import CaseIndex, UpdateResult
from casematch.search import Filters
from casematch.sources import ReadOptions, ReadReport, read_source

__all__ = [
    "Case",
    "CaseIndex",
    "CasematchError",
    "ConfigError",
    "Filters",
    "IndexFormatError",
    "IndexLockedError",
    "InputError",
    "Match",
    "Message",
    "MissingDependencyError",
    "ModelMismatchError",
    "ReadOptions",
    "ReadReport",
    "Settings",
    "UpdateResult",
    "Visibility",
    "__version__",
    "read_source",
]
