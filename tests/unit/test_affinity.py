"""Which CPU each serving process is given (SEALMARK_CPU_AFFINITY), and pinning itself, done in
child processes so the test process keeps its CPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from sealmark.errors import InvalidArgument
from sealmark.server import affinity
from sealmark.settings import load_settings


def test_auto_gives_each_process_the_next_usable_cpu_and_wraps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(affinity, "usable_cpus", lambda: [2, 5])
    assert affinity.plan("auto", 3) == [2, 5, 2]
    assert affinity.plan("auto", 2) == [2, 5]


def test_one_process_and_off_are_left_free() -> None:
    assert affinity.plan("auto", 1) == [None]
    assert affinity.plan("off", 3) == [None, None, None]


def test_a_cpu_number_holds_the_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(affinity, "usable_cpus", lambda: [0, 1])
    assert affinity.plan("1", 1) == [1]
    with pytest.raises(InvalidArgument) as refused:
        affinity.plan("7", 1)
    assert refused.value.field == "SEALMARK_CPU_AFFINITY"
    assert "CPU 7" in refused.value.reason
    with pytest.raises(InvalidArgument) as several:
        affinity.plan("1", 2)
    assert several.value.field == "SEALMARK_CPU_AFFINITY"


@pytest.mark.parametrize("value", ["all", "-1", "0,1", "", "12345"])
def test_the_setting_refuses_other_values(value: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        load_settings({"SEALMARK_CPU_AFFINITY": value})
    assert refused.value.field == "SEALMARK_CPU_AFFINITY"


_PIN = textwrap.dedent(
    """
    import json, os, sys, threading
    from sealmark.server import affinity
    stop = threading.Event()
    left = threading.Thread(target=stop.wait)
    other = threading.Thread(target=stop.wait)
    left.start(); other.start()
    before = sorted(os.sched_getaffinity(0))
    affinity.pin_process(int(sys.argv[1]), leave=[left.native_id])
    later = threading.Thread(target=lambda: print(json.dumps({
        "before": before,
        "main": sorted(os.sched_getaffinity(0)),
        "other": sorted(os.sched_getaffinity(other.native_id)),
        "left": sorted(os.sched_getaffinity(left.native_id)),
        "later": sorted(os.sched_getaffinity(0)),
        "unpinned": sorted(affinity.unpinned_cpus()),
    })))
    later.start(); later.join(); stop.set()
    """
)


def test_pinning_holds_every_thread_but_those_left_free() -> None:
    cpu = affinity.usable_cpus()[-1]
    done = subprocess.run(
        [sys.executable, "-c", _PIN, str(cpu)], capture_output=True, text=True, check=True
    )
    seen = json.loads(done.stdout.splitlines()[-1])  # after the log line
    assert seen["main"] == seen["other"] == seen["later"] == [cpu]
    assert seen["left"] == seen["before"] == seen["unpinned"] == sorted(os.sched_getaffinity(0))


def test_a_cpu_the_system_refuses_is_named() -> None:
    missing = max(affinity.usable_cpus()) + 1  # no such CPU here (or not ours)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom sealmark.server import affinity\n"
            "try:\n    affinity.pin_process(int(sys.argv[1]))\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc.field)",
            str(missing),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["InvalidArgument", "SEALMARK_CPU_AFFINITY"]


_MINT = textwrap.dedent(
    """
    import os, sys, time
    from issuer.minting import MintWorkers
    from sealmark.server import affinity
    wanted = sorted(os.sched_getaffinity(0))
    affinity.pin_process(int(sys.argv[1]))
    workers = MintWorkers(1, b"p" * 16, b"")
    workers.start()
    me = os.getpid()
    # A worker widens its own affinity once it has started: on a loaded machine that takes
    # a while, so look until it has (or 30 s have gone), not after a fixed sleep.
    deadline = time.monotonic() + 30
    while True:
        kids = [
            int(kid)
            for tid in os.listdir(f"/proc/{me}/task")
            for kid in open(f"/proc/{me}/task/{tid}/children").read().split()
            if b"spawn_main" in open(f"/proc/{kid}/cmdline", "rb").read()
        ]
        cpus = sorted({cpu for kid in kids for cpu in os.sched_getaffinity(kid)})
        if (kids and cpus == wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    print(len(kids), cpus)
    workers.close()
    """
)


def test_minting_workers_of_a_pinned_server_spread_over_its_cpus() -> None:
    cpu = affinity.usable_cpus()[0]
    done = subprocess.run(
        [sys.executable, "-c", _MINT, str(cpu)], capture_output=True, text=True, check=True
    )
    count, cpus = done.stdout.splitlines()[-1].split(" ", 1)
    assert count == "1"
    assert json.loads(cpus) == sorted(os.sched_getaffinity(0))
