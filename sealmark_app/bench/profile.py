"""Where a verification's time goes: py-spy samples every serving process of the
``verify_rps`` server while the bench's load runs, and the samples are split by what the
innermost frame of ours or of a library is doing (the catalogue :data:`PARTS`).

``python -m sealmark_app.bench.profile [--seconds S] [--out DIR]`` profiles ``Verify`` and then
the same-I/O baseline on the same server, and prints for each the interpreter time per call
of every part, in µs (samples of the thread holding the interpreter lock, ``py-spy --gil``),
and the serving processes' CPU per call from /proc. The folded stacks are kept in ``DIR``
for a flame graph. Needs ptrace rights on the server (py-spy attaches to it).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

RATE_HZ = 250

# (part, pattern on a frame "function (file:line)"), first match from the innermost frame out.
PARTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("PostgreSQL client (psycopg2, pool, statement)", r"psycopg2|sealmark/storage/postgres"),
        ("Redis client (redis-py, hiredis)", r"[/(]redis/|hiredis"),
        ("Redis scan state (script arguments, reply)", r"verifier/redis_state"),
        ("PostgreSQL adapter (rows to StoredCode)", r"verifier/postgres"),
        ("round-trip sharing (coalescer)", r"verifier/coalesce"),
        ("scan log (queue, COPY text)", r"verifier/scanlog"),
        ("Ed25519 check (libsodium)", r"nacl/|sealmark/crypto/signature"),
        ("GS1 parse and checks", r"sealmark/gs1/"),
        ("rules and verdict", r"verifier/domain|verifier/proofs|verifier/messages"),
        ("verify use case", r"verifier/usecases"),
        ("answer message (servicer)", r"verifier/grpc_service|sealmark/server/wire"),
        ("request decode and checks (edge)", r"sealmark/server/(edge|validation)|protobuf"),
        ("interceptor (admission, metrics)", r"sealmark/server/interceptor|prometheus_client"),
        ("same-I/O baseline handler", r"sealmark_app/bench/io_service"),
        ("gRPC server (grpcio)", r"grpc/|grpc_"),
        ("logging", r"structlog|logging/"),
    )
)
OTHER = "other"
# Standard library frames count for the part that called them (a lock taken by gRPC is
# gRPC's); a stack of nothing else is the threads' own.
STDLIB = re.compile(r"\((threading|queue|contextlib|functools|weakref|abc)\.py|concurrent/futures")
THREADS = "threads (stdlib locks, pools)"


def part_of(stack: str) -> str:
    """The part of one folded stack (frames joined by ``;``, outermost first): that of its
    innermost frame in :data:`PARTS`, passing over standard library frames."""
    frames = stack.split(";")
    for frame in reversed(frames):
        if STDLIB.search(frame):
            continue
        for name, pattern in PARTS:
            if pattern.search(frame):
                return name
    return (
        THREADS if frames and all(STDLIB.search(f) or "_bootstrap" in f for f in frames) else OTHER
    )


def breakdown(folded: Iterable[str]) -> Counter[str]:
    """Samples per part, from py-spy's raw output lines (``stack count``)."""
    parts: Counter[str] = Counter()
    for line in folded:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack and count.isdigit():
            parts[part_of(stack)] += int(count)
    return parts


@dataclass(frozen=True)
class Profile:
    calls: int
    seconds: float
    samples: Counter[str]
    cpu_s: float  # serving processes' user + system CPU over the run

    def us_per_call(self, samples: int) -> float:
        return samples / RATE_HZ / self.calls * 1e6 if self.calls else float("nan")

    def table(self, title: str) -> str:
        total = sum(self.samples.values())
        rows = [
            f"{title}: {self.calls / self.seconds:,.0f} calls/s over {self.seconds:.1f} s;"
            f" serving processes' CPU {self.cpu_s / self.calls * 1e6:,.0f} µs per call,"
            f" interpreter (GIL held) {self.us_per_call(total):,.0f} µs per call",
            "| part | µs per call | share |",
            "|---|---|---|",
        ]
        for name, samples in self.samples.most_common():
            rows.append(f"| {name} | {self.us_per_call(samples):,.0f} | {samples / total:.0%} |")
        return "\n".join(rows)


def serving_pids(port: int) -> list[int]:
    """Every process listening on ``port`` (the copies share it: SO_REUSEPORT)."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    return sorted({int(pid) for pid in re.findall(r"pid=(\d+)", out.stdout)})


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _record_command(spy: str, pid: int, path: Path) -> list[str]:
    """py-spy sampling ``pid`` (the thread holding the GIL only, without pausing it) into
    ``path`` as folded stacks, until it gets SIGINT."""
    return [
        *(spy, "record", "--pid", str(pid), "--gil", "--nonblocking"),
        *("--rate", str(RATE_HZ), "--format", "raw", "--output", str(path), "--duration", "600"),
    ]


def profile_load(
    pids: list[int], run: Callable[[], tuple[int, float]], out: Path, name: str
) -> Profile:
    """Sample ``pids`` with py-spy while ``run()`` (which returns calls and seconds) runs."""
    spy = str(Path(sys.executable).with_name("py-spy"))
    files = [out / f"{name}-{pid}.folded" for pid in pids]
    before = sum(_cpu_s(pid) for pid in pids)
    recorders = [
        subprocess.Popen(
            _record_command(spy, pid, path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for pid, path in zip(pids, files, strict=True)
    ]
    time.sleep(1.0)  # attached
    start_cpu = sum(_cpu_s(pid) for pid in pids) if pids else before
    calls, seconds = run()
    cpu = sum(_cpu_s(pid) for pid in pids) - start_cpu
    for recorder in recorders:
        recorder.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
    for recorder in recorders:
        recorder.wait(30)
    samples: Counter[str] = Counter()
    for path in files:
        if path.exists():
            samples += breakdown(path.read_text().splitlines())
    return Profile(calls, seconds, samples, cpu)


def main(argv: list[str] | None = None) -> int:
    from sealmark_app.bench import verification
    from sealmark_app.bench.load import closed_loop

    parser = argparse.ArgumentParser(prog="python -m sealmark_app.bench.profile")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="sealmark-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    prepared = verification._start({"SEALMARK_VERIFY_HTTP_PORT": "0"})
    pids = serving_pids(int(prepared.suite.target.rsplit(":", 1)[1]))
    calls = verification._peak_calls(prepared)
    for name, title in (("verify", "Verify"), ("io", "same-I/O baseline")):

        def run(call: Callable[[int], object] = calls[name]) -> tuple[int, float]:
            result = closed_loop(call, seconds=args.seconds, concurrency=verification.CONCURRENCY)
            return result.calls, result.seconds

        print(profile_load(pids, run, out, name).table(title), end="\n\n", flush=True)
    print(f"folded stacks: {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
