"""Regenerates the Python modules of the `.proto` files in this folder.

Run `python -m proto.gen` from the repository root after editing a `.proto`
file; `python -m proto.gen --check` exits non-zero when the committed modules
differ from what the pinned grpcio-tools would generate (CI runs it as a test).
"""
from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def generate(out_dir: Path) -> list[Path]:
    """Compiles every proto/*.proto into out_dir/proto/; returns the files made."""
    from grpc_tools import protoc  # imported lazily: only needed by developers
    import grpc_tools

    protos = sorted(p.relative_to(ROOT).as_posix() for p in HERE.glob("*.proto"))
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    (out_dir / "proto").mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p for p in (out_dir / "proto").iterdir() if p.suffix in (".py", ".pyi"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        made = generate(Path(tmp))
        stale = []
        for path in made:
            target = HERE / path.name
            if opts.check:
                if not target.exists() or not filecmp.cmp(path, target, shallow=False):
                    stale.append(path.name)
            else:
                shutil.copyfile(path, target)
        if opts.check:
            generated = {p.name for p in made}
            for existing in HERE.glob("*_pb2*.py*"):
                if existing.name not in generated:
                    stale.append(existing.name + " (no .proto makes it)")
            if stale:
                print("generated modules out of date: " + ", ".join(stale), file=sys.stderr)
                print("run: python -m proto.gen", file=sys.stderr)
                return 1
            print(f"{len(made)} generated modules match their .proto files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
