"""One root exception; each subclass's message says what to do about it.

The tree::

    CasematchError               every error casematch raises on purpose
    ├── InputError               a source file, line or record cannot be read (names it)
    ├── ConfigError              a setting is missing or unusable (names the setting)
    ├── IndexFormatError         an index is missing, incomplete, damaged or too old
    ├── ModelMismatchError       the index was built with another embedding model
    ├── MissingDependencyError   an optional heavy dependency is not installed
    └── IndexLockedError         another process is writing the index

Anything else that escapes is a bug.
"""

from __future__ import annotations

from pathlib import Path


class CasematchError(Exception):
    """Root of every error casematch raises on purpose."""


class InputError(CasematchError):
    """A source file cannot be read: the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(CasematchError):
    """A setting is missing or has a value casematch cannot use."""


class IndexFormatError(CasematchError):
    """An index directory is missing, incomplete or corrupted."""


class ModelMismatchError(CasematchError):
    """The index was built with another embedding model than the one asked for."""


class MissingDependencyError(CasematchError):
    """An optional heavy dependency (torch, faiss, ...) is not installed."""


class IndexLockedError(CasematchError):
    """Another process is already writing this index."""
