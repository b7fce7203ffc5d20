"""Regenerate the gRPC stubs from ``proto/``: ``python -m sealmark.protogen OUTDIR``.

Writes ``OUTDIR/sealmark/v1/*_pb2.py``, ``*_pb2_grpc.py`` and their ``.pyi`` stubs (via
mypy-protobuf). Deterministic: the same protos give the same bytes, which is what the
stale-stub test compares.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
PACKAGE = Path("sealmark") / "v1"


def generate(out_dir: Path) -> list[Path]:
    """Generate the stubs under ``out_dir``; return the generated files, sorted."""
    import grpc_tools
    from grpc_tools import protoc

    bin_dir = Path(sys.executable).parent
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / PACKAGE).glob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_DIR / PACKAGE}")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    target = out_dir / PACKAGE
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*_pb2*.py*"):
        old.unlink()
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={_plugin(bin_dir, 'protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin(bin_dir, 'protoc-gen-mypy_grpc')}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    init = target / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated gRPC stubs of the Sealmark v1 API (make proto)."""\n')
    return sorted(target.iterdir())


def _plugin(bin_dir: Path, name: str) -> str:
    path = bin_dir / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install mypy-protobuf (make venv)")
    return found


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    for path in generate(out):
        print(path.relative_to(out))


if __name__ == "__main__":
    main()
