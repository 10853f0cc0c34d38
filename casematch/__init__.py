"""casematch: find the past resolved support cases most like a new one."""

from __future__ import annotations

from casematch.cases import Case, Filters, Match, Message, Visibility
from casematch.config import Settings
from casematch.encoders import Encoder, load_encoder
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
from casematch.search import SearchOptions
from casematch.sources import ReadOptions, ReadReport, read_source
from casematch.version import __version__

__all__ = [
    "Case",
    "CaseIndex",
    "CasematchError",
    "ConfigError",
    "Encoder",
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
    "SearchOptions",
    "Settings",
    "UpdateResult",
    "Visibility",
    "__version__",
    "load_encoder",
    "read_source",
]
