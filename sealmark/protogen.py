"""Regenerate the gRPC stubs from ``proto/``: ``python -m sealmark.protogen OUTDIR``.

Runs ``grpc_tools.protoc -I proto --python_out --grpc_python_out --mypy_out --mypy_grpc_out``
over every ``proto/sealmark/v1/*.proto`` and leaves in ``OUTDIR/sealmark/v1/`` exactly the
generated ``*_pb2.py``, ``*_pb2_grpc.py`` and their ``.pyi`` stubs, plus an ``__init__.py``.

Deterministic: the same protos and pinned tool versions (grpcio-tools, mypy-protobuf) give the
same bytes, which is what ``tests/unit/test_proto_contract.py`` compares. The stubs are built in
a scratch directory first, so a protoc error leaves the existing stubs untouched; stubs of a
deleted ``.proto`` are removed.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
PACKAGE = Path("sealmark") / "v1"
INIT_TEXT = '"""Generated gRPC stubs of the Sealmark v1 API (make proto)."""\n'
_GENERATED = ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py", "*_pb2_grpc.pyi")


class ProtogenError(Exception):
    """protoc or one of its plugins is missing or failed; the message says which."""


def generated_files(directory: Path) -> list[Path]:
    """The stub files (and ``__init__.py``) in ``directory``, sorted by name."""
    found = {p for pattern in _GENERATED for p in directory.glob(pattern) if p.is_file()}
    init = directory / "__init__.py"
    if init.is_file():
        found.add(init)
    return sorted(found, key=lambda p: p.name)


def protos() -> list[str]:
    """The ``.proto`` files of the API, relative to ``proto/``, sorted."""
    return sorted(
        p.relative_to(PROTO_DIR).as_posix() for p in (PROTO_DIR / PACKAGE).glob("*.proto")
    )


def generate(out_dir: Path) -> list[Path]:
    """Generate the stubs under ``out_dir / sealmark / v1``; return the files there, sorted.

    Raises ProtogenError when there is nothing to compile, a plugin is missing or protoc fails.
    """
    sources = protos()
    if not sources:
        raise ProtogenError(f"no .proto files under {PROTO_DIR / PACKAGE}")
    target = out_dir / PACKAGE
    with tempfile.TemporaryDirectory(prefix="sealmark-protogen-") as scratch:
        _run_protoc(Path(scratch), sources)
        fresh = Path(scratch) / PACKAGE
        target.mkdir(parents=True, exist_ok=True)
        wanted = {p.name for p in generated_files(fresh)}
        for stale in generated_files(target):
            if stale.name not in wanted and stale.name != "__init__.py":
                stale.unlink()
        for path in generated_files(fresh):
            data = path.read_bytes()
            dest = target / path.name
            if not dest.is_file() or dest.read_bytes() != data:
                dest.write_bytes(data)
    init = target / "__init__.py"
    if not init.exists():
        init.write_text(INIT_TEXT, encoding="utf-8")
    return generated_files(target)


def _run_protoc(out_dir: Path, sources: list[str]) -> None:
    import grpc_tools
    from grpc_tools import protoc

    bin_dir = Path(sys.executable).parent
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={_plugin(bin_dir, 'protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin(bin_dir, 'protoc-gen-mypy_grpc')}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out=quiet:{out_dir}",
        f"--mypy_grpc_out=quiet:{out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise ProtogenError("protoc failed (its errors are above)")


def _plugin(bin_dir: Path, name: str) -> str:
    path = bin_dir / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise ProtogenError(f"{name} not found next to {sys.executable}: run make venv")
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sealmark.protogen OUTDIR", file=sys.stderr)
        return 2
    out = Path(args[0]).resolve()
    try:
        files = generate(out)
    except ProtogenError as exc:
        print(f"protogen: {exc}", file=sys.stderr)
        return 1
    for path in files:
        print(path.relative_to(out).as_posix())
    return 0


if __name__ == "__main__":
    sys.exit(main())
