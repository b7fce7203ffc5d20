"""Structured logs: JSON lines in production, readable lines on a terminal.

Secrets never reach a log: PINs, keys and tokens are not passed to the logger, and a processor
drops any event key that looks like one as a second line of defence.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = ("pin", "token", "secret", "password", "private_key", "pepper", "passphrase")


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_KEYS):
            event[key] = "[redacted]"
    return event


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing. Bound to the object
    itself, a logger cached on first use kept a stream that was later replaced and closed
    (pytest's capture of one test, when the CLI runs in-process): every later log line
    raised ValueError."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    """Configure structlog and the standard library logging once, at process start."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr, format="%(message)s")
