"""The responder's work queue: bounded, drained on shutdown.

Bolt acks a request and hands it to a listener; the listener records the work as pending
in `SlackState` and puts it here. Worker threads run it after the ack, so a search never
delays an ack. The queue is bounded where the bound can push back: when `maxsize` jobs
wait, the HTTP gate answers new events 503 (Slack redelivers them later) instead of
letting memory and latency grow without limit. A listener itself never waits for room:
it runs on Bolt's threads, and a blocked listener delays the ack of the next slash
command or click (which Slack does not redeliver). What got past the gate is queued up
to `2 * maxsize`; beyond that a job stays pending in the state and is resumed at the
next start.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], None]


class WorkQueue:
    def __init__(self, workers: int = 4, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        # The hard limit; the gate's 503s keep the queue near maxsize.
        self._queue: queue.Queue[Job | None] = queue.Queue(2 * maxsize)
        self._busy = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._accepting = True
        self._threads = [threading.Thread(target=self._work, name=f"casematch-work-{n}",
                                          daemon=True) for n in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> bool:
        """Queue `job` without waiting. False if refused (over the hard limit, or closed):
        the work stays pending in the state and is resumed at the next start."""
        if not self._accepting:
            return False
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            log.warning("work queue over its hard limit: a job stays pending")
            return False
        return True

    def submit_when_room(self, job: Job, poll_s: float = 0.05) -> bool:
        """Queue `job` once fewer than `maxsize` jobs wait (for feeding resumed work in
        without crowding out new requests). False if the queue closed meanwhile."""
        while self._accepting:
            if self._queue.qsize() < self.maxsize:
                return self.submit(job)
            time.sleep(poll_s)
        return False

    def depth(self) -> int:
        """Jobs waiting plus jobs running."""
        return self._queue.qsize() + self._busy

    def full(self) -> bool:
        return self._queue.qsize() >= self.maxsize

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._busy += 1
            try:
                job()
            except Exception:  # logged, not raised: nobody waits on this thread
                log.exception("a queued job failed")
            finally:
                with self._lock:
                    self._busy -= 1
                    self._queue.task_done()
                    self._idle.notify_all()

    def drain(self, deadline_s: float) -> bool:
        """Refuse new jobs and wait up to `deadline_s` for queued and running ones.
        True if everything finished; what did not stays pending in the state."""
        self._accepting = False
        end = time.monotonic() + deadline_s
        with self._lock:
            while self._queue.unfinished_tasks:
                left = end - time.monotonic()
                if left <= 0:
                    log.warning("shutdown deadline reached with %d jobs unfinished",
                                self._queue.unfinished_tasks)
                    return False
                self._idle.wait(left)
        for _ in self._threads:
            self._queue.put(None)
        return True
