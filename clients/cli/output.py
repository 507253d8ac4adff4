"""How a command prints its result: JSON under ``--json``, the human text otherwise."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["emit"]


def emit(args: argparse.Namespace, data: Any, human: str) -> None:
    """Print ``data`` as JSON when ``args.json`` is set, else ``human``."""
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else human)
