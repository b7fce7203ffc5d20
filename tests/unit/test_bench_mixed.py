"""The mixed-load line's plumbing (issue 22, item 4): pack lines take fresh cases and items
once each and stop at their deadline; the mixed lines report against their solo figures."""

from __future__ import annotations

import threading

import pytest

from sealmark_app.bench import mixed, registry
from sealmark_app.bench.mixed import ITEMS_PER_CASE, Stock, Throughput, pack_requests


def test_pack_lines_take_each_case_and_item_once() -> None:
    stock = Stock([f"3952012300000{n:05d}" for n in range(40)])
    taken: list[tuple[str, int]] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(10):
            got = stock.take()
            with lock:
                taken.append(got)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({case for case, _ in taken}) == 40
    assert sorted(first for _, first in taken) == [n * ITEMS_PER_CASE for n in range(40)]
    with pytest.raises(RuntimeError, match="ran out of fresh cases after 40"):
        stock.take()


def test_a_pack_line_stops_at_its_deadline() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    stock = Stock([f"39520123000000000{n}" for n in range(1, 9)])
    window = threading.BoundedSemaphore(8)
    # The clock reads 1, 2 (send), 3, 4 (send), 5: past the deadline.
    events = list(pack_requests(stock.take, 5.0, clock, window))
    assert [e.pack.parent.sscc for e in events] == stock.ssccs[:2]
    children = [c.sgtin.serial for c in events[1].pack.children]
    assert children == [f"M{n:013d}" for n in range(ITEMS_PER_CASE, 2 * ITEMS_PER_CASE)]
    assert events[0].pack.event_id == "mix-395201230000000001"
    assert Throughput(480, 2.0).per_s == 240 and Throughput(0, 0.0).per_s == 0


def test_a_pack_line_waits_for_its_acknowledgements() -> None:
    stock = Stock([f"39520123000000000{n}" for n in range(1, 9)])
    window = threading.BoundedSemaphore(3)
    events = pack_requests(stock.take, float("inf"), lambda: 0.0, window)
    sent = [next(events) for _ in range(3)]  # three in flight: the window is full
    assert not window.acquire(blocking=False)
    window.release()  # one acknowledged: one more may go
    sent.append(next(events))
    assert [e.pack.parent.sscc for e in sent] == stock.ssccs[:4]
    assert not window.acquire(blocking=False)


def test_the_mixed_lines_are_ratios_to_their_solo_figures() -> None:
    benches = registry.registered()
    assert benches["mixed_verify_p99_ms"].baseline == "solo_verify_p99_ms"
    assert benches["mixed_pack_links_per_s"].baseline == "solo_pack_links_per_s"
    assert benches["solo_verify_p99_ms"].run is mixed.solo_verify_p99_ms
