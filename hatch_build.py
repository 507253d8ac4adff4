"""Build hook: generate the protobuf / gRPC modules from proto/ at build time.

The .proto files (package ``trustwire.v1``) live at the path of the Python package
they generate: ``proto/exchange/pb/trustwire/v1/*.proto`` with ``-I proto``, so
protoc's own imports (``from exchange.pb.trustwire.v1 import entries_pb2``) are
right as emitted and nothing is rewritten. Nothing generated is committed (see
.gitignore).

Runs for ``pip install .`` (wheel) and ``pip install -e .`` (editable); run
``python hatch_build.py`` to regenerate by hand after editing a .proto file.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

PROTO_ROOT = "proto"
OUT_PACKAGE = ("exchange", "pb")


def generate(root: Path) -> list[Path]:
    """Run protoc over every .proto under proto/ and return the generated files."""
    from grpc_tools import protoc  # build-time dependency only

    proto_dir = root / PROTO_ROOT
    out = root.joinpath(*OUT_PACKAGE)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    sources = sorted(str(p.relative_to(proto_dir)) for p in proto_dir.rglob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{proto_dir}",
        f"-I{include}",
        f"--python_out={root}",
        f"--grpc_python_out={root}",
        f"--mypy_out={root}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    generated = sorted(p for p in out.rglob("*") if p.suffix in (".py", ".pyi"))
    for package in [out, *(d for d in out.rglob("*") if d.is_dir())]:
        (package / "__init__.py").touch()
    (out / "py.typed").touch()
    return generated


try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # pragma: no cover - only when run by hand without hatchling
    BuildHookInterface = object  # type: ignore[misc,assignment]


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        generate(Path(self.root))
        if version == "standard":
            # Ship the demo task force inside a regular wheel so `trustwire demo` works after
            # `pip install .`; editable installs read seeds/ from the checkout.
            build_data["force_include"][str(Path(self.root) / "seeds")] = "exchange/program/_seeds"


if __name__ == "__main__":
    files = generate(Path(__file__).resolve().parent)
    print(f"generated {len(files)} files", file=sys.stderr)
