"""Consumer page benchmarks on the very server of ``verify_rps`` (its consumer page, same
processes, same stored codes), so the ratio to ``verify_rps`` is one run's: the same
verification through HTTP instead of gRPC. Eight clients on a keep-alive connection each (as
for gRPC) open a code's Digital Link, as JSON or as the HTML page, each code from one browser
session of its own; ``page_close_rps`` opens a new connection for every request, as phones
that scan once do. The load driver is :func:`closed_loop`, the same as gRPC's.
"""

from __future__ import annotations

import functools
import http.client
import json
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from sealmark_app.bench.load import LoadResult, closed_loop
from sealmark_app.bench.registry import Bar, Measurement, benchmark
from sealmark_app.bench.verification import CONCURRENCY, PROCESSES, SECONDS, _prepared

_GOOD = frozenset({"authentic", "authentic_seen_before"})


def _page_call(*, as_json: bool, close: bool) -> Callable[[int], object]:
    """GET code ``i % codes`` from the page; a connection per load thread (kept alive unless
    ``close``). Raises on anything but 200 (and, as JSON, a genuine verdict)."""
    prepared = _prepared()
    port = prepared.page_port
    local = threading.local()
    accept = "application/json" if as_json else "text/html"

    def call(i: int) -> object:
        n = i % len(prepared.payloads)
        link = urlsplit(prepared.payloads[n])
        conn: http.client.HTTPConnection | None = None if close else getattr(local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            local.conn = conn
        headers = {
            "Host": link.netloc,  # the brand's resolver host, as the phone sends it
            "Accept": accept,
            "Cookie": f"sm_session=bench-page-{n:011d}",
        }
        if close:
            headers["Connection"] = "close"
        try:
            conn.request("GET", f"{link.path}?{link.query}", headers=headers)
            reply = conn.getresponse()
            body = reply.read()
        except Exception:
            conn.close()
            local.conn = None
            raise
        if close:
            conn.close()
        if reply.status != 200:
            raise RuntimeError(f"page answered {reply.status}")
        if as_json and json.loads(body)["verdict"] not in _GOOD:
            raise RuntimeError(f"unexpected verdict {json.loads(body)['verdict']}")
        return reply.status

    return call


@functools.cache
def _peak(kind: str) -> LoadResult:
    call = _page_call(as_json=kind != "html", close=kind == "close")
    closed_loop(call, seconds=2.0, concurrency=CONCURRENCY)  # warm: connections, templates
    return closed_loop(call, seconds=SECONDS, concurrency=CONCURRENCY)


def _measurement(result: LoadResult, value: float, unit: str) -> Measurement:
    return Measurement(
        value,
        unit,
        None,
        {
            "p50_ms": round(result.percentile(0.5), 3),
            "p99_ms": round(result.percentile(0.99), 3),
            "rps": round(result.rps, 1),
            "errors": result.errors,
            "processes": PROCESSES,
        },
        result.histogram(),
    )


@benchmark(
    "page_json_rps",
    baseline="verify_rps",
    description=f"consumer page as JSON, GETs/s, {CONCURRENCY} keep-alive clients, a"
    " verification each; ratio to verify_rps of the same server",
    bar=Bar(0.8, of="ratio"),
)
def page_json_rps() -> Measurement:
    peak = _peak("json")
    return _measurement(peak, peak.rps, "rps")


@benchmark(
    "page_html_rps",
    baseline="verify_rps",
    description=f"consumer page as HTML, GETs/s, {CONCURRENCY} keep-alive clients, a"
    " verification each; ratio to verify_rps of the same server",
    bar=Bar(0.8, of="ratio"),
)
def page_html_rps() -> Measurement:
    peak = _peak("html")
    return _measurement(peak, peak.rps, "rps")


@benchmark(
    "page_p99_ms_half_load",
    description="consumer page (JSON, keep-alive) p99 at half the page_json_rps rate",
    bar=Bar(20, at_least=False),
)
def page_p99_ms_half_load() -> Measurement:
    rate = _peak("json").rps / 2
    result = closed_loop(
        _page_call(as_json=True, close=False),
        seconds=SECONDS,
        concurrency=CONCURRENCY,
        rate_per_s=rate,
    )
    return _measurement(result, result.percentile(0.99), "ms")


@benchmark(
    "page_close_rps",
    baseline="verify_rps",
    description=f"consumer page as JSON, GETs/s, {CONCURRENCY} clients, a new connection"
    " (Connection: close) per request; no bar",
)
def page_close_rps() -> Measurement:
    peak = _peak("close")
    return _measurement(peak, peak.rps, "rps")
