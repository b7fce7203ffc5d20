"""The issuance benchmarks' declarations (issue 22, item 3) and the /proc CPU accounting
their detail is built from. The benchmarks themselves run in `make bench`."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from sealmark_app.bench import issuance, registry
from sealmark_app.bench.registry import Bar


def test_issuance_lines_hold_the_issue_bars() -> None:
    benches = registry.registered()
    assert benches["issue_codes_per_s"].baseline == "ed25519_sign_per_s"
    assert benches["issue_codes_per_s"].bar == Bar(1.5, of="ratio")
    assert benches["issue_500k_rss_mb"].bar == Bar(512, at_least=False)
    assert benches["issue_500k_rss_mb"].baseline is None


def test_cpu_of_a_process_tree_counts_live_and_reaped_children() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    own_before, kids_before = issuance._tree_cpu_s(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", burn + "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while issuance._tree_cpu_s(os.getpid())[1] - kids_before < 0.25:
            assert time.monotonic() < deadline, "the live child's CPU was never counted"
            time.sleep(0.05)
        assert child.pid in issuance._children(os.getpid())
    finally:
        child.kill()
        child.wait()
    subprocess.run([sys.executable, "-c", burn], check=True)  # reaped: cutime, cstime
    own_after, kids_after = issuance._tree_cpu_s(os.getpid())
    assert kids_after - kids_before >= 0.5  # both children, neither alive now
    assert own_after >= own_before
    assert issuance._tree_cpu_s(2**22 + 1) == (0.0, 0.0)  # no such process
