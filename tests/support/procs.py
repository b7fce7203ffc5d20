"""Find processes that still live in a directory (their cwd is under it): how the tests
prove the embedded servers left nothing behind. postgres and redis-server change their process
titles, so command lines are not reliable; both run with their data dir as cwd."""

from __future__ import annotations

import os
from pathlib import Path


def processes_in(path: Path) -> list[int]:
    root = str(path.resolve())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd == root or cwd.startswith(root + "/"):
            found.append(int(entry))
    return found
