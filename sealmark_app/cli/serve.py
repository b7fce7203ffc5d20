"""``sealmark serve``: run all services in one process, or the ones named."""

from __future__ import annotations

import argparse
import gc
import os
import re
import signal
import ssl
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import start_http_server

from sealmark.server import affinity
from sealmark.server.app import ServiceBinding, ShutdownSignal, create_server
from sealmark.server.processes import ServingProcesses, on_parent_exit
from sealmark.server.tls import (
    ServerCertificates,
    check_plaintext_binding,
    reload_on_sighup,
    server_certificates,
)
from sealmark.settings import SERVICES, Settings
from sealmark_app.demo import DEMO_GTIN, seed_demo
from sealmark_app.root import binding_for
from sealmark_app.root.audit import start_dashboard_page, start_dispatch
from sealmark_app.root.container import Container, bootstrap

if TYPE_CHECKING:
    from sealmark.server.http_server import HttpServer
    from verifier.http import VerifyHttp

log = structlog.get_logger("sealmark.serve")

ExtraBindings = Callable[[Container], Sequence[ServiceBinding]]
SERVE_COMMAND = (sys.executable, "-m", "sealmark_app.cli.main", "serve")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the services (all of them when none is named)")
    serve.add_argument(
        "services",
        nargs="*",
        choices=[[], *SERVICES],
        metavar="SERVICE",
        help=f"any of: {', '.join(SERVICES)}",
    )
    serve.add_argument(  # how the first process starts its copies (SEALMARK_PROCESSES)
        "--worker-of", type=int, metavar="PID", help=argparse.SUPPRESS
    )
    serve.add_argument(
        "--seed-demo",
        action="store_true",
        help="DEMO ONLY: create a demo brand and tokens on first start",
    )


def run(
    args: argparse.Namespace,
    settings: Settings,
    *,
    extra: ExtraBindings | None = None,
    command: Sequence[str] = SERVE_COMMAND,
) -> int:
    """Serve the named services (all when none is named). ``extra`` adds more bindings to
    the same server, built on the same container, and ``command`` is how this process's
    copies are started (SEALMARK_PROCESSES > 1): the bench's same-I/O baseline
    (sealmark_app.bench.io_service) is served this way, beside the services it is compared
    with."""
    names = list(dict.fromkeys(args.services)) or list(SERVICES)
    shutdown = ShutdownSignal()
    try:
        return _serve(args, settings, names, shutdown, extra, command)
    finally:
        shutdown.restore()


def _serve(
    args: argparse.Namespace,
    settings: Settings,
    names: list[str],
    shutdown: ShutdownSignal,
    extra: ExtraBindings | None,
    command: Sequence[str],
) -> int:
    worker = args.worker_of is not None
    cpus = affinity.plan(settings.cpu_affinity, settings.processes)  # refused before any start
    certs = server_certificates(settings)  # bad PEM files, too, are refused before any start
    if certs is None and not settings.allow_insecure:
        check_plaintext_binding(settings.grpc_host, allow_insecure=False)
    if certs is None and "verifier" in names and not settings.verify_http_trust_proxy:
        # The consumer page speaks HTTPS with the same certificate; behind a proxy
        # (SEALMARK_VERIFY_HTTP_TRUST_PROXY) the proxy holds the TLS.
        check_plaintext_binding(
            settings.verify_http_host,
            allow_insecure=settings.allow_insecure,
            setting="SEALMARK_VERIFY_HTTP_HOST",
            what="HTTP (the consumer page)",
            event="verify_http.insecure",
        )
    if certs is None and "audit" in names:
        # The dashboard speaks HTTPS with the same certificate.
        check_plaintext_binding(
            settings.dashboard_http_host,
            allow_insecure=settings.allow_insecure,
            setting="SEALMARK_DASHBOARD_HTTP_HOST",
            what="HTTP (the brand dashboard)",
            event="dashboard_http.insecure",
        )
    if certs is None:
        # Metrics speak HTTPS with the same certificate when there is one.
        check_plaintext_binding(
            settings.http_host,
            allow_insecure=settings.allow_insecure,
            setting="SEALMARK_HTTP_HOST",
            what="HTTP (the metrics port)",
            event="metrics.insecure",
        )
    container = bootstrap(settings, migrate=not worker)
    shared_ports = worker or settings.processes > 1
    metrics_server = None
    consumer_page: VerifyHttp | None = None
    dashboard: HttpServer | None = None
    copies: ServingProcesses | None = None
    try:
        bindings = [binding_for(n, container) for n in names]
        bindings += extra(container) if extra is not None else []
        running = create_server(
            bindings,
            container.authenticator,
            address=f"{settings.grpc_host}:{settings.grpc_port}",
            workers=settings.grpc_workers,
            reuse_port=shared_ports,
            tls=certs,
            authenticate_cert=container.cert_authenticator if certs and certs.mutual else None,
            allow_insecure=settings.allow_insecure,
        )
        if certs is not None:
            reload_on_sighup(certs)
        if "verifier" in names:
            consumer_page = start_consumer_page(container, reuse_port=shared_ports, certs=certs)
        if "audit" in names:
            start_dispatch(container)  # webhook deliveries; stopped with the container
            dashboard = start_dashboard_page(container, reuse_port=shared_ports, certs=certs)
        if worker:

            def parent_gone() -> None:
                log.warning("serve.parent_gone")
                shutdown.trigger()

            on_parent_exit(args.worker_of, parent_gone)
        elif settings.processes > 1:
            copies = _start_copies(
                settings, container, names, running.port, consumer_page, cpus, command, dashboard
            )
        if cpus[0] is not None:  # last: what this process started so far keeps its CPUs
            affinity.pin_process(cpus[0], leave=copies.thread_ids if copies else ())
        demo = None
        if args.seed_demo and not worker:
            log.warning("demo.enabled", note="demo brand and clear tokens in data dir; dev only")
            # The demo's codes point at this machine's consumer page (plain http locally).
            port = consumer_page.port if consumer_page else settings.verify_http_port
            demo = seed_demo(container, resolver_host=f"localhost:{port}")
        metrics_server, _ = start_metrics(settings, tls=certs is not None)
        if worker:
            log.info("serve.copy_up", grpc_port=running.port, metrics=metrics_server.server_port)
        else:
            _print_next_steps(
                settings,
                running.port,
                metrics_server.server_port,
                names,
                demo,
                consumer_page.url if consumer_page else None,
                dashboard.url if dashboard else None,
            )
            if certs is not None:
                _print_tls_note(settings)
        settle_garbage_collector()
        signum = shutdown.wait()
        log.info("shutdown.begin", signal=_signal_name(signum), grace_s=settings.shutdown_grace_s)
        exit_by(settings.shutdown_grace_s + EXIT_MARGIN_S, container)
        if consumer_page is not None:  # no new scans first, then drain the gRPC streams
            consumer_page.stop()
            consumer_page = None
            log.info("shutdown.stopped", service="consumer-page")
        if dashboard is not None:
            dashboard.stop()
            dashboard = None
            log.info("shutdown.stopped", service="dashboard")
        if copies is not None:  # they drain theirs meanwhile
            copies.terminate()
        drained = running.stop(settings.shutdown_grace_s)
        for name in names:
            log.info("shutdown.stopped", service=name, drained=drained)
    finally:
        if copies is not None:
            copies.stop(settings.shutdown_grace_s)
        if consumer_page is not None:
            consumer_page.stop()
        if dashboard is not None:
            dashboard.stop()
        if metrics_server is not None:
            metrics_server.shutdown()
        container.close()
        log.info("shutdown.done")
    return 0


EXIT_MARGIN_S = 5.0
"""How long past the grace period a stopping server may take to close its pools and stop the
embedded servers before :func:`exit_by` ends it."""


def exit_by(seconds: float, container: Container) -> threading.Timer:
    """Make sure the process ends within ``seconds`` of now: if it is still alive then (a call
    that never ends, a pool that does not close, a handler thread that outlives the server and
    keeps the interpreter from exiting), log ``shutdown.forced``, stop the embedded servers
    and exit with status 1. The embedded PostgreSQL and Redis must never outlive us: the next
    start would find them, and nothing would ever stop them."""

    def force() -> None:
        log.error("shutdown.forced", after_s=seconds)
        try:
            if container.embedded is not None:
                container.embedded.stop()
        finally:
            os._exit(1)

    timer = threading.Timer(seconds, force)
    timer.name, timer.daemon = "shutdown-deadline", True
    timer.start()
    return timer


def _signal_name(signum: int) -> str:
    """``SIGTERM`` for 15; ``parent-gone`` for 0 (a copy whose first process went away)."""
    return signal.Signals(signum).name if signum else "parent-gone"


def _start_copies(
    settings: Settings,
    container: Container,
    names: list[str],
    grpc_port: int,
    consumer_page: VerifyHttp | None,
    cpus: list[int | None],
    command: Sequence[str],
    dashboard: HttpServer | None = None,
) -> ServingProcesses:
    """``processes - 1`` copies of this server on the ports it bound, its database and Redis
    (embedded ones included), its secrets; metrics on the next ports (any free one when the
    metrics port is 0)."""
    redis_url = settings.redis_url or (container.embedded.redis_url if container.embedded else "")
    environ = {
        **os.environ,
        "SEALMARK_DATABASE_URL": container.database.dsn,
        **(
            {"SEALMARK_REDIS_CLUSTER_NODES": settings.redis_cluster_nodes}
            if settings.redis_cluster_nodes is not None
            else {"SEALMARK_REDIS_URL": redis_url}
        ),
        # A copy finds its secrets where the first process had them: with the URLs set it is
        # not "embedded" and would not read the embedded default's generated secrets file.
        "SEALMARK_SECRET_PEPPER": container.secrets.pepper.decode(),
        "SEALMARK_GRPC_PORT": str(grpc_port),
        "SEALMARK_VERIFY_HTTP_PORT": str(consumer_page.port if consumer_page else 0),
        "SEALMARK_DASHBOARD_HTTP_PORT": str(dashboard.port if dashboard else 0),
        "SEALMARK_PROCESSES": "1",
    }
    if container.secrets.key_passphrase is not None:
        environ["SEALMARK_KEY_PASSPHRASE"] = container.secrets.key_passphrase.decode()
    count = settings.processes - 1
    per_copy = {
        n: {
            "SEALMARK_METRICS_PORT": str(settings.metrics_port + n if settings.metrics_port else 0),
            "SEALMARK_CPU_AFFINITY": "off" if cpus[n] is None else str(cpus[n]),
        }
        for n in range(1, count + 1)
    }
    return ServingProcesses(count, names, environ, command, per_copy)


def start_consumer_page(
    container: Container, *, reuse_port: bool = False, certs: ServerCertificates | None = None
) -> VerifyHttp:
    """The Verifier's HTTP face, built by the composition root (sealmark_app.root.verifier);
    imported when the verifier is served only."""
    from sealmark_app.root.verifier import start_consumer_page as start

    return start(container, reuse_port=reuse_port, certs=certs)


def settle_garbage_collector() -> None:
    """Keep collector pauses out of request latency. Everything alive once the server is up
    (modules, descriptors, pools) lives as long as the process: freeze it, so the oldest
    generation's collections only walk what requests left behind; and collect the young
    generation less often, since a pallet explosion alone allocates thousands of objects.
    Measured on a 1,440-item explode: p99/p50 went from 5.4 to 1.3 with collections off."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _print_tls_note(settings: Settings) -> None:
    client = " --cert CLIENT.pem --key CLIENT.key" if settings.tls_client_ca_file else ""
    grpcurl = " -cert CLIENT.pem -key CLIENT.key" if settings.tls_client_ca_file else ""
    print(
        f"gRPC speaks {'mutual ' if client else ''}TLS (certificate {settings.tls_cert_file};"
        " SIGHUP or a changed file reloads it): for grpcurl use"
        f" -cacert CA.pem{grpcurl} instead of -plaintext; sealmark client commands take"
        f" --ca CA.pem{client}. See docs/tls.md.\n",
        flush=True,
    )


def start_metrics(settings: Settings, *, tls: bool) -> tuple[Any, threading.Thread]:
    """Prometheus metrics on ``http_host:metrics_port``; with ``tls``, HTTPS (TLS 1.2+) with
    the server certificate, read once at start (a rotated certificate is taken at the next
    start, unlike the gRPC port and the consumer page)."""
    if not tls:
        return start_http_server(settings.metrics_port, settings.http_host)
    return start_http_server(
        settings.metrics_port,
        settings.http_host,
        certfile=str(settings.tls_cert_file),
        keyfile=str(settings.tls_key_file),
        tls_min_version=ssl.TLSVersion.TLSv1_2,
    )


def _print_next_steps(
    settings: Settings,
    port: int,
    metrics_port: int,
    names: list[str],
    demo: dict[str, object] | None,
    page_url: str | None = None,
    dashboard_url: str | None = None,
) -> None:
    target = f"{settings.grpc_host}:{port}"
    lines = [
        "",
        f"Sealmark is up: gRPC {target} ({', '.join(names)}), "
        f"metrics {'https' if settings.tls_cert_file else 'http'}://{settings.http_host}:"
        f"{metrics_port}/metrics",
        "  storage: "
        + (f"embedded, data in {settings.data_dir}" if settings.embedded else "external servers"),
    ]
    if page_url:
        lines.append(
            f"  consumer page: {page_url}/01/{{gtin}}/10/{{lot}}/21/{{serial}}?17=…&8030=… "
            f"(key set {page_url}/keys?tenant=…, health {page_url}/healthz)"
        )
    if dashboard_url:
        # Browsers keep the dashboard's Secure session cookie over plain HTTP on localhost
        # only (a secure context by name): print that name for a loopback address.
        shown = re.sub(r"^http://(127\.[\d.]+|\[::1\])(?=:)", "http://localhost", dashboard_url)
        lines.append(
            f"  brand dashboard: {shown}/ (sign in with an auditor token"
            + (": the demo's is below)" if demo else ")")
        )
    lines += [
        "Try:",
        f"  grpcurl -plaintext {target} grpc.health.v1.Health/Check",
        f"  grpcurl -plaintext {target} list",
        "  .venv/bin/sealmark tenants list",
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
            lines += _product_links(target, str(admin), page_url)
            lines += _first_scan(target, str(tokens.get("line", "<token>")), page_url)
    lines += ["Stop with Ctrl-C.", ""]
    print("\n".join(lines), flush=True)


def _product_links(target: str, admin_token: str, page_url: str | None) -> list[str]:
    """How a brand registers a product link for the GS1 resolver, and how to see it."""
    lines = [
        "Product links (the GS1 resolver's linkset and ?linkType=gs1:… redirects):",
        f"  .venv/bin/sealmark links set {DEMO_GTIN} --link gs1:pip"
        f" https://brand.example/tonic 'Demo Tonic' en --target {target} --token {admin_token}",
    ]
    if page_url:
        lines.append(f"  curl -s '{page_url}/01/{DEMO_GTIN}?linkType=linkset'")
    return lines


def _first_scan(target: str, line_token: str, page_url: str | None) -> list[str]:
    """What a newcomer runs for a first scan that says genuine: issue codes as a line, report
    them printed (commissioned), verify one as a consumer. The README's "First scan" block is
    the same with the default target; tests/e2e/test_first_scan.py runs both."""
    sealmark = f".venv/bin/sealmark {{}} --target {target}"
    lines = [
        "First scan (as a line: issue codes, report them printed; then as a consumer: verify):",
        f"  export SEALMARK_TOKEN={line_token}",
        "  "
        + sealmark.format("issue")
        + f" --gtin {DEMO_GTIN} --lot LOT1 --expiry 2030-12-31 --count 10"
        " --out codes.jsonl --labels labels/",
        "  " + sealmark.format("codes commission") + " --file codes.jsonl",
        "  head -1 codes.jsonl | " + sealmark.format("verify") + " -",
    ]
    if page_url:
        lines.append(
            "  or open a code's digital_link on the consumer page, http:// instead of https://:"
            f" {page_url}/01/{DEMO_GTIN}/10/LOT1/21/…"
        )
    return lines
