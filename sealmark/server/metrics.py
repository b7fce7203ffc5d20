"""Prometheus metrics of the gRPC layer, served on the metrics HTTP port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RPC_TOTAL = Counter(
    "sealmark_rpc_total", "RPCs handled, by method and status code", ["method", "code"]
)
RPC_SECONDS = Histogram(
    "sealmark_rpc_seconds",
    "RPC handling time (for streams: until the stream ends)",
    ["method"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RPC_IN_FLIGHT = Gauge("sealmark_rpc_in_flight", "RPCs being handled now")
