"""A newcomer's first scan says genuine: the README's "First scan" commands, and the ones
`make run` prints, run as written in a shell against a real `sealmark serve --seed-demo`."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import ROOT
from tests.support.servers import DemoServe, embedded_data_dir

pytestmark = pytest.mark.e2e

SEALMARK = f"{shlex.quote(sys.executable)} -m sealmark_app.cli.main"


@pytest.fixture(scope="module")
def serve() -> Iterator[DemoServe]:
    with embedded_data_dir() as data_dir:
        server = DemoServe(data_dir)
        try:
            yield server
        finally:
            server.proc.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            finally:
                server.close()


def readme_first_scan() -> list[str]:
    """The commands of the README's "First scan" block, comments dropped."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^## First scan\n.*?^```sh\n(.*?)^```", readme, re.M | re.S)
    assert found, "README.md has no '## First scan' section with a sh block"
    return [line.split("  #", 1)[0].strip() for line in found.group(1).splitlines() if line]


def printed_first_scan(output: str) -> list[str]:
    """The commands `sealmark serve --seed-demo` printed under "First scan"."""
    block = output.split("\nFirst scan", 1)[1].split("\nStop with Ctrl-C", 1)[0]
    return [
        line.strip()
        for line in block.splitlines()[1:]
        if line.startswith("  ") and not line.startswith("  or ")
    ]


def run_in_shell(commands: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run ``commands`` in one bash, stopping at the first that fails; their stdout."""
    script = "set -euo pipefail\n" + "\n".join(
        c.replace(".venv/bin/sealmark", SEALMARK) for c in commands
    )
    done = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"{script}\n---\n{done.stdout}\n{done.stderr}"
    return done.stdout


def client_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")}
    env.update(extra)
    return env


def verdict_of_first_code(cwd: Path, target: str) -> str:
    first = (cwd / "codes.jsonl").read_text().splitlines()[0]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sealmark_app.cli.main",
            "--json",
            "verify",
            "--target",
            target,
            "-",
        ],
        input=first,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode in (0, 1), done.stderr  # judged: passed or not
    verdict: str = json.loads(done.stdout)["verdict"]
    return verdict


def test_the_readme_first_scan_says_genuine(serve: DemoServe, tmp_path: Path) -> None:
    commands = readme_first_scan()
    assert [c.split()[0] for c in commands] == [
        "export",
        ".venv/bin/sealmark",
        ".venv/bin/sealmark",
        "head",
    ]
    assert "smk_…" in commands[0]
    commands[0] = commands[0].replace("smk_…", serve.tokens["line"])
    env = client_env(SEALMARK_GRPC_PORT=str(serve.port))  # the README uses the default target
    out = run_in_shell(commands, tmp_path, env)
    assert "AUTHENTIC: genuine, first verification" in out, out
    assert re.search(r"^commissioned\s+10$", out, re.M), out
    assert len(list((tmp_path / "labels").glob("*.png"))) == 10
    # The README's next sentence: the same code again is genuine, seen before.
    assert verdict_of_first_code(tmp_path, serve.target) == "VERDICT_AUTHENTIC_SEEN_BEFORE"


def test_the_printed_first_scan_says_genuine(serve: DemoServe, tmp_path: Path) -> None:
    commands = printed_first_scan(serve.output)
    assert commands[0] == f"export SEALMARK_TOKEN={serve.tokens['line']}"
    # Copied and pasted as printed: the address is in every command, nothing else is needed.
    out = run_in_shell(commands, tmp_path, client_env())
    assert "AUTHENTIC: genuine, first verification" in out, out
    # Everything but the address is the README's.
    strip = re.compile(r" --target \S+")
    assert [strip.sub("", c) for c in commands[1:]] == readme_first_scan()[1:]


def test_before_commissioning_a_code_is_never_commissioned(
    serve: DemoServe, tmp_path: Path
) -> None:
    """What the README says happens without the commission step: the test above cannot pass
    by a verifier that says genuine to anything."""
    issue = [
        c for c in printed_first_scan(serve.output) if " issue " in c or c.startswith("export")
    ]
    run_in_shell(issue, tmp_path, client_env())
    assert verdict_of_first_code(tmp_path, serve.target) == "VERDICT_COUNTERFEIT"


def test_make_run_prints_the_dashboard_and_its_auditor_token_signs_in(serve: DemoServe) -> None:
    """What `make run` prints leads to the brand dashboard: its URL, and the demo's auditor
    token exchanged there for a session that shows the demo brand."""
    import http.client
    from urllib.parse import urlencode, urlsplit

    assert serve.dashboard_url.startswith("http://localhost:"), serve.output
    assert "sign in with an auditor token" in serve.output
    port = urlsplit(serve.dashboard_url).port
    assert port is not None

    def call(method: str, path: str, cookie: str = "", body: str = "") -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("localhost", port, timeout=30)
        headers = {"Cookie": cookie} if cookie else {}
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body or None, headers=headers)
        reply = conn.getresponse()
        reply.read()
        conn.close()
        return reply

    form = call("GET", "/login")
    login_cookie = (form.getheader("Set-Cookie") or "").split(";")[0]
    csrf = login_cookie.split("=", 1)[1]
    signed_in = call(
        "POST",
        "/login",
        login_cookie,
        urlencode({"csrf": csrf, "token": serve.tokens["auditor"]}),
    )
    assert signed_in.status == 303, signed_in.status
    session = next(
        v.split(";")[0]
        for k, v in signed_in.getheaders()
        if k.lower() == "set-cookie" and v.startswith("sm_dash=")
    )
    conn = http.client.HTTPConnection("localhost", port, timeout=30)
    conn.request("GET", "/", headers={"Cookie": session})
    page = conn.getresponse()
    text = page.read().decode()
    conn.close()
    assert page.status == 200 and '<span id="tenant">demo</span>' in text
