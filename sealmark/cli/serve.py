"""``sealmark serve``: run all services in one process, or the ones named."""

from __future__ import annotations

import argparse

import structlog
from prometheus_client import start_http_server

from sealmark.bootstrap import bootstrap
from sealmark.demo import seed_demo
from sealmark.server.app import ShutdownSignal, create_server
from sealmark.services import binding_for
from sealmark.settings import SERVICES, Settings

log = structlog.get_logger("sealmark.serve")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the services (all of them when none is named)")
    serve.add_argument(
        "services",
        nargs="*",
        choices=[[], *SERVICES],
        metavar="SERVICE",
        help=f"any of: {', '.join(SERVICES)}",
    )
    serve.add_argument(
        "--seed-demo",
        action="store_true",
        help="DEMO ONLY: create a demo brand and tokens on first start",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    names = list(dict.fromkeys(args.services)) or list(SERVICES)
    shutdown = ShutdownSignal()
    try:
        return _serve(args, settings, names, shutdown)
    finally:
        shutdown.restore()


def _serve(
    args: argparse.Namespace, settings: Settings, names: list[str], shutdown: ShutdownSignal
) -> int:
    container = bootstrap(settings)
    metrics_server = None
    try:
        demo = None
        if args.seed_demo:
            log.warning("demo.enabled", note="demo brand and clear tokens in data dir; dev only")
            demo = seed_demo(container, resolver_host=f"localhost:{settings.grpc_port}")
        running = create_server(
            [binding_for(n, container) for n in names],
            container.authenticator,
            address=f"{settings.grpc_host}:{settings.grpc_port}",
            workers=settings.grpc_workers,
        )
        metrics_server, _ = start_http_server(settings.metrics_port, settings.http_host)
        _print_next_steps(settings, running.port, metrics_server.server_port, names, demo)
        signum = shutdown.wait()
        log.info("shutdown.begin", signal=signum, grace_s=settings.shutdown_grace_s)
        running.stop(settings.shutdown_grace_s)
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        container.close()
        log.info("shutdown.done")
    return 0


def _print_next_steps(
    settings: Settings,
    port: int,
    metrics_port: int,
    names: list[str],
    demo: dict[str, object] | None,
) -> None:
    target = f"{settings.grpc_host}:{port}"
    lines = [
        "",
        f"Sealmark is up: gRPC {target} ({', '.join(names)}), "
        f"metrics http://{settings.http_host}:{metrics_port}/metrics",
        "  storage: "
        + (f"embedded, data in {settings.data_dir}" if settings.embedded else "external servers"),
        "Try:",
        f"  grpcurl -plaintext {target} grpc.health.v1.Health/Check",
        f"  grpcurl -plaintext {target} list",
    ]
    if demo:
        tokens = demo.get("tokens")
        if isinstance(tokens, dict):
            lines.append(
                f"Demo brand 'demo', product {demo.get('gtin')}; tokens"
                f" (also in {settings.data_dir / 'demo-tokens.json'}):"
            )
            lines += [f"  {role:<9} {value}" for role, value in tokens.items()]
            admin = tokens.get("admin", "<token>")
            lines.append(
                f"  grpcurl -plaintext -H 'authorization: Bearer {admin}' "
                f"{target} sealmark.v1.Issuer/ListProducts"
            )
            line = tokens.get("line", "<token>")
            lines.append(
                f"  .venv/bin/sealmark issue --target {target} --token {line} "
                "--gtin 09520123456788 --lot LOT1 --expiry 2030-12-31 --count 10 "
                "--out codes.jsonl --labels labels/"
            )
    lines += ["  .venv/bin/sealmark tenants list", "Stop with Ctrl-C.", ""]
    print("\n".join(lines), flush=True)
