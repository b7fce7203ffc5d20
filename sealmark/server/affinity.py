"""One CPU per serving process (``SEALMARK_CPU_AFFINITY``).

A serving process is one interpreter: one thread runs Python at a time, and a call passes
between several threads (gRPC's poller, a handler, the scan log's flusher) and releases the
interpreter around every blocking read. When those threads sit on different CPUs, each hand-off
is a cross-CPU wake-up, and on a virtual machine that is dear: measured on the 2-core
development box, a bare gRPC echo server answered about 7,800 calls/s free to use both cores
and about 15,000 when held to one, and ``sealmark serve issuer verifier`` with two processes went
from about 2,300 to about 3,000 verifications/s when each process was held to a core of its own.
So when ``SEALMARK_PROCESSES`` > 1, ``auto`` (the default) runs serving process n on the n-th CPU
this server may use (wrapping round when there are more processes than CPUs). A single process
is left free unless the setting names a CPU; ``off`` leaves every process free.

A process is pinned last, once everything it starts at start-up is running: the embedded
servers and the copies (started by the first process) keep the CPUs it was given, and so does
the thread that restarts a copy that died. Minting workers the Issuer starts later get the
server's CPUs from before the pinning back (:func:`unpinned_cpus`), so they still spread.
"""

from __future__ import annotations

import os
from collections.abc import Collection

import structlog

from sealmark.errors import InvalidArgument

log = structlog.get_logger("sealmark.serve")

SETTING = "SEALMARK_CPU_AFFINITY"
_unpinned: frozenset[int] | None = None  # this process's CPUs before pin_process, if it ran


def usable_cpus() -> list[int]:
    """The CPUs this process may run on, in order (its affinity mask; a container or
    ``taskset`` can make it smaller than the machine)."""
    return sorted(os.sched_getaffinity(0))


def unpinned_cpus() -> frozenset[int]:
    """The CPUs this process could use before :func:`pin_process` (all it may use if it was
    not pinned): what the processes it starts, other than its copies, should spread over."""
    return _unpinned if _unpinned is not None else frozenset(os.sched_getaffinity(0))


def plan(setting: str, processes: int) -> list[int | None]:
    """The CPU of each serving process (index 0 is the first process), ``None`` for one left
    free. ``setting`` is ``auto``, ``off`` or a CPU number (what the first process gives its
    copies). InvalidArgument, naming the setting, for a CPU this process may not use or a CPU
    number with more than one process."""
    if setting == "off":
        return [None] * processes
    cpus = usable_cpus()
    if setting == "auto":
        if processes < 2:
            return [None] * processes
        return [cpus[n % len(cpus)] for n in range(processes)]
    cpu = int(setting)
    if processes > 1:
        raise InvalidArgument(
            SETTING, "a CPU number holds one process: with SEALMARK_PROCESSES > 1 use auto or off"
        )
    if cpu not in cpus:
        raise InvalidArgument(SETTING, f"CPU {cpu} is not one this process may use ({cpus})")
    return [cpu]


def pin_process(cpu: int, *, leave: Collection[int] = ()) -> None:
    """Hold every thread of this process but those in ``leave`` (native thread ids) to ``cpu``;
    threads started later inherit their creator's affinity (Linux keeps one per thread).
    InvalidArgument, naming the setting, when the system refuses that CPU."""
    global _unpinned
    if _unpinned is None:
        _unpinned = frozenset(os.sched_getaffinity(0))
    for tid in os.listdir("/proc/self/task"):
        if int(tid) in leave:
            continue
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except ProcessLookupError:  # the thread ended meanwhile
            continue
        except OSError as exc:
            raise InvalidArgument(SETTING, f"cannot run on CPU {cpu}: {exc.strerror}") from exc
    log.info("serve.pinned", cpu=cpu)
