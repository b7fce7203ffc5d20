"""When a failed delivery is tried again: exponential backoff with jitter.

Attempt ``n`` (1 = the first retry) waits between half and all of
``min(cap, base * 2 ** (n - 1))`` seconds ("equal jitter"): the schedule doubles, never goes
below half of it (a receiver coming back is not hammered at once by every sender), and
deliveries that failed together spread out."""

from __future__ import annotations

from collections.abc import Callable


def delay_s(attempt: int, base_s: float, cap_s: float, random: Callable[[], float]) -> float:
    """Seconds to wait before retry ``attempt`` (>= 1); ``random()`` is in [0, 1)."""
    if attempt < 1:
        raise ValueError(f"attempt {attempt}, want >= 1")
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, 62))
    return ceiling / 2 + ceiling / 2 * random()
