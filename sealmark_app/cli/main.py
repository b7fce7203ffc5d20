"""Entry point of the ``sealmark`` console script."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sealmark.errors import InvalidArgument, SealmarkError


def build_parser() -> argparse.ArgumentParser:
    from sealmark_app.cli import (
        admin,
        aggregation,
        auditing,
        certs,
        codes,
        health,
        issuing,
        links,
        media,
        serve,
        verifying,
    )

    parser = argparse.ArgumentParser(
        prog="sealmark", description="Sealmark: signed one-item-one-code serialization suite"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(sub)
    sub.add_parser("migrate", help="apply database migrations and exit")
    admin.add_parsers(sub)
    certs.add_parser(sub)
    issuing.add_parsers(sub)
    codes.add_parsers(sub)
    aggregation.add_parsers(sub)
    verifying.add_parser(sub)
    auditing.add_parser(sub)
    health.add_parser(sub)
    media.add_parsers(sub)
    links.add_parser(sub)
    bench = sub.add_parser("bench", help="run benchmarks, one JSON line each")
    bench.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    bench.add_argument("--list", action="store_true", help="list the benchmarks")
    bench.add_argument("--report", type=Path, help="also write the run as an HTML page")
    bench.add_argument(
        "--from",
        dest="from_file",
        type=Path,
        help="with --report: render the JSON lines of an earlier run instead of running",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except InvalidArgument as exc:
        print(f"sealmark: error: {exc}", file=sys.stderr)
        return 2
    except SealmarkError as exc:
        print(f"sealmark: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "bench":
        from sealmark_app.bench.registry import registered, run

        if args.list:
            for name, bench in registered().items():
                bar = f" (bar: {bench.bar.text()})" if bench.bar else ""
                print(f"{name}\t{bench.description.strip()}{bar}")
            return 0
        if args.from_file is not None and args.report is None:
            raise InvalidArgument("--from", "goes with --report")
        if args.from_file is not None and args.names:
            raise InvalidArgument("--from", "renders a saved run; name no benchmarks with it")
        from sealmark_app.bench.report import read_lines, write_report

        lines = read_lines(args.from_file) if args.from_file else run(args.names)
        if args.report is not None:
            write_report(args.report, lines, datetime.now(UTC))
            print(f"report: {args.report}", file=sys.stderr)
        return 0
    if args.command == "health":  # a probe: no settings, logging or database
        from sealmark_app.cli import health

        return health.run(args)

    from sealmark.logs import configure_logging
    from sealmark.settings import load_settings

    settings = load_settings(os.environ)
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        from sealmark_app.cli import serve

        return serve.run(args, settings)

    if args.command == "label":
        from sealmark_app.cli import issuing

        return issuing.run_label(args, settings)
    if args.command == "issue":
        from sealmark_app.cli import issuing

        return issuing.run_issue(args, settings)
    if args.command == "codes":
        from sealmark_app.cli import codes

        return codes.run(args, settings)
    if args.command == "verify":
        from sealmark_app.cli import verifying

        return verifying.run(args, settings, os.environ)
    if args.command == "audit":
        from sealmark_app.cli import auditing

        return auditing.run(args, settings)
    if args.command == "media":
        from sealmark_app.cli import media

        return media.run(args, settings)
    if args.command == "links":
        from sealmark_app.cli import links

        return links.run(args, settings)
    from sealmark_app.cli import aggregation

    if args.command in aggregation.COMMANDS:
        return aggregation.run(args, settings)

    from sealmark_app.root.container import bootstrap

    container = bootstrap(settings)
    try:
        if args.command == "migrate":
            print("migrations applied")
            return 0
        from sealmark_app.cli import admin, issuing

        if args.command == "keys":
            return issuing.run_keys(args, container)
        if args.command == "certs":
            from sealmark_app.cli import certs

            return certs.run(args, container)
        return admin.run(args, container)
    finally:
        container.close()


if __name__ == "__main__":
    sys.exit(main())
