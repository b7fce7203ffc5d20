"""One round trip for the requests that arrive together.

A serving process answers several verifications at once, and each of them reads one code from
PostgreSQL and records one scan in Redis. On a busy box the cost of those calls is mostly the
round trip (two wake-ups, two system calls on each side, the server's per-statement work), not
what is asked. :class:`Coalescer` lets the callers that arrive while a round trip is under way
share the next one (flat combining):

- A caller finding no round trip under way makes one at once, for itself: an idle process adds
  no latency and no hand-off to another thread.
- A caller finding one under way queues its item and waits. When the round trip ends, its maker
  wakes the first waiting caller, which takes every queued item (up to ``max_batch``) into the
  next round trip and answers all of them.

A batch either answers each of its items or raises; a raised exception reaches every caller of
that batch, each in its own thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    __slots__ = ("done", "error", "item", "result", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
        self.wake: threading.Event | None = None  # only a caller that waits needs one
        self.done = False  # answered (result or error); woken without it: lead the next batch
        self.result: R | None = None
        self.error: BaseException | None = None


class Coalescer(Generic[T, R]):
    """``submit(item)`` returns ``run([... item ...])``'s answer for ``item``; items submitted
    while a batch is running go together into the next. ``run`` returns one answer per item,
    in order."""

    def __init__(self, run: Callable[[list[T]], Sequence[R]], max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run = run
        self._max = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Slot[T, R]] = []
        self._busy = False

    @property
    def pending(self) -> int:
        """Items waiting for a batch (not the one running)."""
        with self._lock:
            return len(self._queue)

    def submit(self, item: T) -> R:
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            if self._busy:
                slot.wake = threading.Event()
            self._busy = True
            self._queue.append(slot)
        if slot.wake is not None:
            slot.wake.wait()
            if slot.done:
                return self._outcome(slot)
        self._lead()
        return self._outcome(slot)

    def _lead(self) -> None:
        """Run one batch from the head of the queue (which holds this caller's slot), answer
        it, then hand the lead to the next waiting caller, or stand down."""
        with self._lock:
            batch = self._queue[: self._max]
            del self._queue[: self._max]
        try:
            results = self._run([s.item for s in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} got {len(results)} answers")
        except BaseException as exc:
            for slot in batch:
                slot.error = exc
        else:
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
        for slot in batch:
            slot.done = True
            if slot.wake is not None:
                slot.wake.set()
        with self._lock:
            if self._queue:
                head = self._queue[0].wake
                assert head is not None  # queued while a batch ran
                head.set()  # not done: that caller leads the next batch
            else:
                self._busy = False

    @staticmethod
    def _outcome(slot: _Slot[T, R]) -> R:
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]
