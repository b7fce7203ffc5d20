"""Capturing every log line in a test, whatever an earlier test configured.

``structlog.testing.capture_logs`` swaps only the processors: a level filter an earlier test set
up (``configure_logging("WARNING")`` in an in-process ``serve``) still drops ``info`` lines, and a
module logger cached on first use keeps that filter. This captures with no level filter and
puts the earlier configuration back afterwards."""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog


@contextmanager
def capture_all_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    saved = structlog.get_config()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    try:
        with structlog.testing.capture_logs() as logged:
            yield logged
    finally:
        structlog.configure(**saved)
