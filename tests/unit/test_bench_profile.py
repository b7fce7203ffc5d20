"""The verify profile's split of py-spy samples into parts (docs/benchmarks.md)."""

from __future__ import annotations

from sealmark_app.bench.profile import OTHER, THREADS, breakdown, part_of

GRPC = "_serve (grpc/_server.py:1314)"
USECASE = "Verifier.verify (verifier/usecases.py:165)"


def test_a_sample_counts_for_its_innermost_known_frame() -> None:
    assert part_of(f"{GRPC};{USECASE};verify (sealmark/crypto/signature.py:81)").startswith(
        "Ed25519"
    )
    assert part_of(f"{GRPC};{USECASE}") == "verify use case"
    # A lock taken by gRPC is gRPC's, one taken by the coalescer is the coalescer's.
    assert part_of(f"{GRPC};Condition.notify (threading.py:382)") == "gRPC server (grpcio)"
    coalesced = f"{USECASE};Coalescer._lead (verifier/coalesce.py:81);Event.wait (threading.py:629)"
    assert part_of(coalesced) == "round-trip sharing (coalescer)"
    threads = (
        "Thread._bootstrap_inner (threading.py:1045);_worker (concurrent/futures/thread.py:81)"
    )
    assert part_of(threads) == THREADS
    assert part_of("<module> (x.py:1)") == OTHER


def test_folded_lines_add_up_by_part() -> None:
    lines = [
        f"{GRPC};{USECASE} 5",
        f"{GRPC};{USECASE};execute (sealmark/storage/postgres.py:333) 3",
        f"{GRPC} 2",
        "not a line",
    ]
    parts = breakdown(lines)
    assert parts == {
        "verify use case": 5,
        "PostgreSQL client (psycopg2, pool, statement)": 3,
        "gRPC server (grpcio)": 2,
    }
