"""A Sealmark server in its own process on a free port, as users run it: how the end-to-end
tests that kill, restart or reconfigure a server reach it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class IssuerProcess:
    """``sealmark serve issuer`` with ``env``; ``target`` is its gRPC host:port once up."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sealmark.cli.main", "serve", "issuer"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:
            lines.append(line)
            found = re.search(r"Sealmark is up: gRPC ([\d.]+:\d+)", line)
            if found:
                self.target = found.group(1)
                return
        raise AssertionError("issuer did not start:\n" + "".join(lines))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
