"""The README's examples, run: every ``sealmark …`` line of its ``sh`` blocks, in order, those
that need no server against the bare CLI and the rest against the README's own
``sealmark serve`` on the test's PostgreSQL and Redis. Only what a reader must fill in (the
token printed earlier, a code that was issued, the brand's name) is replaced, so an example
that drifts from the code fails here."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from tests.support.cli import ROOT
from tests.support.epcis_reader import read_document

pytestmark = pytest.mark.e2e
README = ROOT / "README.md"
# The commands that work on files alone; every other one needs the database or a server.
OFFLINE = {"label"}
KNOWN = OFFLINE | {"migrate", "tenants", "products", "tokens", "serve", "issue", "keys"}
KNOWN |= {"verify", "audit", "codes"}
# Run whole, as a shell block against `make run`'s own server, by tests/e2e/test_first_scan.py.
SECTIONS_RUN_ELSEWHERE = {"First scan"}
TENANT = "acme"  # the README's brand; "demo" is the one `make run` seeds


def readme_commands() -> list[list[str]]:
    """The arguments of every ``sealmark`` command in the README's ``sh`` blocks, in order
    (continuation lines joined, ``&&`` chains split, comments dropped)."""
    commands = []
    sections = re.split(r"^## ", README.read_text("utf-8"), flags=re.M)
    kept = [s for s in sections if s.split("\n", 1)[0].strip() not in SECTIONS_RUN_ELSEWHERE]
    assert len(kept) == len(sections) - len(SECTIONS_RUN_ELSEWHERE), "a section was renamed"
    for block in re.findall(r"^```sh\n(.*?)^```", "## ".join(kept), re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                argv = shlex.split(part, comments=True)
                if argv and (argv[0] == "sealmark" or argv[0].endswith("/bin/sealmark")):
                    commands.append(argv[1:])
    return commands


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(dsn: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")}
    env.update(
        SEALMARK_DATABASE_URL=dsn,
        SEALMARK_REDIS_URL=redis_url,
        SEALMARK_LOG_LEVEL="WARNING",
        SEALMARK_SECRET_PEPPER="readme-test-pepper-0123456789",
        SEALMARK_KEY_PASSPHRASE="readme-test-passphrase",
        SEALMARK_PROCESSES="1",
        SEALMARK_MINT_PROCESSES="0",
    )
    env.update(extra)
    return env


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealmark_app.cli.main", *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_readme_has_examples_and_each_is_known_here() -> None:
    commands = readme_commands()
    assert len(commands) >= 15
    unknown = {c[0] for c in commands} - KNOWN
    assert unknown == set(), f"README commands this test does not know how to run: {unknown}"


def test_the_datamatrix_example_is_a_valid_gs1_element_string() -> None:
    """'^' is FNC1: after the predefined-length (01) and (17) none is needed, after the
    variable-length (10) one must precede (21); the example writes exactly those."""
    (label,) = [c for c in readme_commands() if c[:1] == ["label"] and "datamatrix" in c]
    assert label[1] == "01095201234567881730123110LOT1^21ABC"


@pytest.mark.parametrize(
    "argv", [c for c in readme_commands() if c[0] in OFFLINE], ids=lambda c: " ".join(c)[:60]
)
def test_offline_examples_run_on_the_bare_cli(argv: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")}
    done = _run(argv, env, tmp_path)
    assert done.returncode == 0, done.stderr
    out = argv[argv.index("--out") + 1]
    assert (tmp_path / out).stat().st_size > 0


@pytest.fixture(scope="module")
def session(pg_dsn: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    ports = {
        "SEALMARK_GRPC_PORT": str(_free_port()),
        "SEALMARK_METRICS_PORT": str(_free_port()),
        "SEALMARK_VERIFY_HTTP_PORT": str(_free_port()),
        "SEALMARK_DASHBOARD_HTTP_PORT": str(_free_port()),
    }
    state: dict[str, Any] = {
        "env": _env(pg_dsn, redis_url, **ports),
        "cwd": tmp_path_factory.mktemp("readme"),
        "target": f"127.0.0.1:{ports['SEALMARK_GRPC_PORT']}",
        "servers": [],
    }
    try:
        yield state
    finally:
        for server in state["servers"]:
            server.terminate()
            server.wait(timeout=30)


def _filled(argv: list[str], state: dict[str, Any]) -> list[str]:
    """The command with what a reader fills in filled in: the printed token, the port the
    server listens on, a code that was issued, the brand's name."""
    code = state.get("code") or {}
    out = []
    for arg in argv:
        if arg == "demo":
            arg = TENANT
        elif arg.startswith("smk_"):
            arg = state["line_token"]
        elif arg == "127.0.0.1:50051":
            arg = state["target"]
        elif arg.startswith("https://") and "…" in arg:
            arg = code["digital_link"]
        elif arg.startswith("(01)") and "…" in arg:  # the HRI, with the signature
            arg = code["hri"] + "(8030)" + code["digital_link"].split("8030=")[1]
        elif re.fullmatch(r"\d{14}/ABC\d*", arg):
            arg = f"{arg[:14]}/{code['serial']}"
        out.append(arg)
    return out


def _commission(state: dict[str, Any], gtin: str, serials: list[str]) -> None:
    """What the line does between issuing and a consumer's scan (README: "Good prints are
    commissioned"), which no README command shows."""
    with grpc.insecure_channel(state["target"]) as channel:
        acks = issuer_pb2_grpc.IssuerStub(channel).ReportCommissioned(
            iter([issuer_pb2.CodeBatch(batch_id="readme-c1", gtin=gtin, serials=serials)]),
            metadata=[("authorization", f"Bearer {state['line_token']}")],
            timeout=60,
        )
        assert [a.accepted for a in acks] == [len(serials)]


def test_server_examples_run_against_a_real_server(session: dict[str, Any]) -> None:
    state, env, cwd = session, session["env"], session["cwd"]
    for argv in (c for c in readme_commands() if c[0] not in OFFLINE):
        command = _filled(argv, state)
        where = " ".join(argv)
        if command[0] == "serve":
            server = subprocess.Popen(
                [sys.executable, "-m", "sealmark_app.cli.main", *command],
                env=env,
                cwd=cwd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            state["servers"].append(server)
            channel = grpc.insecure_channel(state["target"])
            grpc.channel_ready_future(channel).result(timeout=60)
            channel.close()
            # The audit examples run with a token of the roles they need (README: "auditor
            # token", "admin").
            roles = ["--role", "auditor", "--role", "admin", "--name", "readme audit"]
            made = _run(["--json", "tokens", "create", "--tenant", TENANT, *roles], env, cwd)
            assert made.returncode == 0, made.stderr
            env = {**env, "SEALMARK_TOKEN": json.loads(made.stdout)["token"]}
            continue
        if command[:2] == ["audit", "alerts"] and "--watch" in command:
            watching = subprocess.Popen(
                [sys.executable, "-m", "sealmark_app.cli.main", *command],
                env=env,
                cwd=cwd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                _, err = watching.communicate(timeout=5)
                pytest.fail(f"{where}: ended ({watching.returncode}) instead of watching: {err}")
            except subprocess.TimeoutExpired:
                watching.terminate()
                watching.communicate(timeout=10)
            continue
        done = _run(command, env, cwd)
        assert done.returncode == 0, f"{where}: {done.stderr}"
        if command[:2] == ["tokens", "create"]:
            state["line_token"] = re.search(r"smk_\S+", done.stdout).group(0)  # type: ignore[union-attr]
        if command[0] == "issue":
            rows = [json.loads(line) for line in (cwd / "codes.jsonl").read_text().splitlines()]
            state["code"] = rows[0]
            _commission(state, command[command.index("--gtin") + 1], [r["serial"] for r in rows])
        if command[:2] == ["audit", "export-epcis"]:
            out = command[command.index("--out") + 1]
            assert read_document((cwd / out).read_bytes()) != []
