"""Coalescer: callers arriving while a batch runs share the next one, each gets its own answer,
a failed batch fails its own callers only, and no caller is left waiting."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from verifier.coalesce import Coalescer

WAIT_S = 10.0


class _Gated:
    """A batch function whose first call holds until released, recording every batch."""

    def __init__(self, fail_on: set[int] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()
        self._fail_on = fail_on or set()

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.first_started.set()
            assert self.release.wait(WAIT_S)
        if self._fail_on & set(items):
            raise LookupError(f"batch {items}")
        return [i * 10 for i in items]


def _queued(coalescer: Coalescer[int, int], count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while coalescer.pending < count:
        assert time.monotonic() < deadline, f"{coalescer.pending} of {count} queued"
        time.sleep(0.001)


def test_an_idle_coalescer_runs_the_caller_alone_in_its_own_thread() -> None:
    threads: list[str] = []

    def run(items: list[int]) -> list[int]:
        threads.append(threading.current_thread().name)
        return [-i for i in items]

    coalescer = Coalescer(run)
    assert coalescer.submit(3) == -3
    assert coalescer.submit(4) == -4
    assert threads == [threading.current_thread().name] * 2  # two batches, in this thread


def test_callers_arriving_during_a_batch_share_the_next_one() -> None:
    run = _Gated()
    coalescer = Coalescer(run)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(coalescer.submit, 1)
        assert run.first_started.wait(WAIT_S)
        rest = {i: pool.submit(coalescer.submit, i) for i in range(2, 9)}
        _queued(coalescer, 7)
        run.release.set()
        assert first.result(WAIT_S) == 10
        assert {i: f.result(WAIT_S) for i, f in rest.items()} == {i: i * 10 for i in rest}
    assert run.batches[0] == [1]
    assert sorted(run.batches[1]) == list(range(2, 9))
    assert len(run.batches) == 2


def test_a_batch_is_never_larger_than_max_batch() -> None:
    run = _Gated()
    coalescer = Coalescer(run, max_batch=3)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(coalescer.submit, 0)
        assert run.first_started.wait(WAIT_S)
        rest = [pool.submit(coalescer.submit, i) for i in range(1, 8)]
        _queued(coalescer, 7)
        run.release.set()
        assert [f.result(WAIT_S) for f in [first, *rest]] == [i * 10 for i in range(8)]
    assert [len(b) for b in run.batches] == [1, 3, 3, 1]


def test_a_failed_batch_fails_its_own_callers_only() -> None:
    run = _Gated(fail_on={2})
    coalescer = Coalescer(run, max_batch=2)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(coalescer.submit, 1)
        assert run.first_started.wait(WAIT_S)
        second = pool.submit(coalescer.submit, 2)
        _queued(coalescer, 1)
        third = pool.submit(coalescer.submit, 3)
        _queued(coalescer, 2)
        fourth = pool.submit(coalescer.submit, 4)
        fifth = pool.submit(coalescer.submit, 5)
        _queued(coalescer, 4)
        run.release.set()
        assert first.result(WAIT_S) == 10
        for failed in (second, third):  # the batch [2, 3]
            with pytest.raises(LookupError, match=r"batch \[2, 3\]"):
                failed.result(WAIT_S)
        assert (fourth.result(WAIT_S), fifth.result(WAIT_S)) == (40, 50)


def test_a_batch_answering_the_wrong_number_of_items_is_an_error() -> None:
    coalescer: Coalescer[int, int] = Coalescer(lambda items: items[:-1])
    with pytest.raises(RuntimeError, match="a batch of 1 got 0 answers"):
        coalescer.submit(1)
    assert coalescer.pending == 0
    assert Coalescer(lambda items: [i + 1 for i in items]).submit(1) == 2


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Coalescer(lambda items: items, max_batch=0)


def test_many_threads_each_get_their_own_answer() -> None:
    """Free running: whatever the interleaving, every call is answered with its own result,
    exactly once, and batches hold every item once."""
    seen: list[int] = []
    sizes: list[int] = []
    lock = threading.Lock()

    def run(items: list[int]) -> list[int]:
        with lock:
            seen.extend(items)
            sizes.append(len(items))
        time.sleep(random.random() / 2000)
        return [i * i for i in items]

    coalescer = Coalescer(run, max_batch=5)

    def caller(n: int) -> list[tuple[int, int]]:
        return [(i, coalescer.submit(i)) for i in range(n * 1000, n * 1000 + 200)]

    with ThreadPoolExecutor(12) as pool:
        answers = [pair for part in pool.map(caller, range(12)) for pair in part]
    assert all(result == item * item for item, result in answers)
    assert sorted(seen) == sorted(item for item, _ in answers)
    assert len(seen) == len(answers) == 2400
    assert all(1 <= size <= 5 for size in sizes)  # max_batch
    assert coalescer.pending == 0
