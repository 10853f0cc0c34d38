"""Worker threads shared by every index in the process, one small pool per purpose."""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor


@functools.cache
def pool(purpose: str, workers: int) -> ThreadPoolExecutor:
    """The process's pool for `purpose` (created on first use)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"casematch-{purpose}")


# A forked child (a pre-forking server, multiprocessing) inherits the pools without their
# threads, and work handed to them would never run: the child starts pools of its own.
os.register_at_fork(after_in_child=pool.cache_clear)
