"""The embedded servers: start, answer, keep data across restarts, leave nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import redis

from sealmark.storage.embedded import start_embedded
from tests.support.procs import processes_in

pytestmark = pytest.mark.integration


def test_embedded_servers_keep_data_and_stop_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    servers = start_embedded(data)
    try:
        with psycopg2.connect(servers.database_url) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE kept (v text)")
            cur.execute("INSERT INTO kept VALUES ('hello')")
        with redis.Redis.from_url(servers.redis_url) as client:
            client.set("kept", "world")
        assert processes_in(data)
    finally:
        servers.stop()
    assert processes_in(data) == []

    again = start_embedded(data)
    try:
        with psycopg2.connect(again.database_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT v FROM kept")
            assert cur.fetchall() == [("hello",)]
        with redis.Redis.from_url(again.redis_url) as client:
            assert client.get("kept") == b"world"
    finally:
        again.stop()
    assert processes_in(data) == []


def test_a_second_handle_joins_and_does_not_stop_the_owner(tmp_path: Path) -> None:
    data = tmp_path / "data"
    owner = start_embedded(data)
    try:
        joined = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path;"
                "from sealmark.storage.embedded import start_embedded;"
                "s = start_embedded(Path(sys.argv[1])); print(s.redis_url); s.stop()",
                str(data),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert joined.returncode == 0, joined.stderr
        with redis.Redis.from_url(owner.redis_url) as client:
            assert client.ping()
        with psycopg2.connect(owner.database_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        owner.stop()
    assert processes_in(data) == []
