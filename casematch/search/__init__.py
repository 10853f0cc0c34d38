"""Ranking over one opened generation: retrieve (dense + lexical), fuse, collapse."""

from __future__ import annotations

from casematch.search.options import DEFAULT_OPTIONS, MODES, SearchOptions
from casematch.search.retrieve import search, snippet

__all__ = ["DEFAULT_OPTIONS", "MODES", "SearchOptions", "search", "snippet"]
