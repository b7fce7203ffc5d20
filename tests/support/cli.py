"""Run the ``sealmark`` console script in a subprocess, as a user would, on given servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def sealmark(
    *args: str, dsn: str, redis_url: str, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``sealmark ARGS…`` with only the given SEALMARK_* settings (and ``env_extra``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")}
    env.update(
        SEALMARK_DATABASE_URL=dsn, SEALMARK_REDIS_URL=redis_url, SEALMARK_LOG_LEVEL="WARNING"
    )
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "sealmark_app.cli.main", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
